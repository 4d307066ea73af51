"""issues.top_article_id: the top story an editor pinned for the issue

Revision ID: 0005
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("issues") as batch:
        batch.add_column(sa.Column("top_article_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_issues_top_article_id_articles", "articles", ["top_article_id"], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("issues") as batch:
        batch.drop_constraint("fk_issues_top_article_id_articles", type_="foreignkey")
        batch.drop_column("top_article_id")
