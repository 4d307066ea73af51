"""An issue's figures from the running counts equal the figures counted from its events, however the
events arrive: duplicates, replays, several opens per reader, bounces, batches of unknown fate settled,
two webhooks at once, and events stored before the counts existed (migration 0014's backfill)."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

from alembic import command
from sqlalchemy import func, insert, select

from digest.jobs.audience import store_provider_events
from digest.jobs.figures import issue_figures
from digest.store import db
from digest.store.models import Batch, Delivery, Event, EventCount, EventPerson, Issue
from subscribers import store
from subscribers.events import event_key
from subscribers.models import Subscriber
from tests.fakes.seed import NOW, address, make_issue, seed_subscribers
from tests.figures_by_scan import scanned_figures

ARTICLES = [f"https://meridian-review.example.org/2026/11/article-{n}" for n in range(4)]
READERS = 40


def sent_issue(session, week: str) -> Issue:
    issue = make_issue(session, week)
    issue.status, issue.send_started_at, issue.sent_at = "sent", NOW, NOW
    issue.content = {
        "top": {"title": "Top", "url": ARTICLES[0]},
        "sections": [
            {"name": "Reporting", "articles": [{"title": f"A{n}", "url": u} for n, u in enumerate(ARTICLES[1:])]},
            # The same article twice in an issue is one row of its figures.
            {"name": "Again", "articles": [{"title": "Top again", "url": ARTICLES[0] + "?utm_source=x"}]},
        ],
    }
    session.flush()
    return issue


def seed(session) -> tuple[Issue, Issue, int]:
    """Two sent issues to READERS subscribers; the second has a batch of unknown fate (readers 31-40)."""
    seed_subscribers(session, READERS)
    issue, other = sent_issue(session, "2026-W48"), sent_issue(session, "2026-W47")
    other.send_started_at = NOW - timedelta(days=7)
    ids = dict(session.execute(select(Subscriber.email, Subscriber.id)).all())
    done = Batch(issue_id=issue.id, number=1, status="submitted")
    # Its readers are its members still: nobody knows yet whether they were mailed.
    waiting = [ids[address(i)] for i in range(31, READERS + 1)]
    unknown = Batch(
        issue_id=issue.id, number=2, status="submitting", members=json.dumps(waiting), recipients=len(waiting)
    )
    session.add_all([done, unknown])
    session.flush()
    session.execute(
        insert(Delivery),
        [
            {"issue_id": issue.id, "batch_id": done.id, "subscriber_id": ids[address(i)], "status": "sent"}
            for i in range(1, 31)
        ],
    )
    return issue, other, unknown.id


def week_of_events(issue_id: int, other_id: int, unknown_batch: int) -> list[dict]:
    """A varied week: every event kind the figures read, for known and unknown people and issues."""
    found: list[dict] = []

    def add(kind: str, reader: int | None, issue: int | None = issue_id, **fields) -> None:
        event = {"event": kind, "sg_event_id": f"e{len(found)}", "timestamp": 1795856400 + len(found), **fields}
        if reader is not None:
            event["email"] = address(reader) if reader > 0 else f"stranger{-reader}@example.org"
        if issue is not None:
            event["issue_id"] = str(issue)
        found.append(event)

    for i in range(1, READERS + 1):
        batch = {"batch_id": str(unknown_batch)} if i > 30 else {}
        add("processed", i, **batch)
        add("delivered", i, **batch)
        for _ in range(i % 4):  # several opens per reader
            add("open", i)
        if i % 3 == 0:
            for k in range(i % 5):
                url = ARTICLES[(i + k) % 4] + ("?utm_source=digest&utm_medium=email" if k % 2 else "")
                add("click", i, url=url)
            add("click", i, url="https://bsky.app/profile/meridian?utm_source=digest")
    add("click", None, url=ARTICLES[1])  # a click without an address
    add("click", 5, url=42)
    add("open", 7, issue=None)  # no issue: no figures
    add("open", 7, issue=999)  # an issue we do not hold
    add("bounce", 2, type="bounce", reason="550 no such user")
    add("bounce", 2, type="bounce", reason="550 again")
    add("bounce", 4, type="blocked")  # temporary: not a bounce
    add("dropped", 6, reason="Bounced Address")
    add("dropped", 8, reason="Invalid SMTPAPI header")
    add("spamreport", 9)
    add("spamreport", -1)  # an address we do not hold
    add("unsubscribe", 10)
    add("group_unsubscribe", 10, asm_group_id=3)
    add("unsubscribe", -2)
    for i in (1, 2, 3):
        add("delivered", i, issue=other_id)
        add("open", i, issue=other_id)
    add("spamreport", 3, issue=other_id)
    # No sg_event_id: the event's own hash is its key, so a replay is a duplicate.
    found.append({"event": "open", "email": address(11), "issue_id": str(issue_id)})
    return found


def post_in_batches(core, events: list[dict], size: int) -> None:
    for start in range(0, len(events), size):
        store_provider_events(core, events[start : start + size])


def figures_both_ways(core, issue_id: int):
    with core.sessions() as session:
        issue = session.get(Issue, issue_id)
        return issue_figures(session, issue).as_dict(), scanned_figures(session, issue).as_dict()


def test_the_counted_figures_equal_the_figures_counted_from_the_events(core):
    with core.sessions.begin() as session:
        issue, other, unknown = seed(session)
        issue_id, other_id = issue.id, other.id
        # Reader 12 leaves through our own link after the issue went out: no provider event says so.
        store.set_status(session, session.get(Subscriber, 12), "unsubscribed", "one-click", NOW + timedelta(hours=2))
    events = week_of_events(issue_id, other_id, unknown)
    # Within one post, and across posts: SendGrid's retries and overlapping batches.
    post_in_batches(core, events + events[:25], 37)
    post_in_batches(core, events[::-1], 50)

    counted, scanned = figures_both_ways(core, issue_id)
    assert counted == scanned
    assert counted["recipients"] == READERS  # the unknown batch was settled by its events
    assert (counted["bounced"], counted["complained"], counted["unsubscribed"]) == (2, 2, 3)
    assert counted["opened"] == 30 and counted["delivered"] == READERS
    assert counted["other_clicks"] > 0 and all(a["people"] for a in counted["articles"])
    assert figures_both_ways(core, other_id)[0] == figures_both_ways(core, other_id)[1]


def test_posting_the_same_batch_again_changes_no_figure(core):
    with core.sessions.begin() as session:
        issue, other, unknown = seed(session)
        issue_id, other_id = issue.id, other.id
    events = week_of_events(issue_id, other_id, unknown)
    post_in_batches(core, events, 1000)
    once = figures_both_ways(core, issue_id)[0]
    post_in_batches(core, events, 1000)
    with core.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == len(events)
    assert figures_both_ways(core, issue_id) == (once, once)


def test_erasing_a_reader_keeps_the_counts_but_no_trace_of_them_among_the_people(core):
    with core.sessions.begin() as session:
        issue, other, unknown = seed(session)
        issue_id, other_id = issue.id, other.id
    post_in_batches(core, week_of_events(issue_id, other_id, unknown), 100)
    before = figures_both_ways(core, issue_id)[0]
    gone = address(10)  # delivered, opened twice, unsubscribed by a provider event
    with core.sessions.begin() as session:
        reader_id = session.scalar(select(Subscriber.id).where(Subscriber.email == gone))
        people = select(func.count()).select_from(EventPerson)
        assert session.scalar(people.where(EventPerson.person == store.person_key(gone))) > 0
        assert store.erase(session, gone, now=NOW + timedelta(days=1))
    with core.sessions() as session:
        assert session.scalar(people.where(EventPerson.person == store.person_key(gone))) == 0
        left = people.where(EventPerson.person == reader_id, EventPerson.kind.startswith("status:"))
        assert session.scalar(left) == 0
        after = issue_figures(session, session.get(Issue, issue_id)).as_dict()
    assert (after["opened"], after["delivered"]) == (before["opened"], before["delivered"])


def test_events_stored_before_the_counts_existed_are_counted_by_the_migration(settings):
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    sessions = db.session_factory(engine)
    with sessions.begin() as session:
        issue, other, unknown = seed(session)
        issue_id = issue.id
        events = week_of_events(issue_id, other.id, unknown)
        # Stored as the webhook stored them before 0014: the events alone.
        ids = dict(session.execute(select(Subscriber.email, Subscriber.id)).all())
        known = {issue_id, other.id}
        rows = [
            {
                "provider_event_id": event_key(e),
                "type": e["event"],
                "email": e.get("email"),
                "issue_id": int(e["issue_id"]) if int(e.get("issue_id", 0)) in known else None,
                "subscriber_id": ids.get(e.get("email")),
                "payload": e,
                "received_at": NOW,
            }
            for e in events
        ]
        session.execute(insert(Event), rows)
    # Back to before the counts existed, with the events kept; then 0014 counts what is there.
    command.downgrade(db.alembic_config(engine), "0013")
    db.upgrade(engine)
    with sessions() as session:
        issue = session.get(Issue, issue_id)
        assert issue_figures(session, issue).as_dict() == scanned_figures(session, issue).as_dict()
        assert issue_figures(session, issue).opened == 30
        # The way down and up again kept every reader the counts are made from: the unknown batch's as
        # its members again (0020 turns the pending rows its way down made back into members).
        rows = session.scalar(select(func.count()).select_from(Delivery))
        members = session.scalar(select(func.sum(Batch.recipients)).where(Batch.members.is_not(None)))
        assert (rows, members) == (30, READERS - 30)
        assert session.scalar(select(func.count()).select_from(Event)) == len(events)
    engine.dispose()


def test_two_webhooks_posting_overlapping_batches_at_once_store_and_count_each_event_once(core):
    # On SQLite the two wait for each other's write lock; on PostgreSQL they run at once and take row locks.
    with core.sessions.begin() as session:
        issue, other, unknown = seed(session)
        issue_id = issue.id
    events = week_of_events(issue_id, other.id, unknown)
    half = len(events) // 2
    # Each worker posts most of the week, the two overlapping in the middle, in opposite orders.
    plans = [events[: half + 60], events[half - 60 :][::-1]]
    for round_ in range(3):
        start = threading.Barrier(2)
        errors: list[BaseException] = []

        def post(plan: list[dict], start: threading.Barrier = start, errors: list = errors) -> None:
            try:
                start.wait()
                post_in_batches(core, plan, 40)
            except BaseException as exc:  # noqa: BLE001 - reported by the test below
                errors.append(exc)

        workers = [threading.Thread(target=post, args=(plan,)) for plan in plans]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert errors == []
        with core.sessions() as session:
            assert session.scalar(select(func.count()).select_from(Event)) == len(events)
            assert session.scalar(select(func.sum(EventCount.events)).where(EventCount.link == 0)) > 0
        counted, scanned = figures_both_ways(core, issue_id)
        assert counted == scanned, f"round {round_}"
