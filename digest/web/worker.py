"""The app of one worker process of `digest serve --workers N` (uvicorn imports `worker_app` in each).

Each worker builds its own core, engine and connection pool after it starts: nothing that holds a
connection crosses a process. The parent has already migrated the store and checked the settings (it
built the app once, so that a bad setting stops the command instead of every worker), so a worker
does not migrate. The parent passes the publication folder and the log format through the
environment, which the workers inherit.
"""

from __future__ import annotations

import logging
import os

from fastapi import FastAPI

from digest.core import build_core
from digest.logs import LogFormat, setup_logging
from digest.web.app import create_app

LOG_FORMAT_VARIABLE = "_DIGEST_SERVE_LOG_FORMAT"


def worker_app() -> FastAPI:
    log_format: LogFormat = "json" if os.environ.get(LOG_FORMAT_VARIABLE) == "json" else "text"
    setup_logging(log_format, logging.WARNING, digest_level=logging.INFO)
    return create_app(build_core(migrate=False))
