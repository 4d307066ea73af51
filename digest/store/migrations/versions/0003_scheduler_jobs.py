"""the scheduler's job table, created here rather than by APScheduler

Two scheduler processes starting at once would both try to create it (APScheduler's job store calls
create_all on start); owning it in a migration makes it exist before any scheduler starts. The
columns are those SQLAlchemyJobStore declares.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "apscheduler_jobs",
        sa.Column("id", sa.Unicode(191), primary_key=True),
        sa.Column("next_run_time", sa.Float(25), index=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("apscheduler_jobs")
