"""The plan: active, confirmed, unsuppressed subscribers frozen into numbered batches, once."""

from __future__ import annotations

from sqlalchemy import func, select

from digest.delivery.plan import count_recipients, plan_batches
from digest.store.models import Batch, Delivery
from subscribers.models import Subscriber, Suppression
from subscribers.store import email_hash
from tests.fakes.seed import NOW, address, make_issue, seed_subscribers


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
        rows = session.execute(
            select(Batch.number, Subscriber.email)
            .join(Delivery, Delivery.batch_id == Batch.id)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .order_by(Subscriber.id)
        ).all()
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
        assert session.scalar(select(func.count()).select_from(Delivery)) == 5
