"""deliveries: an `error` column, the reason one recipient's message was not sent

A recipient whose message cannot be built or is refused on its own (a bad name or address that got
past an older version's checks, a substitution over the provider's limit) is recorded as failed with
the reason, and the rest of the batch goes out.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("error", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("error")
