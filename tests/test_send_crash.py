"""The real `digest send` process killed mid-send (SIGKILL) or asked to stop (SIGTERM), then
`digest send --resume`: nobody is mailed twice, and a batch whose fate is unknown is reported, not
re-sent, unless the operator says --retry-unknown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text

from digest.config import load_newsletter
from digest.core import build_core
from digest.store.models import Batch
from tests.cli_helpers import CliResult, run_cli
from tests.conftest import EXAMPLE_CONFIG, SAMPLE_WEEK
from tests.fakes.seed import address, sendgrid_send_env
from tests.fakes.sendgrid import FakeSendGrid

ALL = [address(i) for i in range(1, 1001)]


@pytest.fixture
def fake():
    with FakeSendGrid() as server:
        yield server


@pytest.fixture
def env(cli_env, settings, fake, tmp_path):
    """1,000 subscribers, a rendered issue for the sample week, batches of 100, SendGrid = the fake."""
    return sendgrid_send_env(cli_env, settings, fake, tmp_path, subscribers=1000)


def start_send(env: dict, cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "digest.cli", "send", "--week", SAMPLE_WEEK, *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_send(env: dict, cwd: Path, *args: str) -> CliResult:
    """A send that runs to its end: in this process (only a send that gets killed needs its own)."""
    return run_cli(["send", "--week", SAMPLE_WEEK, *args], env, cwd)


def batch_statuses(settings) -> dict[int, str]:
    core = build_core(settings, load_newsletter(EXAMPLE_CONFIG), migrate=False)
    with core.sessions() as session:
        rows = dict(session.execute(select(Batch.number, Batch.status)).all())
    core.close()
    return rows


def row_free(settings, number: int) -> bool:
    """True when no transaction holds batch `number`'s row (PostgreSQL)."""
    core = build_core(settings, load_newsletter(EXAMPLE_CONFIG), migrate=False)
    try:
        with core.engine.connect() as conn:
            found = conn.execute(
                text("SELECT id FROM batches WHERE number = :n FOR UPDATE SKIP LOCKED"), {"n": number}
            ).first()
            conn.rollback()
    finally:
        core.close()
    return found is not None


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_killed_after_the_provider_accepted_a_batch_resume_mails_nobody_twice(env, fake, settings, tmp_path):
    fake.set_schedule(lambda n: ("accept_then_hang", 60) if n == 3 else "accept")
    child = start_send(env, tmp_path)
    wait_until(lambda: len(fake.accepted) == 3)  # batch 3 went out; its answer never comes back
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    assert child.returncode == -signal.SIGKILL
    states = batch_statuses(settings)
    assert states[1] == states[2] == "submitted" and states[3] == "submitting"
    assert {states[n] for n in range(4, 11)} == {"pending"}

    plain = run_send(env, tmp_path)
    assert plain.returncode == 2 and "unfinished send" in plain.stderr and "--resume" in plain.stderr

    resumed = run_send(env, tmp_path, "--resume")
    assert resumed.returncode == 1, resumed.stderr
    assert "batch 3 (100 recipients) is in an unknown state" in resumed.stderr
    # Batches 4 to 10 went now; batch 3's 100 recipients stay of unknown fate; 1 and 2 had gone before.
    assert "this send 700 recipients in 7 batches: sent 700, failed 0, skipped 0, unknown 0" in resumed.stdout
    assert "the issue 1000 recipients in 10 batches: sent 900, failed 0, skipped 0, unknown 100" in resumed.stdout
    assert fake.duplicates == {}
    assert sorted(fake.emails) == ALL  # batch 3 had gone out before the kill; nobody else missed
    assert fake.violations == []
    assert batch_statuses(settings)[3] == "submitting"  # still the operator's call


def test_killed_before_the_provider_answered_retry_unknown_sends_that_batch_once(env, fake, settings, tmp_path):
    fake.set_schedule(lambda n: ("hang", 60) if n == 2 else "accept")
    child = start_send(env, tmp_path)
    assert fake.wait_for_requests(2)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)

    resumed = run_send(env, tmp_path, "--resume")
    assert resumed.returncode == 1
    assert "batch 2 (100 recipients) is in an unknown state" in resumed.stderr
    assert sorted(fake.emails) == ALL[:100] + ALL[200:]

    # The operator checked the provider's activity: batch 2 never arrived, so it goes again.
    again = run_send(env, tmp_path, "--resume", "--retry-unknown")
    assert again.returncode == 0, again.stderr
    assert "sent 100, failed 0, skipped 0, unknown 0" in again.stdout
    assert sorted(fake.emails) == ALL and fake.duplicates == {}
    assert set(batch_statuses(settings).values()) == {"submitted"}


def test_sigterm_finishes_the_batch_in_flight_and_exits_cleanly(env, fake, settings, tmp_path):
    fake.set_schedule(lambda n: ("delay", 1.0) if n == 2 else "accept")
    child = start_send(env, tmp_path)
    assert fake.wait_for_requests(2)
    child.send_signal(signal.SIGTERM)
    stdout, stderr = child.communicate(timeout=30)
    assert child.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "SIGTERM: finishing the batch in flight" in stderr and "digest send --resume" in stderr
    assert "sent 200," in stdout
    states = batch_statuses(settings)
    assert states[2] == "submitted" and states[3] == "pending"  # the batch in flight was recorded

    resumed = run_send(env, tmp_path, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(fake.emails) == ALL and fake.duplicates == {}


def test_a_second_send_while_one_runs_is_refused_on_sqlite_and_works_beside_it_on_postgres(
    env, fake, settings, tmp_path
):
    # The first send's first request is held until the second has run, however slow its start.
    fake.set_schedule(lambda n: ("delay", 120.0) if n == 1 else "accept")
    first = start_send(env, tmp_path)
    assert fake.wait_for_requests(1)
    if not settings.database_url.startswith("sqlite"):
        # The first claims batch 2 while its request is in flight, and lets it go when the answer is
        # slow (sender._HOLD_AHEAD_SECONDS): from then on only batch 1 is its own.
        wait_until(lambda: row_free(settings, 2), timeout=30)
    second = run_send(env, tmp_path, "--resume")
    fake.release()
    if settings.database_url.startswith("sqlite"):
        assert second.returncode == 1
        assert f"issue {SAMPLE_WEEK} is being sent by another process" in second.stderr
    else:
        # PostgreSQL: the second claims every batch but the one the first has in flight, which is
        # not taken for unknown (its sender is alive) and is left to the first.
        assert second.returncode == 0, second.stderr
        assert "this send 900 recipients in 9 batches: sent 900, failed 0, skipped 0, unknown 0 (" in second.stdout
    first.communicate(timeout=60)
    assert first.returncode == 0
    assert sorted(fake.emails) == ALL and fake.duplicates == {}
