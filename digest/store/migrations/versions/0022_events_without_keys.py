"""events: no foreign keys on `issue_id` and `subscriber_id`

The webhook stores a batch of 1,000 events in one INSERT that joins each event to its issue and its
subscriber (`subscribers.events`), so every id it writes was found in the store in the same statement.
The two keys checked them again, row by row, and each check also locked the issue's row (FOR KEY SHARE):
with two web processes storing events of one issue at once, every batch shared that lock with the
other's. What they did besides: set the ids to NULL when a subscriber or an issue is deleted. Only
erasing deletes a subscriber, and it clears the person's events itself (`subscribers.store.erase`); no
command deletes an issue.

Revision ID: 0022
Revises: 0021
"""

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

_KEYS = {
    "fk_events_issue_id_issues": ("issues", "issue_id"),
    "fk_events_subscriber_id_subscribers": ("subscribers", "subscriber_id"),
}


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        for name in _KEYS:
            batch.drop_constraint(name, type_="foreignkey")


def downgrade() -> None:
    # Ids that name nobody (an issue or a subscriber deleted meanwhile) would break the keys: cleared first.
    op.execute("UPDATE events SET issue_id = NULL WHERE NOT EXISTS (SELECT 1 FROM issues i WHERE i.id = issue_id)")
    op.execute(
        "UPDATE events SET subscriber_id = NULL "
        "WHERE NOT EXISTS (SELECT 1 FROM subscribers s WHERE s.id = subscriber_id)"
    )
    with op.batch_alter_table("events") as batch:
        for name, (table, column) in _KEYS.items():
            batch.create_foreign_key(name, table, [column], ["id"], ondelete="SET NULL")
