"""delivery_counts, kept by the store's triggers on deliveries (migration 0018), always equals counting
the deliveries themselves, whatever writes them: the plan, a send through a provider that fails some
batches, a retry, a batch moved or deleted, a subscriber erased; and an issue's figures read their
recipients from it."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import delete, func, select, update

from digest.delivery.run import deliver
from digest.jobs.figures import issue_figures
from digest.store import db
from digest.store.models import Batch, Delivery, DeliveryCount, Issue
from subscribers.models import Subscriber
from tests.fakes.seed import make_issue, seed_subscribers
from tests.fakes.sendgrid import FakeSendGrid, every
from tests.test_delivery_faults import sendgrid_core


@pytest.fixture
def fake():
    with FakeSendGrid() as server:
        yield server


def counted(session) -> dict[tuple[int, str], int]:
    return {
        (batch_id, status): n
        for batch_id, status, n in session.execute(
            select(Delivery.batch_id, Delivery.status, func.count()).group_by(Delivery.batch_id, Delivery.status)
        )
    }


def kept(session) -> dict[tuple[int, str], int]:
    rows = session.execute(select(DeliveryCount.batch_id, DeliveryCount.status, DeliveryCount.deliveries))
    return {(batch_id, status): n for batch_id, status, n in rows if n}


def check(core, issue_id: int) -> int:
    """The kept counts equal the counted ones, and the figures' recipients are the sent deliveries."""
    with core.sessions() as session:
        assert kept(session) == counted(session)
        sent = session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.issue_id == issue_id, Delivery.status == "sent")
        )
        issue = session.get(Issue, issue_id)
        assert issue is not None
        assert issue_figures(session, issue).recipients == sent
        return sent


def test_the_kept_counts_follow_every_write_to_deliveries(settings, fake):
    fake.set_schedule(every(3, [400]))  # every third request refused: its batch fails
    core = sendgrid_core(settings, fake, batch_size=7, retries=0, max_failed_batches=100)
    with core.sessions.begin() as session:
        seed_subscribers(session, 40)
        issue_id = make_issue(session).id
    with core.sessions() as session:
        issue = session.get(Issue, issue_id)
        _, report = deliver(core.mailer(), issue, sleep=lambda s: None)
    assert report.failed > 0  # the schedule failed some: they count as failed, not sent
    first = check(core, issue_id)
    assert 0 < first < 40

    fake.set_schedule(lambda n: "accept")
    with core.sessions() as session:
        issue = session.get(Issue, issue_id)
        deliver(core.mailer(), issue, resume=True, sleep=lambda s: None)
    assert check(core, issue_id) == 40

    with core.sessions.begin() as session:
        first_batch, second_batch = session.scalars(
            select(Batch.id).where(Batch.issue_id == issue_id).order_by(Batch.number).limit(2)
        ).all()
        # Moved to another batch, another status; a subscriber erased; a batch deleted.
        session.execute(
            update(Delivery)
            .where(Delivery.batch_id == first_batch, Delivery.id.in_(select(func.min(Delivery.id)).scalar_subquery()))
            .values(batch_id=second_batch, status="skipped")
        )
        victim = session.scalar(select(Delivery.subscriber_id).where(Delivery.batch_id == second_batch).limit(1))
        session.execute(delete(Subscriber).where(Subscriber.id == victim))
    check(core, issue_id)
    with core.sessions.begin() as session:
        session.execute(delete(Batch).where(Batch.id == second_batch))
    remaining = check(core, issue_id)
    assert remaining < 40
    with core.sessions.begin() as session:
        session.execute(delete(Issue).where(Issue.id == issue_id))
    with core.sessions() as session:
        assert kept(session) == {} and counted(session) == {}
    core.close()


def test_the_migration_counts_the_deliveries_already_stored(core):
    with core.sessions.begin() as session:
        seed_subscribers(session, 12)
        issue = make_issue(session)
        batch = Batch(issue_id=issue.id, number=1, status="submitted")
        session.add(batch)
        session.flush()
        for n, subscriber_id in enumerate(session.scalars(select(Subscriber.id).order_by(Subscriber.id))):
            session.add(Delivery(issue_id=issue.id, batch_id=batch.id, subscriber_id=subscriber_id,
                                 status="sent" if n < 9 else "failed"))  # fmt: skip
        issue_id = issue.id
    config = db.alembic_config(core.engine)
    command.downgrade(config, "0016")
    command.upgrade(config, "head")
    assert check(core, issue_id) == 9
    with core.sessions() as session:
        assert sorted(kept(session).values()) == [3, 9]
