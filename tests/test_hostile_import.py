"""A large subscriber import must not lock readers out (SQLite and PostgreSQL).

While `digest subscribers import` writes 20,000 rows in a subprocess, readers unsubscribe by one click
and visitors sign up through the real app. Nobody gets a 500 or waits for the whole import, every
reader who unsubscribed is unsubscribed at the end (even though the file lists them again), and an
import stopped halfway keeps what it wrote and finishes on a second run.
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from subscribers.models import Subscriber
from tests.import_load import count, load_while_importing, readers_who_will_leave, start_import, write_people
from tests.web_site import running_site

ROWS = 20_000
LEAVERS = 150


def statuses(core, addresses) -> dict[str, str]:
    with core.sessions() as session:
        rows = session.execute(select(Subscriber.email, Subscriber.status).where(Subscriber.email.in_(addresses)))
        return dict(rows.all())


def test_one_click_unsubscribes_and_sign_ups_get_through_while_a_large_import_runs(settings, cli_env, tmp_path):
    with running_site(settings, subscribe_per_ip_per_hour=100_000) as site:
        leavers = readers_who_will_leave(site.core, LEAVERS)
        # The file lists the leavers again, renamed, all through it: an import must not undo an unsubscribe.
        people = write_people(tmp_path / "people.csv", ROWS, also=[(a, "Renamed") for a in leavers])
        importing = start_import(cli_env, people, tmp_path)
        try:
            load = load_while_importing(site, importing, leavers, wait_for_rows=LEAVERS + 500)
            out, err = importing.communicate(timeout=600)
        finally:
            if importing.poll() is None:
                importing.kill()
        assert importing.returncode == 0, err
        assert f"{ROWS} added, " in out and "0 rejected" in out

        assert not [w for w in load.writes if w.status not in (200, 503)], "some write got neither 200 nor 503"
        assert all(w.retry_after for w in load.writes if w.status == 503), "a 503 without Retry-After"
        # Nobody waits for the import: a write waits for one short batch at most (bench/import.py).
        assert load.worst < 5, f"a web write waited {load.worst:.1f} s during the import"
        during = load.during()
        assert len([w for w in during if w.kind == "unsubscribe"]) >= 5, "the writes did not overlap the import"
        assert len([w for w in during if w.kind == "sign-up"]) >= 5, "the writes did not overlap the import"

        unsubscribed = {w.address for w in load.writes if w.kind == "unsubscribe"} & load.done
        assert unsubscribed, "no unsubscribe went through"
        assert set(statuses(site.core, unsubscribed).values()) == {"unsubscribed"}
        signed_up = {w.address for w in load.writes if w.kind == "sign-up"} & load.done
        assert set(statuses(site.core, signed_up).values()) == {"pending"}
        assert count(site.core) == ROWS + LEAVERS + len(signed_up)


def test_an_import_stopped_halfway_keeps_its_rows_and_a_second_run_finishes_it(core, cli_env, tmp_path):
    people = write_people(tmp_path / "people.csv", ROWS)
    importing = start_import(cli_env, people, tmp_path)
    try:
        deadline = time.monotonic() + 120
        while count(core) < 2_000 and importing.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        importing.send_signal(signal.SIGKILL)
        importing.wait(30)
    finally:
        if importing.poll() is None:
            importing.kill()
    kept = count(core)
    assert 2_000 <= kept < ROWS, "the import was not stopped halfway"

    again = start_import(cli_env, people, tmp_path)
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    assert f"{ROWS - kept} added, 0 updated, {kept} unchanged" in out
    assert count(core) == ROWS


# SQLite's single write lock: PostgreSQL locks rows, and waits for them, so these run on SQLite alone.
ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def locked_sqlite(settings, tmp_path, monkeypatch):
    """A site on a SQLite store whose writers give up after 0.5 s, and a way to hold its write lock."""
    import sqlite3

    from digest.store import db

    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 500)
    path = Path(settings.database_url.removeprefix("sqlite:///"))

    @contextlib.contextmanager
    def hold_write_lock(seconds: float | None = None):
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        release = threading.Timer(seconds, other.rollback) if seconds else None
        try:
            if release:
                release.start()
            yield
        finally:
            if release:
                release.join()
            else:
                other.rollback()
            other.close()

    with running_site(settings, api_token="api-token-for-this-test") as site:
        yield site, hold_write_lock


@ON_SQLITE
def test_a_store_locked_for_long_answers_503_with_retry_after_and_a_retry_then_works(locked_sqlite):
    site, hold_write_lock = locked_sqlite
    leavers = readers_who_will_leave(site.core, 2)
    (one_click_address, path), (api_address, _) = leavers.items()
    token = re.search(r'name="csrf_token" value="([^"]+)"', site.http.get("/subscribe").text)[1]
    api = {"Authorization": "Bearer api-token-for-this-test"}
    with hold_write_lock():
        answers = [
            site.http.post(path, data={"List-Unsubscribe": "One-Click"}),
            site.http.post("/api/unsubscribe", json={"email": api_address}, headers=api),
            site.http.post("/subscribe", data={"email": "visitor@example.org", "csrf_token": token}),
        ]
    assert [a.status_code for a in answers] == [503, 503, 503]
    assert all(a.headers["retry-after"] == "30" for a in answers)
    assert "try again" in answers[0].text and "try again" in answers[1].json()["error"]
    assert set(statuses(site.core, leavers).values()) == {"active"}  # nothing half-done

    # What a mail client does next: the same POST again, now that the store is free.
    assert site.http.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert site.http.post("/api/unsubscribe", json={"email": api_address}, headers=api).status_code == 200
    assert set(statuses(site.core, leavers).values()) == {"unsubscribed"}


@ON_SQLITE
def test_a_one_click_unsubscribe_outlasts_a_lock_longer_than_the_busy_timeout(locked_sqlite):
    site, hold_write_lock = locked_sqlite
    ((address, path),) = readers_who_will_leave(site.core, 1).items()
    with hold_write_lock(seconds=0.8):  # longer than the 0.5 s a writer waits: the first try fails
        answer = site.http.post(path, data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200
    assert statuses(site.core, [address]) == {address: "unsubscribed"}
