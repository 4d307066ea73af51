"""deliveries: no (issue_id, status) index; on PostgreSQL, room in each page for a row's new version

A send writes every delivery row twice: made pending when its batch is claimed, then marked sent. With
`status` in an index, the second write inserted a new entry into every index of the table (PostgreSQL
cannot update a row in place, "HOT", when an indexed column changes), 14-32 ms a batch of 1,000 at a
million recipients. The index served the figures' recipient count, which now reads `delivery_counts`
(0018); the other readers of an issue's deliveries by status go through the batch's index or the unique
(issue_id, subscriber_id) key.

PostgreSQL also fills pages to 75% from now on (fillfactor), so that the new version of a row marked sent
fits on its page and the update stays in place. Existing pages keep their layout until rewritten.

Revision ID: 0019
Revises: 0018
"""

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_deliveries_issue_id_status", table_name="deliveries")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE deliveries SET (fillfactor = 75)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE deliveries RESET (fillfactor)")
    op.create_index("ix_deliveries_issue_id_status", "deliveries", ["issue_id", "status"])
