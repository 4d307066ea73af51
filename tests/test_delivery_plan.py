"""The plan: active, confirmed, unsuppressed subscribers frozen into numbered batches, once."""

from __future__ import annotations

from sqlalchemy import func, select

from digest.delivery.plan import count_recipients, plan_batches
from digest.store.models import Batch, Delivery
from subscribers.models import Subscriber, Suppression
from subscribers.store import email_hash
from tests.fakes.seed import NOW, address, make_issue, seed_subscribers
from tests.planned import planned


def test_the_plan_freezes_active_confirmed_unsuppressed_subscribers_into_batches(core):
    with core.sessions.begin() as session:
        seed_subscribers(session, 25)
        people = {s.email: s for s in session.scalars(select(Subscriber))}
        people[address(3)].status = "unsubscribed"
        people[address(4)].status = "pending"
        people[address(5)].confirmed_at = None
        session.add(Suppression(email_hash=email_hash(address(6)), reason="bounced"))
        session.add(Suppression(email_hash=email_hash("someone.erased@example.org"), reason="erased"))
        issue = make_issue(session)
    with core.sessions.begin() as session:
        assert count_recipients(session, core.audience) == 21
        assert plan_batches(session, core.audience, issue, batch_size=10, now=NOW) == 3
    with core.sessions() as session:
        emails = dict(session.execute(select(Subscriber.id, Subscriber.email)).all())
        rows = [(number, emails[person]) for number, person in planned(session)]
        # Frozen on the batches: no deliveries row is written until a batch is claimed.
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0
        assert session.scalar(select(func.count()).select_from(Batch).where(Batch.status == "pending")) == 3
    expected = [address(i) for i in range(1, 26) if i not in (3, 4, 5, 6)]
    assert [e for _, e in rows] == expected
    # Numbered by subscriber: the first ten in batch 1, the next ten in batch 2, the last one in batch 3.
    assert [n for n, _ in rows] == [1] * 10 + [2] * 10 + [3]


def test_a_plan_that_exists_is_kept(core):
    with core.sessions.begin() as session:
        seed_subscribers(session, 5)
        issue = make_issue(session)
        assert plan_batches(session, core.audience, issue, batch_size=2, now=NOW) == 3
    with core.sessions.begin() as session:
        seed_subscribers(session, 5, start=6)  # joined after the plan: not in this issue
        assert plan_batches(session, core.audience, issue, batch_size=2, now=NOW) == 3
    with core.sessions() as session:
        assert len(planned(session)) == 5


def test_a_batch_gets_its_deliveries_rows_at_its_claim_and_an_erased_reader_none(core):
    from digest.delivery import run
    from subscribers.store import erase

    with core.sessions.begin() as session:
        seed_subscribers(session, 7)
        issue = make_issue(session)
        assert plan_batches(session, core.audience, issue, batch_size=3, now=NOW) == 3
    with core.sessions.begin() as session:
        erase(session, address(5), now=NOW)  # after the plan, before batch 2 is claimed
    figures = run.issue_figures(core.sessions, issue.id)
    assert (figures.recipients, figures.not_sent, figures.sent) == (7, 7, 0)
    assert run.plan_state(core.sessions, issue.id).recipients == 7

    _, report = run.deliver(core.mailer(), issue)

    assert (report.sent, report.failed, report.skipped) == (6, 0, 0)
    with core.sessions() as session:
        rows = session.execute(
            select(Batch.number, Subscriber.email, Delivery.status)
            .join(Delivery, Delivery.batch_id == Batch.id)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .order_by(Delivery.id)
        ).all()
        assert session.scalar(select(func.count()).select_from(Batch).where(Batch.members.is_not(None))) == 0
    # Each batch's rows follow subscriber id; the erased reader has none and was mailed nothing.
    assert [(n, e) for n, e, _ in rows] == [(1 + (i - 1) // 3, address(i)) for i in (1, 2, 3, 4, 6, 7)]
    assert {s for *_, s in rows} == {"sent"}
    figures = run.issue_figures(core.sessions, issue.id)
    assert (figures.recipients, figures.sent) == (6, 6)


def test_a_dry_run_of_a_plan_not_yet_claimed_reads_the_frozen_batch_and_stores_nothing(core):
    from digest.delivery import run

    with core.sessions.begin() as session:
        seed_subscribers(session, 5)
        issue = make_issue(session)
        assert plan_batches(session, core.audience, issue, batch_size=2, now=NOW) == 3
    dry = run.dry_run(core.mailer(), issue)
    assert (dry.planned, dry.recipients, dry.batches, dry.first_batch_recipients) == (True, 5, 3, 2)
    assert [(s.recipients, s.batches) for s in dry.segments] == [(5, 3)]
    with core.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0
        assert session.scalar(select(func.count()).select_from(Batch).where(Batch.members.is_not(None))) == 3
