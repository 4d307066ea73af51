"""Several senders of one issue at once (PostgreSQL): `digest send --workers 4` against the fake SendGrid
with faults, one worker SIGKILLed during its request, the others carrying on.

The promise, as digest/delivery/README.md states it: every recipient is mailed at most once. The killed
worker's batch in flight is of unknown fate: it is reported, never re-sent by itself, and settled by the
operator (`--mark-sent` when the provider's activity shows it went out, `--resume --retry-unknown` when
it did not); after that, everyone is mailed exactly once. On SQLite an issue has one sender:
`--workers` above 1 is refused."""

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
from digest.store.models import Batch, Delivery, Issue
from tests.cli_helpers import run_cli
from tests.conftest import SAMPLE_WEEK
from tests.fakes.seed import address, sendgrid_send_env
from tests.fakes.sendgrid import FakeSendGrid

SUBSCRIBERS = 2000  # 20 batches of 100
ALL = [address(i) for i in range(1, SUBSCRIBERS + 1)]
postgres_only = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def fake():
    with FakeSendGrid() as server:
        yield server


@pytest.fixture
def env(cli_env, settings, fake, tmp_path):
    return sendgrid_send_env(cli_env, settings, fake, tmp_path, subscribers=SUBSCRIBERS)


def start_send(env: dict, cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "digest.cli", "send", "--week", SAMPLE_WEEK, *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def store(settings, env):
    return build_core(settings, load_newsletter(Path(env["DIGEST_CONFIG"])), migrate=False)


def batch_statuses(settings, env) -> dict[int, str]:
    core = store(settings, env)
    with core.sessions() as session:
        rows = dict(session.execute(select(Batch.number, Batch.status)).all())
    core.close()
    return rows


def children_of(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(p) for p in found]


def owner_of_port(port: int, candidates: list[int]) -> int:
    """The process among `candidates` whose TCP socket has local port `port` (Linux /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    for pid in candidates:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return pid
    raise AssertionError(f"no worker holds port {port}")


def children_of_when_started(parent: subprocess.Popen, count: int = 4) -> list[int]:
    """The workers, once all have started (the parent plans first)."""
    for _ in range(600):
        found = children_of(parent.pid)
        if len(found) >= count or parent.poll() is not None:
            return found
        time.sleep(0.05)
    return children_of(parent.pid)


def kill_the_worker_sending(fake: FakeSendGrid, request: int, parent: subprocess.Popen) -> int:
    assert fake.wait_for_requests(request, timeout=60)
    victim = owner_of_port(fake.peers[request], children_of(parent.pid))
    os.kill(victim, signal.SIGKILL)
    return victim


# A fault on every few requests, and each answer a little slow so that the workers overlap.
def faults(hang: str, at: int):
    def answer(n: int):
        if n == at:
            return (hang, 120)
        return {2: 500, 4: 429, 9: 503, 12: 500}.get(n, ("delay", 0.05))

    return answer


@postgres_only
def test_four_workers_one_killed_after_its_batch_was_accepted_then_marked_sent(env, fake, settings, tmp_path):
    fake.set_schedule(faults("accept_then_hang", 7))
    parent = start_send(env, tmp_path, "--workers", "4")
    assert len(children_of_when_started(parent)) == 4
    victim = kill_the_worker_sending(fake, 7, parent)
    stdout, stderr = parent.communicate(timeout=120)

    assert parent.returncode == 1, stderr
    assert f"worker pid {victim} ended with signal SIGKILL and no report" in stderr
    states = batch_statuses(settings, env)
    unknown = [n for n, s in states.items() if s == "submitting"]
    assert len(unknown) == 1 and set(states.values()) == {"submitted", "submitting"}
    assert f"batch {unknown[0]} (100 recipients) is in an unknown state" in stderr
    # The killed worker's earlier batches count: the summary is the store's.
    assert "this send 2000 recipients in 20 batches: sent 1900, failed 0, skipped 0, unknown 100 (" in stdout, stderr
    # The killed worker's request had been accepted: everyone got it, nobody twice.
    assert sorted(fake.emails) == ALL and fake.duplicates == {} and fake.violations == []

    # The provider's activity shows the batch went out: the operator settles it; nothing is sent.
    settled = run_cli(["send", "--week", SAMPLE_WEEK, "--mark-sent", unknown[0]], env, tmp_path)
    assert settled.returncode == 0, settled.stderr
    assert sorted(fake.emails) == ALL and fake.duplicates == {}
    core = store(settings, env)
    with core.sessions() as session:
        assert set(session.scalars(select(Delivery.status)).all()) == {"sent"}
        assert session.scalars(select(Issue.status)).one() == "sent"
    core.close()


@postgres_only
def test_four_workers_one_killed_before_its_batch_was_accepted_then_retried_once(env, fake, settings, tmp_path):
    fake.set_schedule(faults("hang", 5))
    parent = start_send(env, tmp_path, "--workers", "4")
    kill_the_worker_sending(fake, 5, parent)
    stdout, stderr = parent.communicate(timeout=120)
    assert parent.returncode == 1, stderr
    assert "this send 2000 recipients in 20 batches: sent 1900, failed 0, skipped 0, unknown 100 (" in stdout
    missing = set(ALL) - set(fake.emails)
    assert len(missing) == 100 and fake.duplicates == {}

    # A plain resume does not re-send it; the operator, having checked, says it never arrived.
    again = run_cli(["send", "--week", SAMPLE_WEEK, "--resume", "--workers", "2"], env, tmp_path)
    assert (
        again.returncode == 1
        and "the issue 2000 recipients in 20 batches: sent 1900, failed 0, skipped 0, unknown 100," in again.stdout
    )
    retried = run_cli(["send", "--week", SAMPLE_WEEK, "--resume", "--retry-unknown", "--workers", "2"], env, tmp_path)
    assert retried.returncode == 0, retried.stderr
    assert "sent 100, failed 0, skipped 0, unknown 0" in retried.stdout
    assert sorted(fake.emails) == ALL and fake.duplicates == {} and fake.violations == []
    assert set(batch_statuses(settings, env).values()) == {"submitted"}


@postgres_only
def test_sigterm_stops_every_worker_after_its_batch_in_flight(env, fake, settings, tmp_path):
    fake.set_schedule(lambda n: ("delay", 1.0))
    parent = start_send(env, tmp_path, "--workers", "4")
    assert fake.wait_for_requests(4, timeout=60)
    parent.send_signal(signal.SIGTERM)
    stdout, stderr = parent.communicate(timeout=60)
    assert parent.returncode == 130, stderr
    assert "Traceback" not in stderr and "no report" not in stderr
    assert "SIGTERM: finishing the batch in flight" in stderr
    states = batch_statuses(settings, env)
    assert "submitting" not in states.values()  # every request in flight was answered and recorded
    assert "pending" in states.values()
    sent = len(fake.emails)
    assert f"sent {sent}, failed 0" in stdout

    resumed = run_cli(["send", "--week", SAMPLE_WEEK, "--resume", "--workers", "4"], env, tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(fake.emails) == ALL and fake.duplicates == {}


@postgres_only
def test_a_batch_another_sender_is_claiming_is_skipped_not_waited_for(env, fake, settings, tmp_path):
    fake.set_schedule(lambda n: 401)  # a first send plans the issue, then stops at the provider's refusal
    first = run_cli(["send", "--week", SAMPLE_WEEK], env, tmp_path)
    assert first.returncode == 1 and set(batch_statuses(settings, env).values()) == {"pending"}
    fake.set_schedule(lambda n: "accept")
    core = store(settings, env)
    # Another sender holds batch 1's row in the middle of its claim: a send now takes the others at once.
    with core.engine.connect() as other:
        other.execute(text("SELECT id FROM batches WHERE number = 1 FOR UPDATE"))
        second = run_cli(["send", "--week", SAMPLE_WEEK, "--resume"], env, tmp_path)
        other.rollback()
    core.close()
    assert second.returncode == 0, second.stderr
    assert batch_statuses(settings, env)[1] == "pending"
    assert sorted(fake.emails) == ALL[100:]
    last = run_cli(["send", "--week", SAMPLE_WEEK, "--resume"], env, tmp_path)
    assert last.returncode == 0, last.stderr
    assert sorted(fake.emails) == ALL and fake.duplicates == {}


@sqlite_only
def test_workers_on_sqlite_are_refused_with_the_way_to_postgresql(env, fake, settings, tmp_path):
    result = run_cli(["send", "--week", SAMPLE_WEEK, "--workers", "2"], env, tmp_path)
    assert result.returncode == 2
    assert "--workers 2 needs PostgreSQL" in result.stderr and "DIGEST_DATABASE_URL" in result.stderr
    assert fake.requests == 0
    one = run_cli(["send", "--week", SAMPLE_WEEK, "--workers", "1"], env, tmp_path)
    assert one.returncode == 0, one.stderr
    assert sorted(fake.emails) == ALL
