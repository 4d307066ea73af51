"""delivery_counts: each batch's deliveries by status, kept by the store's own triggers

An issue's figures show its recipients (deliveries in status `sent`). Counting them from the
(issue_id, status) index read a million index entries at a million recipients (150+ ms on every view
of the preview page and figures.json). The store now keeps the count per batch and status, in the same
statement that writes the deliveries, whoever writes them (the plan, the sender, a settle, a stop, an
erasure's cascade), so the figures add up one row per batch.

Per batch rather than per issue: two senders marking two batches sent update two rows, never one row
that every sender of the issue would queue on until it commits.

PostgreSQL: statement-level triggers with transition tables, so a plan's million-row INSERT adds one
grouped upsert, not a million. SQLite: row-level triggers (it has no statement-level ones).

A migration that rebuilds `deliveries` on SQLite (`batch_alter_table`, which copies the table) drops
these triggers: it must create them again (`create_sqlite_triggers`).

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_PG_FUNCTIONS = {
    "digest_delivery_counts_insert": """
INSERT INTO delivery_counts (batch_id, status, issue_id, deliveries)
SELECT batch_id, status, min(issue_id), count(*) FROM new_rows GROUP BY batch_id, status ORDER BY batch_id, status
ON CONFLICT (batch_id, status) DO UPDATE SET deliveries = delivery_counts.deliveries + excluded.deliveries""",
    "digest_delivery_counts_update": """
INSERT INTO delivery_counts (batch_id, status, issue_id, deliveries)
SELECT batch_id, status, min(issue_id), sum(n) FROM (
    SELECT batch_id, status, issue_id, -1 AS n FROM old_rows
    UNION ALL SELECT batch_id, status, issue_id, 1 FROM new_rows
) AS d GROUP BY batch_id, status HAVING sum(n) <> 0 ORDER BY batch_id, status
ON CONFLICT (batch_id, status) DO UPDATE SET deliveries = delivery_counts.deliveries + excluded.deliveries""",
    # Only rows still there: when a batch is deleted, its counts may go (cascade) before its deliveries.
    "digest_delivery_counts_delete": """
UPDATE delivery_counts SET deliveries = delivery_counts.deliveries - d.n
FROM (SELECT batch_id, status, count(*) AS n FROM old_rows GROUP BY batch_id, status) AS d
WHERE delivery_counts.batch_id = d.batch_id AND delivery_counts.status = d.status""",
}
_PG_TRIGGERS = {
    "digest_delivery_counts_insert": ("INSERT", "NEW TABLE AS new_rows"),
    "digest_delivery_counts_update": ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    "digest_delivery_counts_delete": ("DELETE", "OLD TABLE AS old_rows"),
}

_SQLITE_ADD = """
INSERT INTO delivery_counts (batch_id, status, issue_id, deliveries) VALUES (NEW.batch_id, NEW.status, NEW.issue_id, 1)
ON CONFLICT (batch_id, status) DO UPDATE SET deliveries = deliveries + 1;"""
_SQLITE_REMOVE = """
UPDATE delivery_counts SET deliveries = deliveries - 1 WHERE batch_id = OLD.batch_id AND status = OLD.status;"""
_SQLITE_TRIGGERS = {
    "digest_delivery_counts_insert": ("AFTER INSERT ON deliveries", _SQLITE_ADD),
    "digest_delivery_counts_update": (
        "AFTER UPDATE OF status, batch_id ON deliveries "
        "WHEN OLD.status IS NOT NEW.status OR OLD.batch_id IS NOT NEW.batch_id",
        _SQLITE_REMOVE + _SQLITE_ADD,
    ),
    "digest_delivery_counts_delete": ("AFTER DELETE ON deliveries", _SQLITE_REMOVE),
}


def create_sqlite_triggers(bind: sa.Connection) -> None:
    for name, (when, body) in _SQLITE_TRIGGERS.items():
        bind.exec_driver_sql(f"CREATE TRIGGER {name} {when} BEGIN {body} END")


def upgrade() -> None:
    op.create_table(
        "delivery_counts",
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("deliveries", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_delivery_counts_batch_id_batches"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("batch_id", "status", name=op.f("pk_delivery_counts")),
    )
    op.create_index("ix_delivery_counts_issue_id_status", "delivery_counts", ["issue_id", "status"])
    bind = op.get_bind()
    bind.execute(
        sa.text(
            "INSERT INTO delivery_counts (batch_id, status, issue_id, deliveries) "
            "SELECT batch_id, status, min(issue_id), count(*) FROM deliveries GROUP BY batch_id, status"
        )
    )
    if bind.dialect.name == "postgresql":
        for name, body in _PG_FUNCTIONS.items():
            bind.exec_driver_sql(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body}; RETURN NULL; END $$"
            )
            event, tables = _PG_TRIGGERS[name]
            bind.exec_driver_sql(
                f"CREATE TRIGGER {name} AFTER {event} ON deliveries REFERENCING {tables} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
            )
    else:
        create_sqlite_triggers(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for name in _PG_TRIGGERS:
        if bind.dialect.name == "postgresql":
            bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON deliveries")
            bind.exec_driver_sql(f"DROP FUNCTION IF EXISTS {name}()")
        else:
            bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_index("ix_delivery_counts_issue_id_status", table_name="delivery_counts")
    op.drop_table("delivery_counts")
