"""The real `digest schedule` process: SIGTERM finishes the batch in flight and stops; a restart
resumes the send where it was, mailing nobody twice. SendGrid is the loopback fake."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from sqlalchemy import select

from digest.config import load_newsletter
from digest.core import build_core
from digest.delivery.plan import plan_batches
from digest.store.models import Batch, Issue, utcnow
from tests.cli_helpers import run_cli
from tests.conftest import EXAMPLE_CONFIG, SAMPLE_WEEK
from tests.fakes.seed import address, make_issue, seed_subscribers
from tests.fakes.sendgrid import FakeSendGrid

ALL = sorted(address(i) for i in range(1, 1001))


def start_scheduler(env: dict, cwd) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "digest.cli", "schedule"],
        env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_sigterm_finishes_the_batch_in_flight_and_a_restart_resumes_the_send(cli_env, settings, tmp_path):
    config = tmp_path / "digest.toml"
    config.write_text(EXAMPLE_CONFIG.read_text(encoding="utf-8").replace("batch_size = 1000", "batch_size = 100"))
    core = build_core(settings, load_newsletter(config))
    with core.sessions.begin() as session:
        seed_subscribers(session, 1000)
        # An issue whose send was planned and then interrupted before any batch went out.
        plan_batches(session, core.audience, make_issue(session, SAMPLE_WEEK), batch_size=100, now=utcnow())

    def batches() -> dict[int, str]:
        with core.sessions() as session:
            return dict(session.execute(select(Batch.number, Batch.status)).all())

    with FakeSendGrid() as fake:
        env = {**cli_env, "DIGEST_CONFIG": str(config), "DIGEST_PROVIDER": "sendgrid",
               "DIGEST_SENDGRID_API_KEY": fake.api_key, "DIGEST_SENDGRID_API_HOST": fake.url}  # fmt: skip
        fake.set_schedule(lambda n: ("delay", 1.5) if n == 2 else "accept")
        first = start_scheduler(env, tmp_path)
        assert fake.wait_for_requests(2)  # batch 2 is in flight, its answer 1.5 s away
        first.send_signal(signal.SIGTERM)
        _out, err = first.communicate(timeout=60)
        assert first.returncode == 0, err
        assert "Traceback" not in err
        assert "received SIGTERM: finishing the work in hand, then stopping" in err
        states = batches()
        assert states[1] == states[2] == "submitted"  # the batch in flight was finished and recorded
        assert {states[n] for n in range(3, 11)} == {"pending"}
        assert len(fake.emails) == 200

        fake.set_schedule(lambda n: "accept")
        second = start_scheduler(env, tmp_path)
        wait_until(lambda: len(fake.emails) >= 1000)
        wait_until(lambda: set(batches().values()) == {"submitted"})
        second.send_signal(signal.SIGTERM)
        _out, err = second.communicate(timeout=60)
        assert second.returncode == 0, err
        assert f"resume: start: issue {SAMPLE_WEEK}, a send left unfinished" in err
        assert sorted(fake.emails) == ALL and fake.duplicates == {}
        assert fake.violations == []
    with core.sessions() as session:
        assert session.scalars(select(Issue.status)).one() == "sent"
    core.close()


def test_print_jobs_shows_the_next_three_runs_in_local_time_and_utc(cli_env, tmp_path):
    result = run_cli(["schedule", "--print-jobs"], cli_env, tmp_path)  # no scheduler runs: no process needed
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "gather: every 60 minutes"
    weekly = lines.index("weekly: cron '0 8 * * mon' (America/New_York)")
    runs = lines[weekly + 1 : weekly + 4]
    assert len(runs) == 3
    for run in runs:
        # "  2026-11-30 08:00 EST  (2026-11-30 13:00 UTC)": Monday 08:00 local, and the same instant in UTC
        local, utc = run.strip().split("  (")
        assert local.endswith(("08:00 EST", "08:00 EDT")) and utc.endswith(" UTC)")
        assert utc[11:16] == ("13:00" if "EST" in local else "12:00")
