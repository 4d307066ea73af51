"""sources: `last_items` and `last_kept`, how many items the last document read had and how many were kept

`digest sources` shows them beside the last error, so that a feed whose items we cannot read (all of
them, or a few) is seen rather than taken for a quiet week. Empty until a source's next fetch.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("last_items", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("last_kept", sa.Integer(), nullable=True))


def downgrade() -> None:
    # Not in a batch: on SQLite a batch would copy `sources` and drop the old table, and with foreign
    # keys on, dropping it deletes every article (ON DELETE CASCADE). SQLite 3.35+ drops a column in place.
    op.drop_column("sources", "last_kept")
    op.drop_column("sources", "last_items")
