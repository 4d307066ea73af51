"""Local-time delivery's use cases (`[schedule] deliver = "local"`): which day the waves are for, the
waves a plan would make or made, and the issues with a wave due. The scheduler, the CLI and the preview
ask here; the waves themselves are computed in digest.delivery.waves."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select

from digest.config import NewsletterConfig
from digest.core import Digest
from digest.delivery.run import WaveFigures, expected_waves, planned_waves
from digest.delivery.waves import LocalDelivery
from digest.errors import ConfigError
from digest.store.models import Batch, Issue


def weekly_trigger(config: NewsletterConfig) -> CronTrigger:
    try:
        return CronTrigger.from_crontab(config.schedule.weekly, timezone=config.tz)
    except ValueError as exc:
        raise ConfigError(str(config.path), "schedule.weekly", f"not a crontab expression: {exc}") from None


def previous_fire_time(config: NewsletterConfig, now: datetime) -> datetime | None:
    """The latest scheduled weekly time at or before `now` (looking back at most 8 days)."""
    trigger = weekly_trigger(config)
    moment = trigger.get_next_fire_time(None, now - timedelta(days=8))
    latest = None
    while moment is not None and moment <= now:
        latest = moment
        moment = trigger.get_next_fire_time(moment, moment + timedelta(seconds=1))
    return latest


def delivery_day(core: Digest, now: datetime) -> date:
    """The day whose waves come next: the previous weekly run's day while some of its readers still wait
    for their local time (a late manual send still reaches them that day), else the next run's day. The
    days are the weekly crontab's, in the newsletter's timezone."""
    config = core.config
    previous = previous_fire_time(config, now)
    if previous is not None:
        day: date = previous.astimezone(config.tz).date()
        waves = waves_on(core, day)
        if waves and waves[-1].send_at > now:
            return day
    upcoming = weekly_trigger(config).get_next_fire_time(None, now)
    if upcoming is None:
        raise ConfigError(str(config.path), "schedule.weekly", "the crontab expression never fires")
    found: date = upcoming.astimezone(config.tz).date()
    return found


def local_delivery(core: Digest, day: date) -> LocalDelivery:
    """Local-time delivery on `day`: at `[schedule] local_time` in each reader's zone."""
    return LocalDelivery.of(day, core.config.schedule.local_time, core.config.timezone)


def next_local_delivery(core: Digest) -> LocalDelivery | None:
    """With `deliver = "local"`: the day and time a plan made now puts readers at; None: at once."""
    if core.config.schedule.deliver != "local":
        return None
    return local_delivery(core, delivery_day(core, core.now()))


def waves_on(core: Digest, day: date) -> list[WaveFigures]:
    """The waves a plan made now for `day` would hold (readers by zone), earliest first; nothing stored."""
    with core.sessions() as session:
        return expected_waves(session, core.mailer().audience, local_delivery(core, day))


def issue_waves(core: Digest, issue: Issue) -> list[WaveFigures]:
    """The issue's waves: as planned, with its recipients by delivery status; for a draft under local-time
    delivery, those a plan made now would hold; [] for a send at once."""
    with core.sessions() as session:
        fresh = session.get(Issue, issue.id)
        if fresh is not None and fresh.waves:
            return planned_waves(session, fresh)
    if issue.status == "draft" and (local := next_local_delivery(core)) is not None:
        with core.sessions() as session:
            return expected_waves(session, core.mailer().audience, local)
    return []


def due_waves(core: Digest, now: datetime, grace: timedelta) -> list[Issue]:
    """Issues being sent with a pending batch whose time has come (with SendGrid: within the 72 hours it
    schedules ahead) and went by no longer than `grace` ago: what the scheduler's wave check sends. A wave
    missed by more (the process was down) is never sent stale by itself."""
    ahead = core.provider.schedules_ahead
    with core.sessions() as session:
        return list(
            session.scalars(
                select(Issue)
                .where(
                    Issue.status == "sending",
                    select(Batch.id)
                    .where(
                        Batch.issue_id == Issue.id,
                        Batch.status == "pending",
                        Batch.send_at <= now + ahead,
                        Batch.send_at >= now - grace,
                    )
                    .exists(),
                )
                .order_by(Issue.id)
            )
        )
