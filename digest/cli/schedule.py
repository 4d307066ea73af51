"""`digest schedule`: the long-running scheduler, or with --print-jobs its next runs."""

from __future__ import annotations

import logging
from datetime import UTC
from typing import Annotated

import typer

from digest.cli.common import LogFormatOption, open_core
from digest.cli.output import out
from digest.logs import setup_logging


def schedule(
    print_jobs: Annotated[
        bool, typer.Option("--print-jobs", help="Print each job's next three runs and exit.")
    ] = False,
    log_format: LogFormatOption = "text",
) -> None:
    """The long-running scheduler: gather at start and every hour, send the issue every week.

    Logs each job's start and end on stderr with its time (UTC) and level; --log-format json for a collector."""
    from digest import schedule as scheduling

    if not print_jobs:
        # Its work at INFO (each job's start and end), APScheduler's and the libraries' from WARNING;
        # set before the core is built, so that its warnings come in the same format.
        setup_logging(log_format, logging.WARNING, digest_level=logging.INFO)
    core = open_core()
    if print_jobs:
        tz = core.config.tz
        for job_id, what, times in scheduling.describe_jobs(core.config, core.now()):
            out.print(f"{job_id}: {what}")
            for moment in times:
                out.print(f"  {moment.astimezone(tz):%Y-%m-%d %H:%M %Z}  ({moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC)")
        return
    scheduler = scheduling.make_scheduler(core)
    scheduling.install_signal_handlers(scheduler)
    scheduling.log.info("scheduler running (%d jobs); stop with Ctrl-C or SIGTERM", len(scheduler.get_jobs()))
    scheduler.start()
