"""event_counts and event_people: an issue's figures kept as running counts, the events so far counted;
an index for counting an issue's recipients

The webhook adds each new event to its issue's counts in the transaction that stores it
(`subscribers.events.count_events`); an issue's figures read those few rows instead of counting all its
events, which took seconds at a million recipients. event_people holds, per issue and kind (and clicked
link), one row per person seen (a hash of the address, or the subscriber's id), so that people are counted
once however many events they cause.

The events already stored are counted here, by the same function, so earlier issues' figures stay as they
were.

deliveries gets an index on (issue_id, status), from which the figures count an issue's recipients
without reading its delivery rows.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

from subscribers.events import count_events

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

CHUNK = 20_000


def upgrade() -> None:
    op.create_table(
        "event_counts",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=60), nullable=False),
        sa.Column("link", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("people", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], name=op.f("fk_event_counts_issue_id_issues"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("issue_id", "kind", "link", name=op.f("pk_event_counts")),
    )
    op.create_table(
        "event_people",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=60), nullable=False),
        sa.Column("link", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("person", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], name=op.f("fk_event_people_issue_id_issues"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("issue_id", "kind", "link", "person", name=op.f("pk_event_people")),
    )
    op.create_index("ix_deliveries_issue_id_status", "deliveries", ["issue_id", "status"])
    backfill(op.get_bind())


def backfill(connection: sa.Connection) -> None:
    """Count every stored event of an issue, a chunk at a time in id order."""
    events = sa.table(
        "events",
        sa.column("id", sa.Integer()),
        sa.column("issue_id", sa.Integer()),
        sa.column("type", sa.String()),
        sa.column("email", sa.String()),
        sa.column("subscriber_id", sa.Integer()),
        sa.column("payload", sa.JSON()),
    )
    last = 0
    while True:
        rows = connection.execute(
            sa.select(
                events.c.id, events.c.issue_id, events.c.type, events.c.email, events.c.subscriber_id, events.c.payload
            )
            .where(events.c.issue_id.is_not(None), events.c.id > last)
            .order_by(events.c.id)
            .limit(CHUNK)
        ).all()
        if not rows:
            return
        last = rows[-1][0]
        count_events(
            connection,
            [
                (issue_id, kind, email, subscriber, payload or {})
                for _, issue_id, kind, email, subscriber, payload in rows
            ],
        )


def downgrade() -> None:
    op.drop_index("ix_deliveries_issue_id_status", table_name="deliveries")
    op.drop_table("event_people")
    op.drop_table("event_counts")
