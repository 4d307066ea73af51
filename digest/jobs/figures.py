"""An issue's figures from the stored provider events: recipients, delivered, opened, clicked, bounced...

Counted from the store each time they are asked for, so they follow the events as the webhook stores
them. Each figure counts people (distinct addresses), not events; clicks per article also give the
number of clicks. A click is matched to an article by its URL with the utm_* parameters taken off,
since the issue's links carry them (`digest.email.render.with_utm`).

Unsubscribed counts the issue's recipients who left after it was sent and before the next issue was
(through our one-click link or page, which the provider never sees), plus any provider unsubscribe
event for the issue.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.core import Digest
from digest.store.models import Delivery, Event, Issue
from subscribers.events import effect
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


def without_utm(url: str) -> str:
    parts = urlsplit(url.strip())
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not k.lower().startswith("utm_")]
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, urlencode(query), ""))


def _cards(content: dict[str, Any]) -> list[dict[str, Any]]:
    top = [content["top"]] if content.get("top") else []
    return top + [a for s in content.get("sections", []) for a in s["articles"]]


def figures_of(core: Digest, issue: Issue) -> Figures:
    with core.sessions() as session:
        return issue_figures(session, issue)


def issue_figures(session: Session, issue: Issue) -> Figures:
    figures = Figures()
    figures.recipients = (
        session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.issue_id == issue.id, Delivery.status == "sent")
        )
        or 0
    )
    # Distinct people per simple event type, counted by the store.
    for kind, distinct, total in session.execute(
        select(Event.type, func.count(func.distinct(Event.email)), func.count())
        .where(Event.issue_id == issue.id)
        .group_by(Event.type)
    ):
        figures.events += total
        if kind == "delivered":
            figures.delivered = distinct
        elif kind == "open":
            figures.opened = distinct

    # The few events that act on a subscriber are judged the way the webhook judged them.
    acted: dict[str, set[int | str]] = defaultdict(set)
    rows = session.execute(
        select(Event.email, Event.subscriber_id, Event.payload).where(
            Event.issue_id == issue.id,
            Event.type.in_(("bounce", "dropped", "spamreport", "unsubscribe", "group_unsubscribe")),
        )
    )
    for email, subscriber_id, payload in rows:
        status = effect(payload or {})
        if status and email:
            # A person is their subscriber id when known, so that the same one is not counted twice below.
            acted[status].add(subscriber_id if subscriber_id is not None else email)
    figures.bounced = len(acted["bounced"])
    figures.complained = len(acted["complained"])
    left = acted["unsubscribed"]
    since = issue.send_started_at or issue.sent_at
    if since is not None:
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
        left |= set(session.scalars(query.distinct()))
    figures.unsubscribed = len(left)

    by_url = {without_utm(c["url"]): ArticleClicks(c["title"], c["url"]) for c in _cards(issue.content or {})}
    people: dict[str, set[str]] = defaultdict(set)
    clickers: set[str] = set()
    counts: Counter[str] = Counter()
    # Only the clicked URL is read out of each payload, and each distinct URL is cleaned once: an
    # issue's clicks are many people on a few links.
    keys: dict[str | None, str] = {}
    for email, url in session.execute(
        select(Event.email, Event.payload["url"].as_string()).where(Event.issue_id == issue.id, Event.type == "click")
    ):
        who = email or ""
        clickers.add(who)
        if (key := keys.get(url)) is None:
            key = keys[url] = without_utm(url) if isinstance(url, str) else ""
        if key in by_url:
            counts[key] += 1
            people[key].add(who)
        else:
            figures.other_clicks += 1
    figures.clicked = len(clickers)
    for key, row in by_url.items():
        row.clicks, row.people = counts[key], len(people[key])
    figures.articles = list(by_url.values())
    return figures
