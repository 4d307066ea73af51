"""The store: migrations on SQLite and PostgreSQL, plural table names, UTC times."""

from datetime import UTC, datetime, timedelta, timezone

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from digest.store import db
from digest.store.models import Base, Source


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


def test_the_events_index_migration_goes_down_to_the_single_column_indexes_and_up_again(core):
    def indexes() -> set[str]:
        return {ix["name"] for ix in inspect(core.engine).get_indexes("events")}

    assert {"ix_events_issue_id_type_email", "ix_events_subscriber_id"} <= indexes()
    command.downgrade(db.alembic_config(core.engine), "0007")
    assert {"ix_events_issue_id", "ix_events_type"} <= indexes()
    assert "ix_events_issue_id_type_email" not in indexes()
    db.upgrade(core.engine)
    assert "ix_events_issue_id_type_email" in indexes() and not {"ix_events_issue_id", "ix_events_type"} & indexes()


def test_the_migrated_store_has_the_tables_columns_and_indexes_the_models_declare(core):
    with core.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    # APScheduler's job table is made by a migration (0003) but is not one of our models.
    ours = [d for d in differences if "apscheduler_jobs" not in repr(d)]
    assert ours == []


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
