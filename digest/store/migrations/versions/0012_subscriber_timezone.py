"""subscribers: `timezone`; batches: `wave` and `send_at`; issues: `waves` and `provider_batch_id`

Local-time delivery (`[schedule] deliver = "local"`): a reader's IANA zone (None: the newsletter's zone),
and for each batch the wave it belongs to and the UTC instant it may go (None: at once). The issue keeps
its waves (the zones of each, their local and UTC time) for the preview, and the provider's id for the
scheduled sends of the issue (SendGrid's batch id), with which a stopped issue is cancelled there.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("timezone", sa.String(64), nullable=True))
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("wave", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("send_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("issues") as batch:
        batch.add_column(sa.Column("waves", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("provider_batch_id", sa.String(100), nullable=True))


def downgrade() -> None:
    # Not in a batch (see 0010): SQLite 3.35+ drops a column in place, without copying the table.
    op.drop_column("issues", "provider_batch_id")
    op.drop_column("issues", "waves")
    op.drop_column("batches", "send_at")
    op.drop_column("batches", "wave")
    op.drop_column("subscribers", "timezone")
