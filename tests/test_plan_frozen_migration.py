"""Migration 0017 (the plan frozen on its batches): a plan made before it (deliveries rows) and one made
after it (members) both survive a downgrade and an upgrade, and are sent once each reader."""

from __future__ import annotations

import json

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
        rows = session.execute(select(Batch.number, Batch.recipients, Batch.members).order_by(Batch.number)).all()
    # 0017 counted the rows; 0020 put the pending ones back into their batch's members (no row is pending).
    assert [(n, count, json.loads(m) if m else None) for n, count, m in rows] == [
        (1, 2, [1, 2]),
        (2, 2, [3, 4]),
        (3, 1, None),
    ]
    figures = run.issue_figures(core.sessions, issue.id)
    assert (figures.recipients, figures.not_sent, figures.cancelled) == (5, 4, 1)
    _, report = run.deliver(core.mailer(), issue)
    assert report.sent == 4
    with core.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == "sent")) == 4


def test_pending_rows_go_back_into_members_and_a_person_row_needs_no_key_after_0020(core):
    """Migration 0020: rows pending (a batch claimed before it, failed or of unknown fate) become members
    again, rows settled stay; erasing a person still removes their rows, now without a foreign key."""
    from subscribers.store import erase
    from tests.fakes.seed import address

    with core.sessions.begin() as session:
        seed_subscribers(session, 4)
        issue = make_issue(session)
        assert plan_batches(session, core.audience, issue, batch_size=2, now=NOW) == 2
    command.downgrade(db.alembic_config(core.engine), "0019")
    with core.engine.begin() as connection:  # as 0019's sender left them: batch 1 sent, batch 2 failed
        for person in (1, 2, 3, 4):
            connection.execute(
                text(
                    "INSERT INTO deliveries (issue_id, batch_id, subscriber_id, status) "
                    "SELECT b.issue_id, b.id, :person, :status FROM batches b WHERE b.number = :number"
                ),
                {"person": person, "status": "sent" if person <= 2 else "pending", "number": 1 if person <= 2 else 2},
            )
        connection.execute(
            text("UPDATE batches SET members = NULL, status = CASE number WHEN 1 THEN 'submitted' ELSE 'failed' END")
        )
    db.upgrade(core.engine)

    with core.sessions() as session:
        rows = session.execute(select(Batch.number, Batch.recipients, Batch.members).order_by(Batch.number)).all()
        settled = session.execute(select(Delivery.subscriber_id, Delivery.status).order_by(Delivery.id)).all()
    assert [(n, count, json.loads(m) if m else None) for n, count, m in rows] == [(1, 2, None), (2, 2, [3, 4])]
    assert [tuple(r) for r in settled] == [(1, "sent"), (2, "sent")]
    figures = run.issue_figures(core.sessions, issue.id)
    assert (figures.sent, figures.not_sent) == (2, 2)

    with core.sessions.begin() as session:
        assert erase(session, address(1), now=NOW)
    with core.sessions() as session:
        assert session.scalars(select(Delivery.subscriber_id).order_by(Delivery.id)).all() == [2]
    _, report = run.deliver(core.mailer(), issue, resume=True)  # the failed batch goes again, from its members
    assert report.sent == 2
