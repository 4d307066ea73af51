"""`digest sources`: every configured source's state, with its articles in a week; and `digest gather`'s
record of each source's outcome."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from digest.content.weeks import Week, default_week
from digest.core import Digest
from digest.gather.run import GatherReport, sync_sources
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


@dataclass(frozen=True)
class SourceState:
    """A source as `digest sources` shows it: last success, last error, the last document's items and how
    many were kept, articles in the week and in all, and its article pages that failed (fetched on demand)."""

    name: str
    url: str
    section: str
    last_success: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    failing: bool
    last_items: int | None
    last_kept: int | None
    articles_this_week: int
    articles: int
    page_failures: int  # article pages that failed when last tried: those articles show the feed's text
    last_page_error: str | None  # the latest, with its page's URL


def source_states(core: Digest, week: Week) -> list[SourceState]:
    """Every source of the newsletter file, in file order (the store's rows made to match it first)."""
    return [
        SourceState(
            r.name,
            r.url,
            r.section,
            r.last_success_at,
            r.last_error,
            r.last_error_at,
            r.failing,
            r.last_items,
            r.last_kept,
            r.articles_this_week,
            r.articles_total,
            r.page_failures,
            r.last_page_error,
        )
        for r in sources_in_week(core, week).sources
    ]


@dataclass(frozen=True)
class GatheredSource:
    """One source's outcome as `digest gather --json` prints it, in the newsletter file's order."""

    name: str
    ok: bool
    error: str | None
    warning: str | None  # a malformed feed read as far as possible; article pages refused
    not_modified: bool  # a 304: nothing read, nothing to do
    items: int | None  # in the document read; None when none was (a 304, a failed fetch)
    kept: int | None  # of those, read into articles
    new: int
    updated: int


def gathered_sources(report: GatherReport) -> list[GatheredSource]:
    return [
        GatheredSource(
            r.name,
            r.ok,
            r.error,
            r.warning,
            r.not_modified,
            r.items,
            None if r.items is None else r.articles,
            r.new,
            r.updated,
        )
        for r in report.sources
    ]
