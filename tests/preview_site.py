"""A running site whose store holds the sample publication's articles and a draft, for preview tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import select

from digest.config import Settings
from digest.delivery.lock import SendInProgress
from digest.jobs import weekly
from digest.store.models import Issue
from subscribers import store
from subscribers.models import Subscriber
from tests.web_site import Site, running_site

# Monday morning after the sample week, when the weekly job runs: the draft is 2026-W48's.
NOW = datetime(2026, 11, 30, 13, tzinfo=UTC)
# Names that occur in no sample article, so a test can look for them on a page.
READERS = {"ada@example.org": "Xanthippe Ada", "bo@example.org": "Quillon Bo", "cy@example.org": "Zephyrine Cy"}


@contextmanager
def site_with_draft(settings: Settings, **overrides) -> Iterator[tuple[Site, Issue]]:
    with running_site(settings, clock=lambda: NOW, **overrides) as site:
        # On a thread of its own: gathering runs an asyncio loop, and Playwright's may be running here.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(weekly.gather, site.core).result()
        yield site, weekly.build(site.core, None)


def issue_of(site: Site, slug: str = "2026-w48") -> Issue:
    with site.core.sessions() as session:
        return session.scalars(select(Issue).where(Issue.slug == slug)).one()


def mark_sent(site: Site, issue: Issue) -> None:
    """The issue as if sent to nobody, for tests that need only a public issue."""
    with site.core.sessions.begin() as session:
        stored = session.get(Issue, issue.id)
        stored.status, stored.send_started_at, stored.sent_at = "sent", NOW, NOW


def send_to_readers(site: Site, issue: Issue) -> list[Subscriber]:
    """Mail the issue through the outbox to a few active readers; returns them."""
    with site.core.sessions.begin() as session:
        for address, name in READERS.items():
            store.add(session, address, name, now=NOW, cause="test")
    # The send lock is a PostgreSQL advisory lock keyed by the issue's id alone, so another test run's
    # issue 1 in another schema of the same database can hold it for a moment.
    deadline = time.monotonic() + 30
    while True:
        try:
            weekly.send(site.core, issue)
            break
        except SendInProgress:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    with site.core.sessions() as session:
        return list(session.scalars(select(Subscriber).order_by(Subscriber.id)))


def card_titles(issue: Issue) -> list[str]:
    content = issue.content
    return [content["top"]["title"]] + [a["title"] for s in content["sections"] for a in s["articles"]]
