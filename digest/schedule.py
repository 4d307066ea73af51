"""The weekly send and the hourly gather, run by APScheduler 3 from jobs kept in the store.

Jobs have fixed ids and are added with replace_existing=True, so restarting the process (or running
`digest schedule` after editing the schedule) never duplicates them. APScheduler 3 has no locking
between processes: two schedulers on one database would both fire. What keeps a week to one send is
the store: one issue row per week (a unique key) and the batches' compare-and-set.

Which issue a weekly run sends: what was published since the end of the last sent issue's window (see
`digest.content.compose`), filed under the ISO week of the day before the run. With the default Monday 08:00
that is the week that just ended; articles of a week whose send was skipped go out with the next one.

The gather runs at start and then every `gather_every_minutes`.

Missed runs: a weekly run missed while the process was down still runs when it comes back within the
grace period (default 6 hours); after that it is skipped and logged, never sent stale. Missed runs
coalesce into one.

With `[schedule] deliver = "local"` the weekly job gives way to the waves job (every `wave_check_minutes`):
the crontab then only names the day; the issue is composed at that day's first wave (the earliest zone's
`local_time`) and each wave is sent when due (see digest/delivery/README.md, "Waves").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from types import FrameType
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobEvent
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from digest.config import NewsletterConfig
from digest.content.weeks import default_week
from digest.core import Digest
from digest.delivery.lock import SendInProgress
from digest.delivery.waves import LocalDelivery
from digest.errors import NothingToSend
from digest.jobs.local import delivery_day, previous_fire_time, weekly_trigger

log = logging.getLogger("digest.schedule")

GATHER_JOB = "gather"
WEEKLY_JOB = "weekly"
WAVES_JOB = "waves"
RESUME_JOB = "resume"
JOBS_TABLE = "apscheduler_jobs"

# Jobs kept in the store are referenced by name and cannot carry the core; the process that runs
# the scheduler registers its core here before starting.
_core: Digest | None = None


def use_core(core: Digest | None) -> None:
    global _core
    _core = core


def _current() -> Digest:
    if _core is None:
        raise RuntimeError("no core registered; call digest.schedule.use_core(core) first")
    return _core


def gather_trigger(config: NewsletterConfig) -> IntervalTrigger:
    return IntervalTrigger(minutes=config.schedule.gather_every_minutes, timezone=config.tz)


def next_fire_times(trigger: BaseTrigger, count: int, now: datetime) -> list[datetime]:
    times: list[datetime] = []
    previous = None
    moment = trigger.get_next_fire_time(None, now)
    while moment is not None and len(times) < count:
        times.append(moment)
        previous = moment
        moment = trigger.get_next_fire_time(previous, previous + timedelta(seconds=1))
    return times


def gather_job() -> None:
    from digest.jobs.weekly import gather

    core = _current()
    started = time.monotonic()
    log.info("gather: start")
    report = gather(core)
    log.info(
        "gather: end: %d sources ok, %d failed, %d new, %d updated articles, %.1fs",
        report.ok,
        report.failed,
        report.new,
        report.updated,
        time.monotonic() - started,
    )


def weekly_job() -> None:
    """Compose, render and send the issue of the run that is due (see the module's notes)."""
    from digest.jobs.weekly import run_once

    core = _current()
    if core.config.schedule.deliver == "local":
        return  # the waves job sends
    now = core.now()
    scheduled = previous_fire_time(core.config, now)
    if scheduled is None:
        log.warning("weekly: no scheduled time in the last 8 days; nothing to send")
        return
    late = now - scheduled
    grace = timedelta(hours=core.config.schedule.grace_hours)
    week = default_week(scheduled, core.config.tz)
    if late > grace:
        # APScheduler's own misfire check normally catches this first; the core's clock decides too.
        log.warning(
            "weekly: issue %s not sent: its run at %s was missed by %s (grace %s)", week, scheduled, late, grace
        )
        return
    started = time.monotonic()
    log.info("weekly: start: issue %s (scheduled %s)", week, scheduled.astimezone(core.config.tz).isoformat())
    try:
        report = run_once(core, None)
    except NothingToSend as exc:
        log.info("weekly: end: issue %s: nothing sent: %s (%.1fs)", week, exc, time.monotonic() - started)
        return
    except SendInProgress as exc:
        # Two schedulers on one store both fire; the send lock lets one send and this one step aside.
        log.info("weekly: end: issue %s: left to the other sender: %s", week, exc)
        return
    s = report.send
    log.info(
        "weekly: end: issue %s (%s): %d sent, %d failed, %d skipped, %d unknown batches, %.1fs",
        report.issue.week,
        report.issue.status,
        s.sent,
        s.failed,
        s.skipped,
        len(s.unknown_batches),
        time.monotonic() - started,
    )


def waves_job() -> None:
    """With `deliver = "local"`, every few minutes: compose, render and plan the coming day's issue once
    its earliest wave has come, then send every wave that is due (SMTP and the outbox send a wave at its
    time; SendGrid takes each wave up to 72 hours ahead with `send_at`).

    Restart-safe as the weekly run is: the plan is stored once, a wave's batches move by compare-and-set,
    and a pending batch is only claimed when due; a restart in the middle of the waves sends what is left."""
    from digest.jobs.issues import find_issue
    from digest.jobs.local import due_waves, local_delivery, waves_on
    from digest.jobs.weekly import run_once, send

    core = _current()
    if core.config.schedule.deliver != "local":
        return  # the weekly job sends
    now = core.now()
    grace = timedelta(hours=core.config.schedule.grace_hours)
    day = delivery_day(core, now)
    waves = waves_on(core, day)
    if waves and waves[0].send_at <= now:
        issue = find_issue(core, default_week(now, core.config.tz))
        if issue is None or issue.status == "draft":
            if now - waves[0].send_at > grace:
                log.warning("waves: the issue of %s not composed: its first wave was due at %s", day, waves[0].send_at)
            else:
                _local_run(core, day, run_once, local_delivery(core, day))
    for issue in due_waves(core, now, grace):
        try:
            _planned, report = send(core, issue, stale_after=grace)
        except SendInProgress as exc:
            log.info("waves: issue %s: left to the other sender: %s", issue.week, exc)
            continue
        log.info(
            "waves: issue %s: %d sent, %d skipped, %d failed; %d batches wait for their wave (next %s)",
            issue.week,
            report.sent,
            report.skipped,
            report.failed,
            report.waiting,
            report.next_wave.isoformat() if report.next_wave else "none",
        )
        if report.stale:
            log.warning(
                "waves: issue %s: %d batches not sent: their wave was due more than %s ago (the process was "
                "down); `digest send --week %s --resume` sends them late, `--cancel` drops them",
                issue.week,
                report.stale,
                grace,
                issue.week,
            )


def _local_run(core: Digest, day: date, run_once: Callable[..., Any], local: LocalDelivery) -> None:
    started = time.monotonic()
    log.info("waves: start: the issue of %s, composed at its first wave", day)
    try:
        report = run_once(core, None, local=local)
    except NothingToSend as exc:
        log.info("waves: the issue of %s: nothing sent: %s", day, exc)
        return
    except SendInProgress as exc:
        log.info("waves: the issue of %s: left to the other sender: %s", day, exc)
        return
    log.info(
        "waves: issue %s planned in %d batches; %d sent now, %d batches wait for their wave (%.1fs)",
        report.issue.week,
        report.planned_batches,
        report.send.sent,
        report.send.waiting,
        time.monotonic() - started,
    )


def resume_job() -> None:
    """At start: continue a send that a stop or crash left unfinished, if it is not stale."""
    from digest.jobs.issues import unfinished_sends
    from digest.jobs.weekly import send

    core = _current()
    unfinished = unfinished_sends(core)
    grace = timedelta(hours=core.config.schedule.grace_hours)
    for issue in unfinished:
        if issue.waves:
            continue  # sent in waves: the waves job sends each when due, after a restart too
        age = core.now() - (issue.send_started_at or issue.created_at)
        if age > grace:
            log.warning(
                "resume: issue %s not resumed: its send started %s ago (grace %s); "
                "run `digest send --week %s --resume` if it should still go out",
                issue.week,
                age,
                grace,
                issue.week,
            )
            continue
        started = time.monotonic()
        log.info("resume: start: issue %s, a send left unfinished", issue.week)
        try:
            _planned, report = send(core, issue)
        except SendInProgress as exc:
            log.info("resume: end: issue %s: left to the other sender: %s", issue.week, exc)
            continue
        log.info(
            "resume: end: issue %s: %d sent, %d failed, %d skipped, %d unknown batches, %.1fs",
            issue.week,
            report.sent,
            report.failed,
            report.skipped,
            len(report.unknown_batches),
            time.monotonic() - started,
        )


def _on_event(event: JobEvent) -> None:
    if event.code == EVENT_JOB_MISSED and event.job_id == WEEKLY_JOB:
        config = _current().config
        week = default_week(event.scheduled_run_time, config.tz)
        log.warning(
            "weekly: issue %s not sent: the process was down at %s and came back after the %d-hour grace period",
            week,
            event.scheduled_run_time.astimezone(config.tz).isoformat(),
            config.schedule.grace_hours,
        )
    elif event.code == EVENT_JOB_ERROR:
        log.error("%s: failed: %s", event.job_id, getattr(event, "exception", "unknown error"))


def make_scheduler(
    core: Digest, scheduler_cls: type[BaseScheduler] = BlockingScheduler, **options: object
) -> BaseScheduler:
    """A scheduler whose jobs live in the store's own database, with the two jobs added."""
    use_core(core)
    scheduler = scheduler_cls(
        # The recurring jobs live in the store; the one-off resume job is this process's own.
        jobstores={
            "default": SQLAlchemyJobStore(engine=core.engine, tablename=JOBS_TABLE),
            "process": MemoryJobStore(),
        },
        timezone=core.config.tz,
        job_defaults={"coalesce": True, "max_instances": 1},
        **options,
    )
    scheduler.add_job(
        "digest.schedule:gather_job",
        gather_trigger(core.config),
        id=GATHER_JOB,
        name="gather",
        replace_existing=True,
        misfire_grace_time=core.config.schedule.gather_every_minutes * 60,
        # A gather at start, then every interval: a scheduler (re)started shortly before the weekly run
        # sends what the feeds hold now, not what the last gather before the stop saw.
        next_run_time=core.now(),
    )
    # A job of the other mode left in the store by an earlier configuration returns at once when it fires.
    if core.config.schedule.deliver == "local":
        # Each reader at their local time: a check every few minutes composes at the first wave and
        # sends each wave when due; the weekly crontab only names the day.
        scheduler.add_job(
            "digest.schedule:waves_job",
            IntervalTrigger(minutes=core.config.schedule.wave_check_minutes, timezone=core.config.tz),
            id=WAVES_JOB,
            name="waves",
            replace_existing=True,
            misfire_grace_time=core.config.schedule.wave_check_minutes * 60,
        )
    else:
        scheduler.add_job(
            "digest.schedule:weekly_job",
            weekly_trigger(core.config),
            id=WEEKLY_JOB,
            name="weekly",
            replace_existing=True,
            misfire_grace_time=core.config.schedule.grace_hours * 3600,
        )
    # Once, at start: a send interrupted by SIGTERM or a crash goes on where it was.
    scheduler.add_job(
        "digest.schedule:resume_job",
        "date",
        run_date=core.now(),
        id=RESUME_JOB,
        name="resume",
        jobstore="process",
        replace_existing=True,
        misfire_grace_time=None,
    )
    scheduler.add_listener(_on_event, EVENT_JOB_MISSED | EVENT_JOB_ERROR)
    return scheduler


def describe_jobs(config: NewsletterConfig, now: datetime, count: int = 3) -> list[tuple[str, str, list[datetime]]]:
    """Each job with its next run times (for --print-jobs), computed from the configuration."""
    jobs = [
        (
            GATHER_JOB,
            f"every {config.schedule.gather_every_minutes} minutes",
            next_fire_times(gather_trigger(config), count, now),
        )
    ]
    if config.schedule.deliver == "local":
        every = config.schedule.wave_check_minutes
        trigger = IntervalTrigger(minutes=every, timezone=config.tz)
        days = f"the days of cron '{config.schedule.weekly}' ({config.timezone})"
        jobs.append(
            (
                WAVES_JOB,
                f"every {every} minutes: {config.schedule.local_time} local time on {days}",
                next_fire_times(trigger, count, now),
            )
        )
    else:
        jobs.append(
            (
                WEEKLY_JOB,
                f"cron '{config.schedule.weekly}' ({config.timezone})",
                next_fire_times(weekly_trigger(config), count, now),
            )
        )
    return jobs


def install_signal_handlers(scheduler: BaseScheduler) -> None:
    """SIGTERM and SIGINT: finish the batch in flight, then stop; a restart resumes the send."""
    import signal

    from digest import shutdown

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: finishing the work in hand, then stopping", signal.Signals(signum).name)
        shutdown.requested.set()
        scheduler.shutdown(wait=True)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
