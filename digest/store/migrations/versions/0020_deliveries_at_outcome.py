"""deliveries written once, with their outcome; no foreign key on `subscriber_id`

A send wrote every recipient's row twice: pending when its batch was claimed, then sent with the outcome
(at a million recipients on PostgreSQL, 12 ms and 6 ms of every batch of 1,000, most of the sender's time
in the store). A batch now keeps the readers it has not settled as its members (`batches.members`,
frozen by the plan, 0017) until they are settled, and each settled reader gets one row, written with its
final status: skipped or failed at the claim for whoever left or cannot be mailed, sent or failed with the
request's outcome for the rest. A batch's rows and its members never name the same person.

Existing pending rows (batches claimed before this revision and not settled: failed, of unknown fate, or
stopped) go back into their batch's members, in subscriber id order, and the rows are deleted; so no row
is pending any more.

`deliveries.subscriber_id` loses its foreign key: its check cost a probe per row written (on PostgreSQL
about 4 ms a batch of 1,000, a fifth of the send's store time). Erasing a person deletes their rows
itself, and rows are written only for people still in the store. The key on `batch_id` stays (deleting a
batch deletes its rows).

Rebuilding `deliveries` on SQLite (to drop the key) drops the triggers of 0018: they are made again.

Revision ID: 0020
Revises: 0019
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

_FK = "fk_deliveries_subscriber_id_subscribers"


def _sqlite_triggers() -> object:
    """0018's module, for the triggers it makes (a migration file is no importable module)."""
    spec = importlib.util.spec_from_file_location("digest_0018", Path(__file__).with_name("0018_event_rates.py"))
    if spec is None or spec.loader is None:
        raise RuntimeError("migration 0018 is missing beside 0020")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(
            "UPDATE batches b SET members = p.ids, recipients = p.n FROM ("
            "SELECT batch_id, CAST(json_agg(subscriber_id ORDER BY subscriber_id) AS text) AS ids, count(*) AS n "
            "FROM deliveries WHERE status = 'pending' GROUP BY batch_id) p WHERE b.id = p.batch_id"
        )
    else:
        pending = "FROM deliveries d WHERE d.batch_id = batches.id AND d.status = 'pending'"
        op.execute(
            "UPDATE batches SET "  # noqa: S608 (fixed fragments)
            f"members = (SELECT json_group_array(subscriber_id) FROM (SELECT d.subscriber_id {pending} "
            "ORDER BY d.subscriber_id)), "
            f"recipients = (SELECT count(*) {pending}) WHERE EXISTS (SELECT 1 {pending})"
        )
    op.execute("DELETE FROM deliveries WHERE status = 'pending'")
    if bind.dialect.name == "postgresql":
        op.drop_constraint(_FK, "deliveries", type_="foreignkey")
    else:
        with op.batch_alter_table("deliveries") as batch:
            batch.drop_constraint(_FK, type_="foreignkey")
        _sqlite_triggers().create_sqlite_triggers(bind)  # type: ignore[attr-defined]


def downgrade() -> None:
    bind = op.get_bind()
    # Before this revision a claimed batch had its readers as pending rows, and members only until claimed.
    if bind.dialect.name == "postgresql":
        members, person = "json_array_elements_text(CAST(b.members AS json)) AS j(value)", "CAST(j.value AS integer)"
    else:
        members, person = "json_each(b.members) j", "j.value"
    claimed = "b.members IS NOT NULL AND b.status IN ('submitting', 'failed', 'submitted')"
    op.execute(
        "INSERT INTO deliveries (issue_id, batch_id, subscriber_id, status) "  # noqa: S608 (fixed fragments)
        f"SELECT b.issue_id, b.id, s.id, 'pending' FROM batches b CROSS JOIN {members} "
        f"JOIN subscribers s ON s.id = {person} WHERE {claimed}"
    )
    op.execute(f"UPDATE batches SET members = NULL WHERE {claimed.replace('b.', '')}")  # noqa: S608
    # Rows of people erased meanwhile would break the key: they go first.
    op.execute("DELETE FROM deliveries WHERE NOT EXISTS (SELECT 1 FROM subscribers s WHERE s.id = subscriber_id)")
    with op.batch_alter_table("deliveries") as batch:
        batch.create_foreign_key(_FK, "subscribers", ["subscriber_id"], ["id"], ondelete="CASCADE")
    if bind.dialect.name == "sqlite":
        _sqlite_triggers().create_sqlite_triggers(bind)  # type: ignore[attr-defined]
