"""The state of each source, for `digest sources`: last success, last error, the last document's items
and how many were kept, articles this week, and the article pages that could not be fetched (their
articles show the feed's text: see digest.gather.ondemand)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.store.models import Article, Source


@dataclass(frozen=True)
class SourceStatus:
    name: str
    url: str
    section: str
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    last_items: int | None  # in the last document read; None before the first
    last_kept: int | None  # of those, read into articles
    articles_this_week: int
    articles_total: int
    page_failures: int = 0  # articles whose page failed the last time it was tried
    last_page_error: str | None = None  # the latest of those, with the page's URL
    last_page_error_at: datetime | None = None

    @property
    def failing(self) -> bool:
        """The last attempt failed (an old error followed by a success is history, not a problem)."""
        return self.last_error_at is not None and (
            self.last_success_at is None or self.last_error_at > self.last_success_at
        )


def source_statuses(session: Session, names: list[str], start: datetime, end: datetime) -> list[SourceStatus]:
    """The configured sources in file order; `start`-`end` is the week the counts are for."""
    week = (
        select(Article.source_id, func.count())
        .where(Article.published_at >= start, Article.published_at < end)
        .group_by(Article.source_id)
    )
    in_week = dict(session.execute(week).all())
    total = dict(session.execute(select(Article.source_id, func.count()).group_by(Article.source_id)).all())
    rows = {s.name: s for s in session.scalars(select(Source))}
    failed_pages = dict(
        session.execute(
            select(Article.source_id, func.count()).where(Article.page_error.is_not(None)).group_by(Article.source_id)
        ).all()
    )
    last_failed = _last_page_errors(session) if failed_pages else {}
    statuses = []
    for name in names:
        s = rows.get(name)
        if s is None:
            continue
        statuses.append(
            SourceStatus(
                s.name,
                s.url,
                s.section,
                s.last_success_at,
                s.last_error,
                s.last_error_at,
                s.last_items,
                s.last_kept,
                in_week.get(s.id, 0),
                total.get(s.id, 0),
                failed_pages.get(s.id, 0),
                *last_failed.get(s.id, (None, None)),
            )
        )
    return statuses


def _last_page_errors(session: Session) -> dict[int, tuple[str, datetime | None]]:
    """Each source's latest page failure, as "URL: error", and its time."""
    latest = (
        select(Article.source_id, func.max(Article.page_fetched_at).label("at"))
        .where(Article.page_error.is_not(None))
        .group_by(Article.source_id)
        .subquery()
    )
    query = select(Article.source_id, Article.url, Article.page_error, Article.page_fetched_at).join(
        latest, (Article.source_id == latest.c.source_id) & (Article.page_fetched_at == latest.c.at)
    )
    found: dict[int, tuple[str, datetime | None]] = {}
    for source_id, url, error, at in session.execute(query.where(Article.page_error.is_not(None))):
        found.setdefault(source_id, (f"{url}: {error}", at))
    return found
