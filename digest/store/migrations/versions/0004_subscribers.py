"""subscribers: an opaque link key per subscriber for signed links, and when the confirmation was sent

Revision ID: 0004
Revises: 0001
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("link_key", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("confirmation_sent_at", sa.DateTime(), nullable=True))
    # Existing subscribers get their key here; new ones get it from the model's default.
    conn = op.get_bind()
    subscribers = sa.table("subscribers", sa.column("id", sa.Integer), sa.column("link_key", sa.String))
    ids = [row.id for row in conn.execute(sa.select(subscribers.c.id))]
    for subscriber_id in ids:
        conn.execute(
            subscribers.update().where(subscribers.c.id == subscriber_id).values(link_key=secrets.token_urlsafe(16))
        )
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.alter_column("link_key", existing_type=sa.String(length=32), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_subscribers_link_key"), ["link_key"])


def downgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_subscribers_link_key"), type_="unique")
        batch_op.drop_column("confirmation_sent_at")
        batch_op.drop_column("link_key")
