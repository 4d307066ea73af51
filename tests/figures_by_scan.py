"""An issue's figures as they were computed before the running counts (migration 0015): every event of
the issue read and counted. Kept as the reference the counts are tested against, and as the baseline
of bench/figures.py."""

from __future__ import annotations

from collections import Counter, defaultdict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.jobs.figures import ArticleClicks, Figures, _cards, left_through_us
from digest.store.models import Delivery, Event, Issue
from subscribers.events import effect, without_utm


def scanned_figures(session: Session, issue: Issue) -> Figures:
    """The figures counted from the events themselves, as before 0015: the reference the counts must equal."""
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
    left |= left_through_us(session, issue)
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
