"""The probes: /healthz answers whatever the store's state, /readyz only when the store is reachable and
at the code's migration head, with the reason otherwise."""

from __future__ import annotations

import socket

from digest.store import db
from tests.web_site import running_site


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on leaving: nothing listens there


def test_healthz_answers_when_the_store_cannot_be_reached_and_readyz_says_so(settings):
    nowhere = f"postgresql://digest@127.0.0.1:{_closed_port()}/nowhere"
    with running_site(settings, migrate=False, database_url=nowhere) as site:
        health = site.http.get("/healthz")
        ready = site.http.get("/readyz")
    assert health.status_code == 200 and health.json() == {"ok": True}
    assert health.headers["cache-control"] == "no-store"
    assert ready.status_code == 503
    assert ready.json() == {"ok": False, "reason": "the store cannot be reached"}
    assert "nowhere" not in ready.text  # the store's address is for the log, not for whoever asks
    assert ready.headers["retry-after"] == "10"


def test_readyz_refuses_a_store_without_migrations_then_answers_once_upgraded(settings):
    with running_site(settings, migrate=False) as site:
        before = site.http.get("/readyz")
        db.upgrade(site.core.engine)
        after = site.http.get("/readyz")
    assert before.status_code == 503
    assert before.json()["reason"] == "the store has no migrations applied: run digest db upgrade"
    assert after.status_code == 200 and after.json() == {"ok": True}


def test_readyz_names_a_store_behind_the_code(settings):
    head = db.head_revision()
    with running_site(settings, migrate=False) as site:
        db.upgrade(site.core.engine, "0011")
        ready = site.http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["reason"] == f"the store is at revision 0011, this code needs {head}: run digest db upgrade"


def test_readyz_names_a_store_migrated_by_a_newer_release(settings):
    head = db.head_revision()
    with running_site(settings, migrate=False) as site:
        db.upgrade(site.core.engine)
        with site.core.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
        ready = site.http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["reason"] == f"the store is at revision 9999, newer than this code ({head}): upgrade the digest"
