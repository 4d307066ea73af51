"""The figures `/metrics` shows, read from the store when they are asked for.

Read from the store rather than counted in memory, so that every process (the web app that is scraped,
the scheduler that gathers and sends, a `digest send` run by hand) agrees: the scheduler's gathers and
sends show in the web app's /metrics. Each figure is one aggregate query.

The totals count rows that stay (deliveries, events, the subscribers' history): they only grow, except
that erasing a person (`digest subscribers remove --erase`) deletes their history and deliveries, which
a scraper then sees as a counter reset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, literal, select
from sqlalchemy.sql.elements import SQLCoreOperations

from digest.core import Digest
from digest.store.models import Batch, Delivery, Event, Issue, Source
from subscribers.models import Subscriber, SubscriberChange

SIGN_UP_CAUSE = "sign-up via "


@dataclass(frozen=True)
class SourceHealth:
    name: str
    failing: bool  # its last fetch failed (a later success clears it)
    last_success: datetime | None
    last_error: datetime | None


@dataclass
class StoreFigures:
    batches: dict[str, int] = field(default_factory=dict)  # state -> batches (all issues)
    issues: dict[str, int] = field(default_factory=dict)  # status -> issues
    deliveries: dict[str, int] = field(default_factory=dict)  # status -> recipients (pending, sent, skipped, failed)
    events: dict[str, int] = field(default_factory=dict)  # provider event type -> events stored
    subscribers: dict[str, int] = field(default_factory=dict)  # status -> subscribers
    sign_ups: dict[str, int] = field(default_factory=dict)  # form, api, operator (import, add) -> new subscribers
    unsubscribes: int = 0  # changes to unsubscribed, whatever the way
    sources: list[SourceHealth] = field(default_factory=list)
    last_gather: datetime | None = None  # the latest fetch of any source

    @property
    def recipients_sent(self) -> int:
        return self.deliveries.get("sent", 0)


def store_figures(core: Digest) -> StoreFigures:
    figures = StoreFigures()
    via = case(
        (SubscriberChange.cause.like(SIGN_UP_CAUSE + "%"), func.substr(SubscriberChange.cause, len(SIGN_UP_CAUSE) + 1)),
        else_=literal("operator"),
    )
    with core.sessions() as session:

        def grouped(column: SQLCoreOperations[Any], *where: ColumnElement[bool]) -> dict[str, int]:
            query = select(column, func.count()).where(*where).group_by(column)
            return {str(key): int(n) for key, n in session.execute(query).all()}

        figures.batches = grouped(Batch.status)
        figures.issues = grouped(Issue.status)
        figures.deliveries = grouped(Delivery.status)
        # A batch not claimed yet keeps its readers frozen on itself (batches.members), with no rows yet.
        for status, n in session.execute(
            select(Batch.status, func.sum(Batch.recipients)).where(Batch.members.is_not(None)).group_by(Batch.status)
        ).all():
            key = "cancelled" if status == "cancelled" else "pending"
            figures.deliveries[key] = figures.deliveries.get(key, 0) + int(n or 0)
        figures.events = grouped(Event.type)
        figures.subscribers = grouped(Subscriber.status)
        figures.sign_ups = grouped(via, SubscriberChange.from_status.is_(None))
        figures.unsubscribes = (
            session.scalar(
                select(func.count()).select_from(SubscriberChange).where(SubscriberChange.to_status == "unsubscribed")
            )
            or 0
        )
        rows = session.execute(
            select(Source.name, Source.last_success_at, Source.last_error_at, Source.last_fetched_at).order_by(
                Source.name
            )
        ).all()
    configured = {s.name for s in core.config.sources}
    for name, success, error, _fetched in rows:
        if name not in configured:
            continue  # a source taken out of digest.toml keeps its row; it is no longer gathered
        failing = error is not None and (success is None or error >= success)
        figures.sources.append(SourceHealth(name, failing, success, error))
    fetched = [fetched for name, _s, _e, fetched in rows if fetched is not None and name in configured]
    figures.last_gather = max(fetched, default=None)
    return figures
