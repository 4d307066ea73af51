"""How every process logs: one setup (`setup_logging`) for the command line, the scheduler and the web
server, so every line carries its time (ISO 8601, UTC), level and logger.

Two formats: `text` for people (`2026-12-07T12:00:00.123Z INFO digest.schedule: gather: start`) and
`json` for log collectors, one object per line with `time`, `level`, `logger`, `message` and, when
an exception is logged, `exc_info` (its traceback as text). uvicorn's own loggers go through the same
handler (`serve` starts it with `log_config=None`), so its lines look like ours.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def utc_time(record: logging.LogRecord) -> str:
    """The record's time as ISO 8601 in UTC with milliseconds: 2026-12-07T12:00:00.123Z."""
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class TextFormatter(logging.Formatter):
    """`TIME LEVEL LOGGER: MESSAGE`, the time in UTC whatever the machine's zone."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_time(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a message with line breaks stays on one line (JSON escapes them)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str] = {
            "time": utc_time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


class StderrHandler(logging.Handler):
    """Writes each line to whatever sys.stderr is when it is logged (a test that swaps it captures the lines)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # logging must never stop the work; logging's own way of saying so
            self.handleError(record)


def setup_logging(
    log_format: LogFormat = "text", level: int = logging.WARNING, *, digest_level: int | None = None
) -> None:
    """Log to stderr in `log_format`: the root logger at `level`, and the `digest` loggers at
    `digest_level` when given (a service logs its own work at INFO, libraries' only from WARNING).
    Called again, it replaces the handler it set before (a command that is a service says so late)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, StderrHandler)]:
        root.removeHandler(old)
    handler = StderrHandler()
    handler.setFormatter(formatter(log_format))
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("digest").setLevel(digest_level if digest_level is not None else logging.NOTSET)
