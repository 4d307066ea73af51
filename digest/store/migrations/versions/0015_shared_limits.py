"""rate_limits: rate-limit windows shared by every web process; confirmation_queue: confirmation mail to send

`digest serve --workers N` runs several processes, and a limit held in one process's memory let a
client through N times. The windows are rows now, counted with one upsert per hit. The confirmation
mail is no longer sent inside the sign-up request: the request queues it, and the serve processes
send the queue (claiming rows so that each mail goes once).

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start", name="pk_rate_limits"),
    )
    op.create_index("ix_rate_limits_expires_at", "rate_limits", ["expires_at"])
    op.create_table(
        "confirmation_queue",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name="fk_confirmation_queue_subscriber_id_subscribers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_confirmation_queue"),
    )
    op.create_index("ix_confirmation_queue_subscriber_id", "confirmation_queue", ["subscriber_id"])
    op.create_index("ix_confirmation_queue_status_due_at", "confirmation_queue", ["status", "due_at"])


def downgrade() -> None:
    op.drop_table("confirmation_queue")
    op.drop_table("rate_limits")
