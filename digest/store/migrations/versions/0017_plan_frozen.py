"""batches: `recipients` and `members`, the frozen plan; deliveries rows made when a batch is claimed

A plan froze a million recipients as a million `deliveries` rows, each inserted into five indexes and
checked against two foreign keys (on PostgreSQL, 30 s of the plan). It now freezes them on the batches
themselves: `members` is the JSON array of the batch's subscriber ids, in order, and `recipients` their
number. The claim turns a batch's members into its deliveries rows (pending) in the transaction that
moves it to `submitting`, and clears `members`: from then on the rows are the truth, as before.

A batch with `members` NULL has its deliveries rows: every batch of a plan made before this revision,
whose `recipients` is counted here from them.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Not in a batch: SQLite adds a column in place, without copying the table.
    op.add_column("batches", sa.Column("recipients", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("batches", sa.Column("members", sa.Text(), nullable=True))
    op.execute(
        "UPDATE batches SET recipients = (SELECT count(*) FROM deliveries d WHERE d.batch_id = batches.id) "
        "WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.batch_id = batches.id)"
    )


def downgrade() -> None:
    # Batches still frozen get their rows first, as a claim would make them.
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        members = "json_array_elements_text(CAST(b.members AS json)) WITH ORDINALITY AS j(value, key)"
        person = "CAST(j.value AS integer)"
    else:
        members = "json_each(b.members) j"
        person = "j.value"
    op.execute(
        "INSERT INTO deliveries (issue_id, batch_id, subscriber_id, status) "  # noqa: S608 (fixed fragments)
        f"SELECT b.issue_id, b.id, s.id, CASE b.status WHEN 'cancelled' THEN 'cancelled' ELSE 'pending' END "
        f"FROM batches b CROSS JOIN {members} JOIN subscribers s ON s.id = {person} "
        "WHERE b.members IS NOT NULL ORDER BY b.id, j.key"
    )
    op.drop_column("batches", "members")
    op.drop_column("batches", "recipients")
