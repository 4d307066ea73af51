"""`digest sources`: every configured source's state, with its articles in a week."""

from __future__ import annotations

from dataclasses import dataclass

from digest.content.periods import Week, default_week
from digest.core import Digest
from digest.gather.run import sync_sources
from digest.gather.status import SourceStatus, source_statuses


@dataclass(frozen=True)
class SourcesReport:
    week: Week
    sources: list[SourceStatus]


def sources_in_week(core: Digest, week: Week | None = None) -> SourcesReport:
    """The sources of the newsletter file (stored first, if new), with their articles in `week`
    (default: the week of the issue built now)."""
    week = week or default_week(core.now(), core.config.tz)
    start, end = week.window(core.config.tz)
    with core.sessions.begin() as session:
        sync_sources(session, core.config)
        rows = source_statuses(session, [s.name for s in core.config.sources], start, end)
    return SourcesReport(week, rows)
