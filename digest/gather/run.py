"""Gather every configured source into the store, one source's failure never stopping the rest."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select

from digest.config import NewsletterConfig, SourceConfig
from digest.gather.feeds import NotAFeed, parse_feed
from digest.gather.fetch import FetchError, fetch, new_client
from digest.gather.store import UpsertCounts, upsert_articles
from digest.models import Source, utcnow
from digest.summarize import SummaryLimits

log = logging.getLogger(__name__)


@dataclass
class SourceReport:
    name: str
    ok: bool
    new: int = 0
    updated: int = 0
    error: str | None = None


@dataclass
class GatherReport:
    sources: list[SourceReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> int:
        return sum(r.ok for r in self.sources)

    @property
    def failed(self) -> int:
        return sum(not r.ok for r in self.sources)

    @property
    def new(self) -> int:
        return sum(r.new for r in self.sources)

    @property
    def updated(self) -> int:
        return sum(r.updated for r in self.sources)


def sync_sources(session, config: NewsletterConfig) -> dict[str, Source]:
    """Make the sources table match the newsletter file (rows are kept for their fetch state)."""
    rows = {s.name: s for s in session.scalars(select(Source))}
    for sc in config.sources:
        url = config.resolve_location(sc.url)
        row = rows.get(sc.name)
        if row is None:
            row = rows[sc.name] = Source(name=sc.name, url=url, section=sc.section)
            session.add(row)
        elif row.url != url:
            row.url, row.etag, row.last_modified = url, None, None
        row.section = sc.section
    session.flush()
    return rows


def gather_sources(
    sessions, config: NewsletterConfig, limits: SummaryLimits, *, progress: Callable[[SourceReport], None] | None = None
) -> GatherReport:
    started = time.monotonic()
    report = GatherReport()
    with sessions.begin() as session:
        sync_sources(session, config)
    with new_client() as client:
        for sc in config.sources:
            result = _gather_one(sessions, config, sc, limits, client)
            report.sources.append(result)
            if progress:
                progress(result)
    report.seconds = time.monotonic() - started
    return report


def _gather_one(sessions, config: NewsletterConfig, sc: SourceConfig, limits, client) -> SourceReport:
    now = utcnow()
    try:
        with sessions.begin() as session:
            source = session.scalars(select(Source).where(Source.name == sc.name)).one()
            source.last_fetched_at = now
            fetched = fetch(source.url, client=client, etag=source.etag, last_modified=source.last_modified)
            counts = UpsertCounts()
            if not fetched.not_modified:
                feed = parse_feed(fetched.body, url=fetched.url)
                counts = upsert_articles(
                    session, source, feed.articles, section_map=sc.categories, limits=limits, now=now
                )
            source.etag, source.last_modified = fetched.etag, fetched.last_modified
            source.last_success_at = now
        return SourceReport(sc.name, True, counts.new, counts.updated)
    except (FetchError, NotAFeed) as exc:
        error = str(exc)
    except Exception as exc:  # one bad source must never stop the others
        log.exception("source %r failed unexpectedly", sc.name)
        error = f"unexpected error: {type(exc).__name__}: {exc}"
    # The failed transaction was rolled back; the error is recorded in a fresh one.
    with sessions.begin() as session:
        source = session.scalars(select(Source).where(Source.name == sc.name)).one()
        source.last_fetched_at, source.last_error, source.last_error_at = now, error, now
    log.warning("source %r: %s", sc.name, error)
    return SourceReport(sc.name, False, error=error)
