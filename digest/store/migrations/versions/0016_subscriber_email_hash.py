"""subscribers: `email_hash`, indexed; deliveries: no foreign key on `issue_id`

`subscribers.email_hash` is `email_hash(email)` (SHA-256 of the trimmed, lower-cased address), the value
suppressions are stored as. The audience's suppression filter joins on it through an index; before, it
hashed every subscriber's address on each count and each plan (a third of a million-reader plan's time).
Every writer fills it (the model's default from `email`; the import's INSERT ... SELECT from its staged
hash). Existing rows are filled here in batches of ids: PostgreSQL computes the hash itself, SQLite
through the same Python function registered on the migration's connection.

On SQLite the column is added NOT NULL with an empty default (SQLite adds a NOT NULL column in place only
with a default; making it NOT NULL later would copy `subscribers`, and with foreign keys on, dropping the
old table would cascade into deliveries and history). PostgreSQL has no such default.

`deliveries.issue_id` loses its foreign key: a delivery belongs to its batch (`batch_id`, ON DELETE
CASCADE) and the batch to the issue (`batches.issue_id`, ON DELETE CASCADE), so deleting an issue still
deletes its deliveries, and a plan writes `issue_id` from the very batch it joins. The check cost one
index probe per delivery row (on PostgreSQL a third of inserting a plan's million rows). The foreign keys
on `batch_id` and `subscriber_id` stay: erasing a person deletes their deliveries through the latter, and
deleting a batch (a stopped issue) deletes its rows through the former. `issue_id` keeps its unique key
with `subscriber_id` (at most one delivery per reader per issue).

Revision ID: 0016
Revises: 0015
"""

import hashlib
import sqlite3
from typing import cast

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

BATCH = 50_000
_FK = "fk_deliveries_issue_id_issues"


def email_hash(address: str) -> str:
    """subscribers.models.email_hash, restated: a migration is fixed in time and the store sits below it."""
    return hashlib.sha256(address.strip().lower().encode("utf-8")).hexdigest()


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        op.add_column("subscribers", sa.Column("email_hash", sa.String(64), nullable=True))
        hashed = "encode(sha256(convert_to(lower(btrim(email)), 'UTF8')), 'hex')"
    else:
        op.add_column("subscribers", sa.Column("email_hash", sa.String(64), nullable=False, server_default=""))
        driver = cast(sqlite3.Connection, bind.connection.driver_connection)
        driver.create_function("digest_email_hash", 1, email_hash, deterministic=True)
        hashed = "digest_email_hash(email)"
    top = bind.scalar(sa.text("SELECT max(id) FROM subscribers")) or 0
    for start in range(0, top, BATCH):
        bind.execute(
            sa.text(f"UPDATE subscribers SET email_hash = {hashed} WHERE id > :a AND id <= :b"),  # noqa: S608
            {"a": start, "b": start + BATCH},
        )
    if postgres:
        op.alter_column("subscribers", "email_hash", nullable=False)
        op.drop_constraint(_FK, "deliveries", type_="foreignkey")
    else:
        # Recreates `deliveries` (nothing refers to it, so the copy cascades nowhere).
        with op.batch_alter_table("deliveries") as batch:
            batch.drop_constraint(_FK, type_="foreignkey")
    op.create_index("ix_subscribers_email_hash", "subscribers", ["email_hash"])


def downgrade() -> None:
    op.drop_index("ix_subscribers_email_hash", table_name="subscribers")
    with op.batch_alter_table("deliveries") as batch:
        batch.create_foreign_key(_FK, "issues", ["issue_id"], ["id"], ondelete="CASCADE")
    # Not in a batch: SQLite 3.35+ drops a column in place, without copying the table.
    op.drop_column("subscribers", "email_hash")
