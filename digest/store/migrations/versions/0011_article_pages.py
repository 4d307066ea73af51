"""articles: the state of an article's page, fetched on demand when the article first enters a draft

`page_for` is the content_hash (the feed's version) the page was last tried for: when the feed
changes the item, gathering stores the feed's text again and the page is wanted again. The rest say
when it was tried, what went wrong (NULL after a success) and the page's ETag and Last-Modified.
Empty for every article gathered before: their pages are fetched when they next enter a draft.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

COLUMNS = ("page_for", "page_fetched_at", "page_error", "page_etag", "page_last_modified")


def upgrade() -> None:
    # ADD COLUMN in place on both databases (no batch copy of `articles`).
    op.add_column("articles", sa.Column("page_for", sa.String(64), nullable=True))
    op.add_column("articles", sa.Column("page_fetched_at", sa.DateTime(), nullable=True))
    op.add_column("articles", sa.Column("page_error", sa.Text(), nullable=True))
    op.add_column("articles", sa.Column("page_etag", sa.String(500), nullable=True))
    op.add_column("articles", sa.Column("page_last_modified", sa.String(100), nullable=True))


def downgrade() -> None:
    # Not in a batch: on SQLite a batch would copy `articles` and drop the old table. SQLite 3.35+
    # drops a column in place.
    for column in reversed(COLUMNS):
        op.drop_column("articles", column)
