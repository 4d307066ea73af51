"""deliveries: no index on `subscriber_id` alone; on PostgreSQL, pages filled again

Since 0020 a send writes each reader's row once, with its outcome, and every row written goes into each
index of the table: at a million recipients on PostgreSQL that INSERT is most of the server's work per
batch of 1,000. The index on `subscriber_id` alone served one reader, erasing a person, which now finds
their rows through the unique (issue_id, subscriber_id) key, one probe per issue
(`subscribers.store.erase`).

0019 left a quarter of each PostgreSQL page free for a row's second version (pending, then sent); rows are
no longer updated (but for a cancel), so pages are filled again. Existing pages keep their layout until
rewritten.

Revision ID: 0021
Revises: 0020
"""

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_deliveries_subscriber_id", table_name="deliveries")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE deliveries RESET (fillfactor)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE deliveries SET (fillfactor = 75)")
    op.create_index("ix_deliveries_subscriber_id", "deliveries", ["subscriber_id"])
