"""Migration 0022: events lose their foreign keys (the webhook's INSERT joins the ids it writes); on the
way down, ids that name nobody are cleared before the keys come back."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from digest.store import db
from tests.fakes.seed import NOW


def keys(core) -> set[str]:
    return {key["referred_table"] for key in inspect(core.engine).get_foreign_keys("events")}


def test_events_have_no_keys_and_get_them_back_with_dangling_ids_cleared_on_downgrade(core):
    assert keys(core) == set()
    with core.engine.begin() as connection:  # an event whose issue and subscriber are gone
        connection.execute(
            text(
                "INSERT INTO events (provider_event_id, type, issue_id, subscriber_id, payload, received_at) "
                "VALUES ('sg-1', 'open', 999, 999, '{}', :now)"
            ),
            {"now": NOW.replace(tzinfo=None)},
        )
    command.downgrade(db.alembic_config(core.engine), "0021")
    assert keys(core) == {"issues", "subscribers"}
    with core.engine.connect() as connection:
        assert tuple(connection.execute(text("SELECT issue_id, subscriber_id FROM events")).one()) == (None, None)
    db.upgrade(core.engine)
    assert keys(core) == set()
