"""Migration 0017 (the plan frozen on its batches): a plan made before it (deliveries rows) and one made
after it (members) both survive a downgrade and an upgrade, and are sent once each reader."""

from __future__ import annotations

from alembic import command
from sqlalchemy import func, select, text

from digest.delivery import run
from digest.delivery.plan import plan_batches
from digest.store import db
from digest.store.models import Batch, Delivery
from tests.fakes.seed import NOW, make_issue, seed_subscribers


def test_a_frozen_plan_gets_its_rows_on_downgrade_and_keeps_them_with_their_count_on_upgrade(core):
    with core.sessions.begin() as session:
        seed_subscribers(session, 5)
        issue = make_issue(session)
        assert plan_batches(session, core.audience, issue, batch_size=2, now=NOW) == 3
        session.execute(text("UPDATE batches SET status = 'cancelled' WHERE number = 3"))

    command.downgrade(db.alembic_config(core.engine), "0016")
    with core.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT b.number, d.status FROM deliveries d JOIN batches b ON b.id = d.batch_id ORDER BY d.id")
        ).all()
    assert [tuple(r) for r in rows] == [(1, "pending"), (1, "pending"), (2, "pending"), (2, "pending"),
                                        (3, "cancelled")]  # fmt: skip
    db.upgrade(core.engine)

    with core.sessions() as session:
        assert session.execute(select(Batch.number, Batch.recipients, Batch.members).order_by(Batch.number)).all() == [
            (1, 2, None),
            (2, 2, None),
            (3, 1, None),
        ]
    figures = run.issue_figures(core.sessions, issue.id)
    assert (figures.recipients, figures.not_sent, figures.cancelled) == (5, 4, 1)
    _, report = run.deliver(core.mailer(), issue)
    assert report.sent == 4
    with core.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == "sent")) == 4
