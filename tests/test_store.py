"""The store: migrations on SQLite and PostgreSQL, plural table names, UTC times."""

from datetime import UTC, datetime, timedelta, timezone

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from digest import db
from digest.models import Source


def test_migrations_create_every_table_and_reach_head(core):
    head = ScriptDirectory.from_config(db.alembic_config(core.engine)).get_current_head()
    assert db.current_revision(core.engine) == head
    tables = set(inspect(core.engine).get_table_names())
    assert {
        "sources",
        "articles",
        "issues",
        "batches",
        "deliveries",
        "events",
        "subscribers",
        "subscriber_changes",
        "suppressions",
    } <= tables


def test_migrations_go_down_and_up_again(core):
    command.downgrade(db.alembic_config(core.engine), "base")
    assert "articles" not in inspect(core.engine).get_table_names()
    db.upgrade(core.engine)
    assert "articles" in inspect(core.engine).get_table_names()


def test_upgrade_twice_changes_nothing(core):
    before = db.current_revision(core.engine)
    db.upgrade(core.engine)
    assert db.current_revision(core.engine) == before


def test_times_come_back_as_the_same_instant_in_utc(core):
    local = datetime(2026, 11, 23, 9, 30, tzinfo=timezone(timedelta(hours=-5)))
    with core.sessions.begin() as session:
        session.add(Source(name="s", url="x", section="Reporting", last_success_at=local))
    with core.sessions() as session:
        stored = session.query(Source).one().last_success_at
    assert stored == local and stored.tzinfo == UTC
