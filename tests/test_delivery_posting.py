"""A large send makes and posts its requests in a process of its own (digest.delivery.posting), and writes
each reader's delivery row once, with its outcome: everyone mailed once, whatever the process does."""

from __future__ import annotations

import json
import os
import signal
import threading

import pytest
from sqlalchemy import func, select, update

from digest.delivery import posting, run
from digest.delivery.run import deliver
from digest.store.models import Batch, Delivery, Issue
from tests.fakes.seed import address
from tests.fakes.sendgrid import FakeSendGrid
from tests.planned import planned
from tests.test_delivery_faults import prepare, sendgrid_core, statuses


@pytest.fixture
def fake():
    with FakeSendGrid() as server:
        yield server


@pytest.fixture
def processes(monkeypatch):
    """The request processes started, and how many requests each was told to send."""
    started: list[posting.RequestProcess] = []
    told: list[int] = []
    real_init, real_go = posting.RequestProcess.__init__, posting.ProcessRequest.go

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        started.append(self)

    def go(self):
        told.append(1)
        real_go(self)

    monkeypatch.setattr(posting.RequestProcess, "__init__", init)
    monkeypatch.setattr(posting.ProcessRequest, "go", go)
    return started, told


def rows_by_status(core, issue) -> dict[str, int]:
    with core.sessions() as session:
        return dict(
            session.execute(
                select(Delivery.status, func.count()).where(Delivery.issue_id == issue.id).group_by(Delivery.status)
            ).all()
        )


def test_a_large_send_posts_from_its_own_process_and_mails_everyone_once(settings, fake, processes):
    started, told = processes
    fake.set_schedule(lambda _n: ("delay", 0.1))  # long enough a send for the process to start (a second)
    core = sendgrid_core(settings, fake, request_process_batches=2)
    issue = prepare(core, 2000)
    planned_batches, report = deliver(core.mailer(), issue)
    core.close()

    assert planned_batches == 20 and report.sent == 2000
    assert len(started) == 1 and told  # the process took the batches once it had started
    assert started[0]._process.poll() is not None  # and it ended with the send
    assert fake.violations == [] and fake.duplicates == {}
    assert sorted(fake.emails) == [address(i) for i in range(1, 2001)]
    assert statuses(core, issue) == {"submitted": 20}
    assert rows_by_status(core, issue) == {"sent": 2000}
    with core.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Batch).where(Batch.members.is_not(None))) == 0
        # Each row carries the X-Message-Id of the request that took it.
        ids = set(session.scalars(select(Delivery.message_id).where(Delivery.issue_id == issue.id)))
    assert ids == {a.message_id for a in fake.accepted}


def test_a_small_send_posts_from_a_thread(settings, fake, processes):
    started, _ = processes
    core = sendgrid_core(settings, fake, request_process_batches=50)
    issue = prepare(core, 300)
    _, report = deliver(core.mailer(), issue)
    core.close()
    assert report.sent == 300 and started == []


def test_a_request_process_killed_mid_request_leaves_that_batch_unknown_and_the_rest_go_once(settings, fake, processes):
    started, told = processes
    core = sendgrid_core(settings, fake, request_process_batches=1)
    issue = prepare(core, 3000)
    # The request the process is posting when it dies: held by the fake, then accepted all the same.
    holding = threading.Event()

    def schedule(number: int):
        if len(told) == 2 and not holding.is_set():
            holding.set()
            return ("delay", 2.0)
        return ("delay", 0.1)

    fake.set_schedule(schedule)

    def kill_when_held():
        holding.wait(60)
        os.kill(started[0]._process.pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_when_held)
    killer.start()
    _, report = deliver(core.mailer(), issue)
    killer.join()
    core.close()

    # The held batch may have been taken (it was): of unknown fate, never sent again; the thread sent the rest.
    # The held batch's readers reach the fake once at most (it takes them when its hold ends), never twice.
    assert holding.is_set() and fake.duplicates == {} and len(fake.emails) in (2900, 3000)
    assert report.new_unknown == 1 and report.sent == 2900
    assert statuses(core, issue) == {"submitted": 29, "submitting": 1}
    assert rows_by_status(core, issue) == {"sent": 2900}
    figures = run.issue_figures(core.sessions, issue.id)
    assert (figures.sent, figures.unknown) == (2900, 100)


def test_the_claim_writes_no_row_for_a_batch_nobody_left_and_one_per_leaver(core):
    from digest.delivery.lock import InFlight
    from digest.delivery.plan import plan_batches
    from digest.delivery.sender import _claim, _due
    from subscribers import store as audience_store
    from subscribers.models import Subscriber
    from tests.fakes.seed import NOW, make_issue, seed_subscribers

    with core.sessions.begin() as session:
        seed_subscribers(session, 6)
        issue = make_issue(session)
        plan_batches(session, core.audience, issue, batch_size=3, now=NOW)
        second = [person for number, person in planned(session) if number == 2]
        audience_store.unsubscribe(session, session.get_one(Subscriber, second[0]), "test", now=NOW)

    due = _due(NOW, core.mailer().provider.schedules_ahead, None)
    first = _claim(core.sessions, core.audience, issue.id, ("pending",), [], due, InFlight())
    assert first is not None and [p.id for p in first.people] == [1, 2, 3] and first.left == []
    assert rows_by_status(core, issue) == {}  # nothing written for a batch nobody left
    then = _claim(core.sessions, core.audience, issue.id, ("pending",), [], due, InFlight())
    assert then is not None and then.left == [second[0]] and [p.id for p in then.people] == second[1:]
    assert rows_by_status(core, issue) == {"skipped": 1}
    with core.sessions() as session:
        members, count = session.execute(select(Batch.members, Batch.recipients).where(Batch.number == 2)).one()
    # The leaver's row and the members never name the same person.
    assert json.loads(members) == second[1:] and count == 2


def test_a_batch_accepted_whole_gets_sent_rows_for_the_people_still_there_unless_it_moved_on(core):
    # The rows writer as a send uses it: on PostgreSQL a thread with one statement a batch, on SQLite at once.
    from datetime import timedelta

    from sqlalchemy import delete

    from digest.delivery.plan import plan_batches
    from digest.delivery.sender import _RowsWriter, _SentRows
    from subscribers.models import Subscriber
    from tests.fakes.seed import NOW, make_issue, seed_subscribers

    with core.sessions.begin() as session:
        seed_subscribers(session, 6)
        issue = make_issue(session)
        plan_batches(session, core.audience, issue, batch_size=3, now=NOW)
        members = dict(_members_by_batch(session))
        ids = dict(session.execute(select(Batch.number, Batch.id)).all())
        session.execute(update(Batch).values(status="submitted", submitted_at=NOW))
        session.execute(update(Batch).where(Batch.number == 2).values(status="cancelled"))
        erased = members[1][1]
        session.execute(delete(Subscriber).where(Subscriber.id == erased))
    at = NOW + timedelta(minutes=1)
    writer = _RowsWriter(core.sessions, core.audience, own_thread=core.engine.dialect.name == "postgresql")
    writer.write(_SentRows(ids[1], issue.id, members[1], "msg-1", at))
    writer.write(_SentRows(ids[2], issue.id, members[2], "msg-2", at))  # cancelled meanwhile: no rows
    writer.close()

    with core.sessions() as session:
        rows = session.execute(
            select(Delivery.subscriber_id, Delivery.status, Delivery.message_id, Delivery.sent_at)
        ).all()
        left = dict(session.execute(select(Batch.number, Batch.members)).all())
    kept = [p for p in members[1] if p != erased]
    assert sorted(rows) == [(p, "sent", "msg-1", at) for p in kept]  # nothing of the erased person
    assert left[1] is None and json.loads(left[2]) == members[2]


def _members_by_batch(session):
    for number, members in session.execute(select(Batch.number, Batch.members).order_by(Batch.number)):
        yield number, json.loads(members)


def test_rows_a_sender_did_not_write_before_it_died_are_written_by_the_next_send(settings, fake):
    core = sendgrid_core(settings, fake, request_process_batches=0)
    issue = prepare(core, 250)
    with core.sessions.begin() as session:
        from digest.delivery.plan import plan_batches
        from tests.fakes.seed import NOW

        plan_batches(session, core.audience, session.get_one(Issue, issue.id), batch_size=100, now=NOW)
        # Batch 1 was accepted whole, and its sender died before writing its rows.
        session.execute(update(Batch).where(Batch.number == 1).values(status="submitted", submitted_at=NOW))
    figures = run.issue_figures(core.sessions, issue.id)
    assert (figures.sent, figures.not_sent) == (100, 150)  # its members count as sent meanwhile

    _, report = deliver(core.mailer(), issue)
    core.close()
    assert report.sent == 150 and len(fake.emails) == 150  # batch 1 is not sent again
    assert rows_by_status(core, issue) == {"sent": 250}
    figures = run.issue_figures(core.sessions, issue.id)
    assert (figures.sent, figures.not_sent) == (250, 0)


def test_a_batch_that_moves_while_its_request_is_made_ahead_is_never_sent(settings, fake):
    # Batch 3 is read (SQLite) or claimed (PostgreSQL) ahead while batch 2's request is in flight, and
    # cancelled by the operator right then: its request, made already, is cancelled too.
    core = sendgrid_core(settings, fake, request_process_batches=0)
    issue = prepare(core, 500)
    moved: list[int] = []

    def schedule(number: int):
        if number == 2 and not moved:
            with core.sessions.begin() as session:
                session.execute(
                    update(Batch).where(Batch.issue_id == issue.id, Batch.number == 3).values(status="cancelled")
                )
            moved.append(3)
        return "accept"

    fake.set_schedule(schedule)
    _, report = deliver(core.mailer(), issue)
    core.close()
    assert moved == [3] and report.sent == 400
    assert fake.duplicates == {} and sorted(fake.emails) == [address(i) for i in [*range(1, 201), *range(301, 501)]]
    assert statuses(core, issue) == {"submitted": 4, "cancelled": 1}
