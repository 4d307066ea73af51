"""What the commands share: the `--week` and `--json` options, and the core of the running command."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from digest.content.weeks import Week
from digest.logs import LogFormat

if TYPE_CHECKING:
    from digest.core import Digest

WeekOption = Annotated[
    str | None,
    typer.Option("--week", help="ISO week such as 2026-W48; default: the issue built now (the week of yesterday)."),
]
WindowOption = Annotated[
    str | None,
    typer.Option(
        "--week",
        help="ISO week such as 2026-W48 (Monday to Monday, local time); default: the articles since the "
        "last sent issue's window, or the last 7 days ([issue] window in digest.toml).",
    ),
]
JsonLines = Annotated[bool, typer.Option("--json", help="One JSON object per line.")]
JsonObject = Annotated[bool, typer.Option("--json", help="One JSON object.")]
JsonPerInput = Annotated[bool, typer.Option("--json", help="One JSON object per input, in input order.")]
LogFormatOption = Annotated[
    LogFormat,
    typer.Option(
        "--log-format",
        help="Log lines on stderr: text (time, level, logger, message) or json (one object per line, for a "
        "log collector).",
    ),
]


log = logging.getLogger(__name__)

# The cores the running command opened: the app closes them when the command ends (closing_cores).
_opened: list[Digest] = []


def open_core(*, migrate: bool = True) -> Digest:
    """The core for the running command; its engine is disposed of when the command ends, so that
    commands run one after another in one process (the tests) leave no connections behind."""
    # Imported here, so that `digest --help` and the commands that need no store start without it.
    from digest.core import build_core

    core = build_core(migrate=migrate)
    _opened.append(core)
    if core.new_store is not None:
        # Said once, when the file is made: a store opened in an unexpected place is then seen at once.
        # A log line, so that a service started with --log-format json says it as JSON too.
        log.warning("created a new, empty store %s", core.new_store)
    return core


@contextlib.contextmanager
def closing_cores() -> Iterator[None]:
    try:
        yield
    finally:
        while _opened:
            _opened.pop().close()


def week_or_default(core: Digest, week: str | None) -> Week:
    """--week, or the week of the issue `digest build` makes now without one (digest.jobs.issues.issue_week)."""
    from digest.jobs.issues import issue_week

    return issue_week(core, Week.parse(week) if week else None)


def week_or_window(week: str | None) -> Week | None:
    """--week, or None: the window since the last sent issue (digest.content.compose.issue_window)."""
    return Week.parse(week) if week else None
