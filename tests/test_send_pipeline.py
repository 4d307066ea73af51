"""The sender's pipeline (digest.delivery.sender): the next request is made while the last batch's
outcome is recorded, and on PostgreSQL the batch after it is claimed while a request is in flight. What
must not change: a request goes only once its batch is committed `submitting` and the batch before it is
recorded; a batch claimed ahead is not committed until the request before it is answered, and it is let
go when that answer is slow."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select, text

from digest.delivery import sender
from digest.delivery.providers.sendgrid_api import SendGridProvider
from digest.delivery.run import deliver
from digest.store.models import Batch
from tests.fakes.seed import address
from tests.fakes.sendgrid import FakeSendGrid
from tests.test_delivery_faults import prepare, sendgrid_core
from tests.test_delivery_sendgrid import ISSUE, recipient

postgres_only = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


@pytest.fixture
def fake():
    with FakeSendGrid() as server:
        yield server


def batch_states(core) -> dict[int, str]:
    with core.sessions() as session:
        return dict(session.execute(select(Batch.number, Batch.status)).all())


def test_each_request_goes_once_its_batch_is_claimed_and_the_one_before_recorded(settings, fake):
    core = sendgrid_core(settings, fake, batch_size=10)
    issue = prepare(core, 50)
    seen: dict[int, dict[int, str]] = {}

    def answer(n: int):
        seen[n] = batch_states(core)  # what the store holds, committed, while request n is in flight
        return "accept"

    fake.set_schedule(answer)
    _, report = deliver(core.mailer(), issue, sleep=lambda s: None)
    final = batch_states(core)
    core.close()

    assert report.sent == 50 and report.batches == 5
    assert sorted(fake.emails) == sorted(address(i) for i in range(1, 51)) and fake.duplicates == {}
    for n, states in seen.items():
        assert states[n] == "submitting", (n, states)
        assert all(states[m] == "submitted" for m in range(1, n)), (n, states)
        # The next batch may be claimed already on PostgreSQL, but not committed: it is still pending.
        assert all(states[m] == "pending" for m in range(n + 1, 6)), (n, states)
    assert set(final.values()) == {"submitted"} and len(seen) == 5


def row_locked(core, number: int) -> bool:
    with core.engine.connect() as conn:
        found = conn.execute(
            text("SELECT id FROM batches WHERE number = :n FOR UPDATE SKIP LOCKED"), {"n": number}
        ).first()
        conn.rollback()
    return found is None


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


@postgres_only
def test_a_batch_claimed_ahead_is_let_go_while_a_slow_answer_is_awaited(settings, fake, monkeypatch):
    monkeypatch.setattr(sender, "_HOLD_AHEAD_SECONDS", 2.0)
    core = sendgrid_core(settings, fake, batch_size=10)
    issue = prepare(core, 30)
    seen: list[str] = []

    def answer(n: int):
        if n == 1:
            # Batch 2 is claimed (its row locked, its claim uncommitted) while request 1 is in flight ...
            if wait_for(lambda: row_locked(core, 2), 10):
                seen.append(f"held {batch_states(core)[2]}")
            # ... and let go when the answer takes longer than the hold: another sender may take it.
            if wait_for(lambda: not row_locked(core, 2), 10):
                seen.append(f"let go {batch_states(core)[2]}")
        return "accept"

    fake.set_schedule(answer)
    _, report = deliver(core.mailer(), issue, sleep=lambda s: None)
    assert seen == ["held pending", "let go pending"]
    assert report.sent == 30 and report.batches == 3
    assert sorted(fake.emails) == sorted(address(i) for i in range(1, 31)) and fake.duplicates == {}
    assert set(batch_states(core).values()) == {"submitted"}
    core.close()


def test_the_outcome_is_committed_without_changing_the_connection_for_the_next_claim(settings, fake):
    core = sendgrid_core(settings, fake, batch_size=10)
    sqlite = core.engine.dialect.name == "sqlite"
    setting = "PRAGMA synchronous" if sqlite else "SHOW synchronous_commit"
    with core.engine.connect() as conn:
        before = conn.exec_driver_sql(setting).scalar()
    with sender._outcome_transaction(core.sessions) as session:
        relaxed = session.connection().exec_driver_sql(setting).scalar()
        session.execute(text("UPDATE issues SET status = status"))
    with core.sessions() as session:  # the pool's connection, as the next claim gets it
        after = session.connection().exec_driver_sql(setting).scalar()
    core.close()
    assert (relaxed, after) == ((1, before) if sqlite else ("off", before))
    assert before in (2, 3, "on")


def test_sendgrid_prepare_batch_sends_nothing_until_called(fake):
    provider = SendGridProvider(fake.api_key, host=fake.url, timeout=5)
    send = provider.prepare_batch(ISSUE, [recipient(1), recipient(2)], batch_id=7)
    assert fake.requests == 0
    result = send()
    assert fake.requests == 1 and set(result.sent) == {1, 2} and result.refused == {}
