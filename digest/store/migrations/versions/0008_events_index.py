"""events: one index on (issue_id, type, email) for an issue's figures, in place of the single-column
indexes on issue_id and type

An issue's figures count its events per type and the distinct addresses among them; with this index
the store finds them without reading other issues' events, and counts the addresses from the index
alone. Its first column serves lookups by issue (ON DELETE SET NULL), so ix_events_issue_id goes;
nothing reads events by type alone, so ix_events_type goes too, and the webhook keeps one index
fewer to update per event.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_events_issue_id_type_email", "events", ["issue_id", "type", "email"])
    op.drop_index("ix_events_issue_id", table_name="events")
    op.drop_index("ix_events_type", table_name="events")


def downgrade() -> None:
    op.create_index("ix_events_type", "events", ["type"])
    op.create_index("ix_events_issue_id", "events", ["issue_id"])
    op.drop_index("ix_events_issue_id_type_email", table_name="events")
