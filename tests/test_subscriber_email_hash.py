"""`subscribers.email_hash` (what the suppression filter joins on) equals email_hash(address) whoever wrote
the row, on SQLite and PostgreSQL, and the migration that added it fills it for rows already there."""

from __future__ import annotations

from alembic import command
from sqlalchemy import select, text

from digest.delivery.plan import count_recipients
from digest.store import db
from subscribers import store
from subscribers.models import Subscriber, Suppression

FORM = store.Consent("form", "203.0.113.7", "Mozilla/5.0 test")


def hashes(core) -> dict[str, str]:
    with core.sessions() as session:
        return dict(session.execute(select(Subscriber.email, Subscriber.email_hash)).all())


def test_a_sign_up_an_add_and_an_import_store_the_hash_of_the_address(core, tmp_path):
    people = tmp_path / "people.csv"
    people.write_text("email,name\nImported.One@Example.org,One\nimported.two@example.org,Two\n", encoding="utf-8")
    with core.sessions.begin() as session:
        store.sign_up(session, "Signed.Up@Example.org", None, FORM, now=core.now(), double_opt_in=False)
        store.add(session, "added@example.org", "Added", now=core.now(), cause="test")
    with core.sessions() as session:
        report = store.import_csv(session, people, now=core.now())
    assert report.added == 2

    stored = hashes(core)
    assert set(stored) == {"signed.up@example.org", "added@example.org", "imported.one@example.org",
                           "imported.two@example.org"}  # fmt: skip
    assert stored == {address: store.email_hash(address) for address in stored}
    assert store.email_hash("Imported.One@Example.org") == stored["imported.one@example.org"]


def test_an_erased_person_leaves_only_the_hash_that_keeps_them_out(core):
    with core.sessions.begin() as session:
        store.add(session, "ida@example.org", "Ida", now=core.now(), cause="test")
        store.add(session, "jo@example.org", "Jo", now=core.now(), cause="test")
        store.erase(session, "ida@example.org", now=core.now())
    assert hashes(core) == {"jo@example.org": store.email_hash("jo@example.org")}
    with core.sessions() as session:
        assert list(session.scalars(select(Suppression.email_hash))) == [store.email_hash("ida@example.org")]


def test_the_suppression_filter_matches_a_subscriber_by_the_stored_hash(core):
    with core.sessions.begin() as session:
        for address in ("kim@example.org", "lee@example.org"):
            store.add(session, address, None, now=core.now(), cause="test")
        store.suppress(session, "LEE@example.org ", "bounced", core.now())
    with core.sessions() as session:
        assert count_recipients(session, core.audience) == 1


def test_the_migration_fills_the_hash_of_every_subscriber_already_there(core):
    command.downgrade(db.alembic_config(core.engine), "0015")
    addresses = [f"reader{n}@example.org" for n in range(1, 6)] + ["Mixed.Case@Example.org"]
    with core.engine.begin() as connection:
        for n, address in enumerate(addresses):
            connection.execute(
                text(
                    "INSERT INTO subscribers (email, status, preferences, link_key, created_at, updated_at)"
                    " VALUES (:email, 'active', '{}', :key, :now, :now)"
                ),
                {"email": address, "key": f"key-{n}", "now": core.now().replace(tzinfo=None)},
            )
    db.upgrade(core.engine)

    assert hashes(core) == {address: store.email_hash(address) for address in addresses}
