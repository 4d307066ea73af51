"""articles: the size of the article's image, as the feed or page gave it

`image_width` and `image_height` in pixels, both or neither, so that the e-mail can reserve the
image's box before it loads. NULL for every article gathered before, and wherever the source gives
no size (an enclosure, JSON Feed): such images are laid out by width alone, as before.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

COLUMNS = ("image_width", "image_height")


def upgrade() -> None:
    # ADD COLUMN in place on both databases (no batch copy of `articles`).
    for column in COLUMNS:
        op.add_column("articles", sa.Column(column, sa.Integer(), nullable=True))


def downgrade() -> None:
    # Not in a batch: on SQLite a batch would copy `articles`; SQLite 3.35+ drops a column in place.
    for column in reversed(COLUMNS):
        op.drop_column("articles", column)
