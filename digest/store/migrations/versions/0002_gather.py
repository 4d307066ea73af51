"""gather: the image caption, and the content hash each article's summary was made from

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 05:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("image_caption", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("summary_hash", sa.String(length=64), nullable=True))
    # Articles gathered before this revision were summarized when stored.
    op.execute("UPDATE articles SET summary_hash = content_hash WHERE teaser IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.drop_column("summary_hash")
        batch_op.drop_column("image_caption")
