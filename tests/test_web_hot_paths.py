"""The web's hot paths in few statements (one on PostgreSQL), on SQLite and PostgreSQL: one-click unsubscribe,
the sign-up of a new address, and a pool that pings only connections that sat idle."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select, text

from digest.store import db
from digest.web.busy import retry_when_busy
from digest.web.unsubscribe import unsubscribe_link_key
from subscribers import signup, store
from subscribers.models import ConfirmationMail, Subscriber, SubscriberChange, Suppression
from tests.test_subscribers_store import changes

FORM = store.Consent("form", "203.0.113.7", "Mozilla/5.0 test")


def add(core, address: str, status: str = "active") -> Subscriber:
    with core.sessions.begin() as session:
        subscriber, _ = store.add(session, address, "Rita", now=core.now(), cause="test")
        if status != "active":
            store.set_status(session, subscriber, status, "test", core.now())
        return subscriber


def row(core, address: str) -> Subscriber:
    with core.sessions() as session:
        return session.scalars(select(Subscriber).where(Subscriber.email == address)).one()


def test_one_click_unsubscribe_changes_once_keeps_bounced_and_knows_no_stranger(core):
    reader = add(core, "reader@example.org")
    done = unsubscribe_link_key(core, reader.link_key, "one-click")
    assert done == store.Unsubscribed("reader@example.org", "unsubscribed", True)
    again = unsubscribe_link_key(core, reader.link_key, "one-click")
    assert again == store.Unsubscribed("reader@example.org", "unsubscribed", False)
    assert changes(core, reader.id)[1:] == [("active", "unsubscribed", "one-click")]
    with core.sessions() as session:
        logged_at = session.scalars(select(func.max(SubscriberChange.at))).one()
    assert row(core, "reader@example.org").updated_at == logged_at

    bounced = add(core, "gone@example.org", "bounced")
    assert unsubscribe_link_key(core, bounced.link_key, "one-click") == store.Unsubscribed(
        "gone@example.org", "bounced", False
    )
    assert row(core, "gone@example.org").status == "bounced"
    assert unsubscribe_link_key(core, "no-such-key", "one-click") is None


def test_racing_one_clicks_of_one_reader_write_one_history_row(core):
    reader = add(core, "racer@example.org")
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: retry_when_busy(unsubscribe_link_key, core, reader.link_key, "c"), range(16)))
    assert sum(r.changed for r in results) == 1
    assert all(r.status == "unsubscribed" for r in results)
    assert changes(core, reader.id)[1:] == [("active", "unsubscribed", "c")]


def test_a_new_address_is_stored_with_its_history_and_queued_mail_in_one_go(core):
    result = signup.sign_up(core.opt_in(), " New@Example.ORG ", "Nia", FORM, timezone="Europe/Lisbon")
    assert result.created and result.send_confirmation
    assert (result.subscriber.email, result.subscriber.status, result.subscriber.name) == (
        "new@example.org",
        "pending",
        "Nia",
    )
    stored = row(core, "new@example.org")
    assert stored.id == result.subscriber.id and stored.link_key == result.subscriber.link_key
    assert stored.email_hash == store.email_hash("new@example.org") and stored.timezone == "Europe/Lisbon"
    assert (stored.consent_source, stored.consent_ip, stored.consent_user_agent) == (
        "form",
        "203.0.113.7",
        "Mozilla/5.0 test",
    )
    assert stored.confirmation_sent_at == stored.created_at == stored.consent_at
    assert stored.confirmed_at is None and stored.preferences == {}
    assert changes(core, stored.id) == [(None, "pending", "sign-up via form")]
    with core.sessions() as session:
        queued = session.scalars(select(ConfirmationMail)).all()
    assert [(q.subscriber_id, q.status, q.attempts, q.due_at) for q in queued] == [
        (stored.id, "pending", 0, stored.created_at)
    ]

    # The same address again: the general path, which neither queues a second mail nor adds a row.
    again = signup.sign_up(core.opt_in(), "new@example.org", None, FORM)
    assert not again.created and not again.send_confirmation
    with core.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 1
        assert session.scalar(select(func.count()).select_from(ConfirmationMail)) == 1


def test_single_opt_in_sign_up_lifts_the_suppression_of_the_address(core):
    with core.sessions.begin() as session:
        store.suppress(session, "back@example.org", "erased", core.now())
        store.suppress(session, "other@example.org", "erased", core.now())
    with core.sessions() as session:
        result = store.sign_up_new(
            session.connection(), "back@example.org", None, FORM, now=core.now(), double_opt_in=False
        )
        session.commit()
    assert result is not None and result.subscriber.status == "active" and not result.send_confirmation
    with core.sessions() as session:
        left = session.scalars(select(Suppression.email_hash)).all()
        assert left == [store.email_hash("other@example.org")]
        assert session.scalar(select(func.count()).select_from(ConfirmationMail)) == 0
    back = row(core, "back@example.org")
    assert back.confirmed_at == back.created_at and back.confirmation_sent_at is None


def test_racing_sign_ups_of_one_new_address_make_one_subscriber_and_one_mail(core):
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(
                lambda _: retry_when_busy(signup.sign_up, core.opt_in(), "race@example.org", None, FORM), range(16)
            )
        )
    assert sum(r.created for r in results) == 1
    with core.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 1
        assert session.scalar(select(func.count()).select_from(SubscriberChange)) == 1
        assert session.scalar(select(func.count()).select_from(ConfirmationMail)) == 1


def _kill_other_connections(core) -> int:
    admin = db.make_engine(core.settings.database_url)
    try:
        with admin.connect() as connection:
            killed = connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND application_name = 'hot-path-test'"
                )
            ).scalar_one()
            connection.commit()
            return int(killed)
    finally:
        admin.dispose()


ON_POSTGRES = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


@pytest.fixture
def named_pg_core(core):
    with core.engine.connect() as connection:
        connection.exec_driver_sql("SET application_name = 'hot-path-test'")
        connection.commit()
    return core


@ON_POSTGRES  # the pool's ping and the killed backend are PostgreSQL's
def test_a_connection_killed_while_idle_is_pinged_and_replaced_unseen(named_pg_core, monkeypatch):
    core = named_pg_core
    reader = add(core, "idle@example.org")
    assert _kill_other_connections(core) == 1
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
    assert unsubscribe_link_key(core, reader.link_key, "one-click").changed  # no error: pinged, replaced


@ON_POSTGRES  # the pool's ping and the killed backend are PostgreSQL's
def test_a_connection_found_dead_in_use_is_retried_by_the_web(named_pg_core, monkeypatch):
    core = named_pg_core
    reader = add(core, "busy@example.org")
    assert _kill_other_connections(core) == 1
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 3600.0)  # as under load: no ping before use
    assert retry_when_busy(unsubscribe_link_key, core, reader.link_key, "one-click").changed
    assert changes(core, reader.id)[1:] == [("active", "unsubscribed", "one-click")]
