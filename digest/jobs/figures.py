"""An issue's figures from the stored provider events: recipients, delivered, opened, clicked, bounced...

The recipients are read from the per-batch delivery counts the store keeps (delivery_counts), the rest
from the running counts that the webhook keeps in the transaction that stores the events
(`subscribers.events.count_events`, tables event_counts and event_people), so they follow the events
as they arrive and cost a few rows however many readers the issue had. Each figure counts people
(distinct addresses), not events; clicks per article also give the number of clicks. A click is
matched to an article by its URL with the utm_* parameters taken off, since the issue's links carry
them (`subscribers.events.without_utm`).

Unsubscribed counts the issue's recipients who left after it was sent and before the next issue was
(through our one-click link or page, which the provider never sees), plus any provider unsubscribe
event for the issue.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.core import Digest
from digest.store.models import Delivery, DeliveryCount, EventCount, EventPerson, Issue
from subscribers.events import link_key, status_kind, status_person, without_utm
from subscribers.models import SubscriberChange


@dataclass
class ArticleClicks:
    title: str
    url: str
    people: int = 0
    clicks: int = 0


@dataclass
class Figures:
    recipients: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    bounced: int = 0
    complained: int = 0
    unsubscribed: int = 0
    articles: list[ArticleClicks] = field(default_factory=list)
    other_clicks: int = 0  # links that are no article: the footer, social, view in browser
    events: int = 0

    def rate(self, count: int) -> str:
        return f"{100 * count / self.recipients:.1f}%" if self.recipients else "–"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


__all__ = ["ArticleClicks", "Figures", "figures_of", "issue_figures", "without_utm"]


def _cards(content: dict[str, Any]) -> list[dict[str, Any]]:
    top = [content["top"]] if content.get("top") else []
    return top + [a for s in content.get("sections", []) for a in s["articles"]]


def figures_of(core: Digest, issue: Issue) -> Figures:
    with core.sessions() as session:
        return issue_figures(session, issue)


def issue_figures(session: Session, issue: Issue) -> Figures:
    figures = Figures()
    # Kept per batch by the store's triggers on deliveries (migration 0018): a row per batch, not a
    # count of every delivery row.
    figures.recipients = int(
        session.scalar(
            select(func.coalesce(func.sum(DeliveryCount.deliveries), 0)).where(
                DeliveryCount.issue_id == issue.id, DeliveryCount.status == "sent"
            )
        )
        or 0
    )
    # The running counts the webhook keeps (subscribers.events.count_events): a few rows per issue.
    counts: dict[tuple[str, int], tuple[int, int]] = {
        (kind, link): (events, people)
        for kind, link, events, people in session.execute(
            select(EventCount.kind, EventCount.link, EventCount.events, EventCount.people).where(
                EventCount.issue_id == issue.id
            )
        )
    }
    figures.events = sum(n for (kind, link), (n, _) in counts.items() if link == 0 and ":" not in kind)
    figures.delivered = counts.get(("delivered", 0), (0, 0))[1]
    figures.opened = counts.get(("open", 0), (0, 0))[1]
    clicks, figures.clicked = counts.get(("click", 0), (0, 0))
    figures.bounced = counts.get((status_kind("bounced"), 0), (0, 0))[1]
    figures.complained = counts.get((status_kind("complained"), 0), (0, 0))[1]

    # The people who left: those a provider event unsubscribed, and the recipients who unsubscribed
    # through our own link or page (which the provider never sees) after this issue and before the next.
    left: set[int] = set(
        session.scalars(
            select(EventPerson.person).where(
                EventPerson.issue_id == issue.id, EventPerson.kind == status_kind("unsubscribed")
            )
        )
    )
    # A subscriber id is how status_person names a known person, so the same one counts once.
    left |= {status_person(subscriber_id, "") for subscriber_id in left_through_us(session, issue)}
    figures.unsubscribed = len(left)

    # Cards with one cleaned URL are one row (the last card's title), in the order they first appear.
    by_url = {without_utm(c["url"]): ArticleClicks(c["title"], c["url"]) for c in _cards(issue.content or {})}
    matched = 0
    for key, row in by_url.items():
        if key:
            row.clicks, row.people = counts.get(("click", link_key(key)), (0, 0))
            matched += row.clicks
    figures.articles = list(by_url.values())
    figures.other_clicks = clicks - matched
    return figures


def left_through_us(session: Session, issue: Issue) -> set[int]:
    """The readers sent this issue who unsubscribed through our own link or page (which the provider
    never sees) after it went out and before the next issue did."""
    since = issue.send_started_at or issue.sent_at
    if since is None:
        return set()
    later = session.scalar(select(func.min(Issue.send_started_at)).where(Issue.send_started_at > since))
    query = (
        select(SubscriberChange.subscriber_id)
        .join(Delivery, Delivery.subscriber_id == SubscriberChange.subscriber_id)
        .where(
            Delivery.issue_id == issue.id,
            Delivery.status == "sent",
            SubscriberChange.to_status == "unsubscribed",
            SubscriberChange.at >= since,
        )
    )
    if later is not None:
        query = query.where(SubscriberChange.at < later)
    return set(session.scalars(query.distinct()))
