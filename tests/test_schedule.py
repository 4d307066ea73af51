"""The weekly schedule with an injected clock: DST, missed runs inside and outside the grace period,
the empty week, and the jobs' fixed ids. Every test that touches the store runs on SQLite and PostgreSQL.

APScheduler reads the wall clock itself; `FakeClock` replaces it (and the core's clock) so that a
test can say "the process was down from 07:00 to 10:00" without waiting.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from digest import schedule
from digest.config import load_newsletter
from digest.content.weeks import Week, default_week
from digest.core import build_core
from digest.store.models import Issue
from subscribers.store import import_csv
from tests.conftest import EXAMPLE_CONFIG, ROOT
from tests.scheduling import Clock, ManualScheduler

NEW_YORK = ZoneInfo("America/New_York")


class FakeClock(Clock):
    def __init__(self, monkeypatch, moment: datetime):
        super().__init__(moment)
        self.freeze(monkeypatch.setattr)


def at(text: str, tz=NEW_YORK) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=tz)


@pytest.fixture
def sample_core(settings, monkeypatch):
    """The sample publication gathered, subscribers imported, and the clock at Monday 07:00."""
    clock = FakeClock(monkeypatch, at("2026-11-30T07:00"))
    core = build_core(settings, load_newsletter(EXAMPLE_CONFIG), clock=clock)
    with core.sessions.begin() as session:
        import_csv(session, ROOT / "examples/subscribers.csv", now=clock())
    yield core, clock
    schedule.use_core(None)
    core.close()


def outbox(core, week: str = "2026-w48") -> list:
    return sorted((core.settings.outbox_dir / week).glob("*.eml"))


def started(core) -> ManualScheduler:
    scheduler = schedule.make_scheduler(core, ManualScheduler)
    scheduler.start()
    return scheduler


@pytest.mark.parametrize(
    ("tz", "expected_utc"),
    [
        # Europe/Berlin leaves summer time on 25 Oct 2026 and enters it on 28 Mar 2027.
        ("Europe/Berlin", ["2026-10-19T06:00", "2026-10-26T07:00", "2026-11-02T07:00"]),
        # America/New_York leaves summer time on 1 Nov 2026.
        ("America/New_York", ["2026-10-19T12:00", "2026-10-26T12:00", "2026-11-02T13:00"]),
    ],
)
def test_the_weekly_run_stays_at_eight_local_time_across_daylight_saving_changes(tz, expected_utc):
    config = load_newsletter(EXAMPLE_CONFIG).model_copy(update={"timezone": tz})
    times = schedule.next_fire_times(schedule.weekly_trigger(config), 3, datetime(2026, 10, 15, tzinfo=UTC))
    assert [t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") for t in times] == expected_utc
    assert all(t.astimezone(ZoneInfo(tz)).hour == 8 for t in times)


def test_spring_forward_keeps_the_local_hour_in_berlin():
    config = load_newsletter(EXAMPLE_CONFIG).model_copy(update={"timezone": "Europe/Berlin"})
    times = schedule.next_fire_times(schedule.weekly_trigger(config), 2, datetime(2027, 3, 24, tzinfo=UTC))
    assert [t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") for t in times] == ["2027-03-29T06:00", "2027-04-05T06:00"]


def test_a_monday_run_files_the_week_that_just_ended():
    config = load_newsletter(EXAMPLE_CONFIG)
    assert default_week(at("2026-11-30T08:00"), config.tz) == Week(2026, 48)
    assert default_week(at("2026-11-27T17:00"), config.tz) == Week(2026, 48)  # a Friday send: its own week


def test_the_jobs_have_fixed_ids_and_are_not_duplicated_by_a_restart(sample_core):
    core, _clock = sample_core
    first = started(core)
    first.shutdown(wait=False)
    second = started(core)
    # The one-off resume job runs at the first tick; the two recurring jobs stay, once each.
    assert sorted(job.id for job in second.get_jobs()) == ["gather", "resume", "weekly"]
    weekly = second.get_job("weekly")
    assert weekly.next_run_time == at("2026-11-30T08:00")
    second.shutdown(wait=False)


def test_a_run_missed_inside_the_grace_period_still_sends_once(sample_core, caplog):
    core, clock = sample_core
    from digest.jobs.weekly import gather

    gather(core)
    scheduler = started(core)  # came up at 07:00, then (say) the machine slept until 10:00
    clock.set(at("2026-11-30T10:00"))
    with caplog.at_level(logging.INFO, logger="digest.schedule"):
        scheduler.tick()
        scheduler.tick()  # the same due time is never run twice
    assert len(outbox(core)) == 6
    assert "weekly: start: issue 2026-W48" in caplog.text
    assert "weekly: end: issue 2026-W48 (sent): 6 sent, 0 failed" in caplog.text
    assert scheduler.get_job("weekly").next_run_time == at("2026-12-07T08:00")
    scheduler.shutdown(wait=False)


def test_a_run_missed_beyond_the_grace_period_sends_nothing_stale_and_says_why(sample_core, caplog):
    core, clock = sample_core
    from digest.jobs.weekly import gather

    gather(core)
    scheduler = started(core)
    clock.set(at("2026-11-30T15:00"))  # seven hours late, grace is six
    with caplog.at_level(logging.INFO, logger="digest.schedule"):
        scheduler.tick()
    assert outbox(core) == []
    assert "weekly: issue 2026-W48 not sent: the process was down at 2026-11-30T08:00:00-05:00" in caplog.text
    with core.sessions() as session:
        assert session.scalars(select(Issue)).all() == []
    # The next week's run is scheduled as usual.
    assert scheduler.get_job("weekly").next_run_time == at("2026-12-07T08:00")
    scheduler.shutdown(wait=False)


def test_missed_runs_coalesce_into_one(sample_core, caplog):
    core, clock = sample_core
    from digest.jobs.weekly import gather

    gather(core)
    scheduler = started(core)
    # Two weekly runs (30 Nov and 7 Dec) fall in the time the process was down; only the last is run.
    clock.set(at("2026-12-07T09:00"))
    with caplog.at_level(logging.INFO, logger="digest.schedule"):
        scheduler.tick()
    starts = [r.getMessage() for r in caplog.records if r.getMessage().startswith("weekly: start")]
    assert starts == ["weekly: start: issue 2026-W49 (scheduled 2026-12-07T08:00:00-05:00)"]
    scheduler.shutdown(wait=False)


def test_a_week_with_nothing_new_composes_nothing_sends_nothing_and_logs_it(sample_core, caplog):
    core, clock = sample_core
    clock.set(at("2026-12-14T07:00"))  # the sample's articles are all older than the week of 7-13 December
    scheduler = started(core)
    clock.set(at("2026-12-14T08:00:05"))
    with caplog.at_level(logging.INFO, logger="digest.schedule"):
        scheduler.tick()
    assert "weekly: end: issue 2026-W50: nothing sent: no new articles in 2026-W50" in caplog.text
    assert not core.settings.outbox_dir.exists()
    with core.sessions() as session:
        assert session.scalars(select(Issue)).all() == []
    scheduler.shutdown(wait=False)


def test_the_gather_job_runs_at_start_then_hourly_and_logs_its_counts(sample_core, caplog):
    core, clock = sample_core
    scheduler = started(core)
    with caplog.at_level(logging.INFO, logger="digest.schedule"):
        scheduler.tick()  # at 07:00, the moment it started: the first gather does not wait an hour
    assert "gather: end: 3 sources ok, 0 failed, 15 new, 0 updated articles" in caplog.text
    assert scheduler.get_job("gather").next_run_time == at("2026-11-30T08:00")
    caplog.clear()
    clock.set(at("2026-11-30T08:00") + timedelta(seconds=1))
    with caplog.at_level(logging.INFO, logger="digest.schedule"):
        scheduler.tick()
    assert "gather: end: 3 sources ok, 0 failed, 0 new, 0 updated articles" in caplog.text
    scheduler.shutdown(wait=False)


def test_two_scheduler_processes_on_one_store_send_the_issue_once(settings, cli_env, tmp_path):
    """APScheduler 3 does not coordinate processes: both fire. The store's unique issue week, the
    send lock and the batches' compare-and-set must make it one send."""
    import subprocess
    import sys

    from digest.store.models import Batch, Delivery

    core = build_core(settings, load_newsletter(EXAMPLE_CONFIG))
    with core.sessions.begin() as session:
        import_csv(session, ROOT / "examples/subscribers.csv", now=at("2026-11-30T07:00"))
    core.close()
    command = [sys.executable, "-m", "tests.scheduling", "2026-11-30T07:00:00-05:00", "2026-11-30T08:00:30-05:00"]
    workers = [
        subprocess.Popen(command, cwd=ROOT, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    logs = [w.communicate(timeout=240)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), logs
    both = "\n".join(logs)
    assert "Traceback" not in both, both

    mails = sorted((tmp_path / "outbox" / "2026-w48").glob("*.eml"))
    assert len(mails) == 6, both
    core = build_core(settings, load_newsletter(EXAMPLE_CONFIG))
    try:
        with core.sessions() as session:
            issues = session.scalars(select(Issue)).all()
            assert [(i.week, i.status) for i in issues] == [("2026-W48", "sent")]
            assert session.query(Delivery).filter(Delivery.status == "sent").count() == 6
            assert {b.status for b in session.scalars(select(Batch))} == {"submitted"}
    finally:
        core.close()
    # One process sent; the other said why it did not.
    assert both.count("weekly: end: issue 2026-W48 (sent): 6 sent") == 1, both
