"""Local-time delivery: readers planned into waves by their zone, each wave sent at 07:00 local, each
reader at most once, on SQLite and PostgreSQL, with an injected clock (no test waits for real time)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr
from sqlalchemy import insert, select, update

from digest import schedule
from digest.config import load_newsletter
from digest.core import build_core
from digest.delivery import run
from digest.delivery.waves import LocalDelivery, local_instant, plan_waves
from digest.jobs.local import delivery_day
from digest.jobs.weekly import send
from digest.store.models import Batch, Delivery, Event, Issue
from subscribers import store
from subscribers.models import Subscriber
from tests.conftest import EXAMPLE_CONFIG
from tests.fakes.seed import make_issue, subscriber_row
from tests.fakes.sendgrid import FakeSendGrid

NEWSLETTER_ZONE = "America/New_York"  # examples/digest.toml's
# Monday 7 December 2026 at 07:00 local; in December Denver is UTC-7 and New York UTC-5.
DAY = date(2026, 12, 7)
READERS = {
    "denver@example.org": "America/Denver",  # UTC-7: 14:00 UTC
    "london@example.org": "Etc/UTC",  # UTC: 07:00 UTC
    "nairobi@example.org": "Africa/Nairobi",  # UTC+3: 04:00 UTC
    "kathmandu@example.org": "Asia/Kathmandu",  # UTC+5:45: 01:15 UTC
    "nozone@example.org": None,  # the newsletter's zone: 12:00 UTC
}
EXPECTED_UTC = {
    "kathmandu@example.org": datetime(2026, 12, 7, 1, 15, tzinfo=UTC),
    "nairobi@example.org": datetime(2026, 12, 7, 4, 0, tzinfo=UTC),
    "london@example.org": datetime(2026, 12, 7, 7, 0, tzinfo=UTC),
    "nozone@example.org": datetime(2026, 12, 7, 12, 0, tzinfo=UTC),
    "denver@example.org": datetime(2026, 12, 7, 14, 0, tzinfo=UTC),
}


class Clock:
    """The core's clock, moved by the test."""

    def __init__(self, at: datetime):
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 12, 6, 20, 0, tzinfo=UTC))


def local_config():
    config = load_newsletter(EXAMPLE_CONFIG)
    return config.model_copy(
        update={"schedule": config.schedule.model_copy(update={"deliver": "local", "local_time": "07:00"})}
    )


@pytest.fixture
def tz_core(settings, clock):
    core = build_core(settings, local_config(), clock=clock)
    yield core
    core.close()


def seed_readers(core, readers=READERS) -> None:
    with core.sessions.begin() as session:
        rows = []
        for email, zone in readers.items():
            row = subscriber_row(email, None)
            row["timezone"] = zone
            rows.append(row)
        session.execute(insert(Subscriber), rows)


def seed(core, readers=READERS, week="2026-W49") -> int:
    seed_readers(core, readers)
    with core.sessions.begin() as session:
        return make_issue(session, week).id


def local(day: date = DAY) -> LocalDelivery:
    return LocalDelivery.of(day, "07:00", NEWSLETTER_ZONE)


def sent_at(core, issue_id: int) -> dict[str, list[datetime]]:
    """Address -> the times they were recorded sent (a list, so that a second copy would show)."""
    with core.sessions() as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.sent_at)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.issue_id == issue_id, Delivery.status == "sent")
        ).all()
    found: dict[str, list[datetime]] = {}
    for email, when in rows:
        found.setdefault(email, []).append(when)
    return found


def outbox_copies(settings, email: str) -> int:
    folder = settings.outbox_dir
    if not folder.exists():
        return 0
    return sum(1 for f in folder.rglob("*.eml") if f"To: {email}" in f.read_text(encoding="utf-8", errors="replace"))


def the_issue(core, issue_id: int) -> Issue:
    with core.sessions() as session:
        return session.get_one(Issue, issue_id)


# --- the waves, pure ---------------------------------------------------------------------------------


def test_each_zone_reaches_seven_local_at_its_own_utc_instant_and_equal_instants_share_a_wave():
    zones = [*READERS.values(), "Europe/Lisbon", "Africa/Abidjan"]  # Lisbon and Abidjan: UTC in December
    waves, wave_of = plan_waves(zones, local())
    assert [w.send_at for w in waves] == sorted(EXPECTED_UTC.values())
    assert wave_of["Europe/Lisbon"] == wave_of["Etc/UTC"] == wave_of["Africa/Abidjan"]
    assert wave_of[NEWSLETTER_ZONE] == 4  # readers with no zone: the newsletter's
    assert [w.offset for w in waves] == ["+05:45", "+03:00", "+00:00", "-05:00", "-07:00"]
    for wave in waves:
        for zone in wave.zones:
            assert wave.send_at.astimezone(ZoneInfo(zone)).strftime("%H:%M") == "07:00"


def test_a_stored_zone_the_database_does_not_know_goes_with_the_newsletters_zone_not_a_failed_plan():
    waves, wave_of = plan_waves(["Asia/Kathmandu", "Mars/Olympus_Mons", "../../etc/passwd"], local())
    assert wave_of["Mars/Olympus_Mons"] == wave_of["../../etc/passwd"] == wave_of[NEWSLETTER_ZONE]
    assert [w.zones for w in waves] == [["Asia/Kathmandu"], [NEWSLETTER_ZONE]]


def test_the_instant_comes_from_the_zone_on_the_day_not_from_the_offset_when_planned():
    # US clocks go back on Sunday 1 November 2026 at 02:00: Denver is UTC-6 on Saturday, UTC-7 on Sunday.
    saturday_offset = datetime(2026, 10, 31, 20, 0, tzinfo=UTC).astimezone(ZoneInfo("America/Denver")).utcoffset()
    assert saturday_offset == timedelta(hours=-6)
    sunday = local_instant("America/Denver", date(2026, 11, 1), local().at)
    assert sunday == datetime(2026, 11, 1, 14, 0, tzinfo=UTC)  # 07:00 MST, not 13:00 (07:00 at Saturday's offset)
    # Spring forward (8 March 2026): 07:00 is after the change, at the new offset.
    assert local_instant("America/Denver", date(2026, 3, 8), local().at) == datetime(2026, 3, 8, 13, 0, tzinfo=UTC)


# --- the send, wave by wave ---------------------------------------------------------------------------


def test_readers_in_four_zones_and_none_get_the_issue_at_seven_local_each_once(tz_core, settings, clock):
    issue_id = seed(tz_core)
    planned, report = send(tz_core, the_issue(tz_core, issue_id), local=local())
    assert planned == 5 and report.sent == 0 and report.waiting == 5  # composed the evening before: none due
    for email, instant in sorted(EXPECTED_UTC.items(), key=lambda kv: kv[1]):
        clock.at = instant - timedelta(minutes=1)
        send(tz_core, the_issue(tz_core, issue_id))
        assert email not in sent_at(tz_core, issue_id), f"{email} got the issue before 07:00 local"
        clock.at = instant
        send(tz_core, the_issue(tz_core, issue_id))
        assert sent_at(tz_core, issue_id)[email] == [instant]
        zone = READERS[email] or NEWSLETTER_ZONE
        assert instant.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M") == "2026-12-07 07:00"
    assert {e: len(t) for e, t in sent_at(tz_core, issue_id).items()} == dict.fromkeys(READERS, 1)
    assert all(outbox_copies(settings, e) == 1 for e in READERS)
    assert the_issue(tz_core, issue_id).status == "sent"


def test_a_dst_change_between_compose_and_delivery_moves_the_wave_to_the_new_offset(tz_core, clock):
    clock.at = datetime(2026, 10, 31, 20, 0, tzinfo=UTC)  # Saturday evening, Denver still on MDT (UTC-6)
    issue_id = seed(tz_core, {"denver@example.org": "America/Denver"}, week="2026-W44")
    send(tz_core, the_issue(tz_core, issue_id), local=local(date(2026, 11, 1)))
    with tz_core.sessions() as session:
        [when] = session.scalars(select(Batch.send_at).where(Batch.issue_id == issue_id)).all()
    assert when == datetime(2026, 11, 1, 14, 0, tzinfo=UTC)
    clock.at = datetime(2026, 11, 1, 13, 0, tzinfo=UTC)  # 07:00 at the old offset: 06:00 MST, too early
    send(tz_core, the_issue(tz_core, issue_id))
    assert sent_at(tz_core, issue_id) == {}
    clock.at = datetime(2026, 11, 1, 14, 0, tzinfo=UTC)
    send(tz_core, the_issue(tz_core, issue_id))
    assert sent_at(tz_core, issue_id) == {"denver@example.org": [clock.at]}


def test_a_reader_who_unsubscribes_before_their_wave_is_not_mailed(tz_core, settings, clock):
    issue_id = seed(tz_core)
    send(tz_core, the_issue(tz_core, issue_id), local=local())
    clock.at = EXPECTED_UTC["nairobi@example.org"]
    send(tz_core, the_issue(tz_core, issue_id))  # Kathmandu and Nairobi
    with tz_core.sessions.begin() as session:
        denver = store.find(session, "denver@example.org")
        store.unsubscribe(session, denver, "test", now=clock.at)
    clock.at = EXPECTED_UTC["denver@example.org"] + timedelta(minutes=5)
    _planned, report = send(tz_core, the_issue(tz_core, issue_id))
    assert report.skipped == 1
    assert "denver@example.org" not in sent_at(tz_core, issue_id)
    assert outbox_copies(settings, "denver@example.org") == 0
    with tz_core.sessions() as session:
        skipped = session.scalars(
            select(Delivery.status)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Subscriber.email.like("denver%"))
        )
        assert list(skipped) == ["skipped"]


def test_a_reader_who_changes_zone_mid_issue_gets_it_once_in_the_wave_they_were_planned_in(tz_core, clock):
    issue_id = seed(tz_core)
    send(tz_core, the_issue(tz_core, issue_id), local=local())
    with tz_core.sessions.begin() as session:
        # Kathmandu's reader moves to Denver before either wave; Denver's moves to Kathmandu.
        store.set_timezone(session, store.find(session, "kathmandu@example.org"), "America/Denver", now=clock.at)
        store.set_timezone(session, store.find(session, "denver@example.org"), "Asia/Kathmandu", now=clock.at)
    for instant in sorted(EXPECTED_UTC.values()):
        clock.at = instant
        send(tz_core, the_issue(tz_core, issue_id))
    times = sent_at(tz_core, issue_id)
    assert times["kathmandu@example.org"] == [EXPECTED_UTC["kathmandu@example.org"]]
    assert times["denver@example.org"] == [EXPECTED_UTC["denver@example.org"]]
    assert sorted(times) == sorted(READERS)


def test_a_restart_between_two_waves_mails_everyone_once_at_their_time(settings, tz_core, clock):
    issue_id = seed(tz_core)
    send(tz_core, the_issue(tz_core, issue_id), local=local())
    schedule.use_core(tz_core)
    try:
        for first_two in sorted(EXPECTED_UTC.values())[:2]:
            clock.at = first_two
            schedule.waves_job()
        tz_core.close()  # stopped here; a new process with a new core takes over
        restarted = build_core(settings, local_config(), clock=clock)
        schedule.use_core(restarted)
        schedule.resume_job()  # what a scheduler runs at start: it leaves waves to the waves job
        assert sorted(sent_at(restarted, issue_id)) == ["kathmandu@example.org", "nairobi@example.org"]
        for instant in sorted(EXPECTED_UTC.values()):
            clock.at = instant
            schedule.waves_job()
        assert sent_at(restarted, issue_id) == {e: [t] for e, t in EXPECTED_UTC.items()}
        restarted.close()
    finally:
        schedule.use_core(None)


def test_a_crash_with_a_wave_in_flight_leaves_that_batch_unknown_and_mails_the_rest_once(settings, tz_core, clock):
    issue_id = seed(tz_core)
    schedule.use_core(tz_core)
    try:
        # The scheduler's wave check composes nothing here (the issue exists and is planned by the first send).
        send(tz_core, the_issue(tz_core, issue_id), local=local())
        clock.at = EXPECTED_UTC["nairobi@example.org"]
        schedule.waves_job()
        # The process dies with a claimed batch of the next wave in flight: it is left `submitting`.
        with tz_core.sessions.begin() as session:
            london = session.scalar(
                select(Batch.id).where(Batch.issue_id == issue_id, Batch.send_at == EXPECTED_UTC["london@example.org"])
            )
            session.execute(update(Batch).where(Batch.id == london).values(status="submitting"))
        tz_core.close()
        restarted = build_core(settings, local_config(), clock=clock)
        schedule.use_core(restarted)
        for instant in sorted(EXPECTED_UTC.values())[2:]:
            clock.at = instant + timedelta(minutes=2)  # a check a little after each wave
            schedule.waves_job()
            schedule.waves_job()  # and a second one, as a second scheduler would
        times = sent_at(restarted, issue_id)
        # London's batch has an unknown fate: not re-sent by itself; everyone else exactly once.
        assert {e: len(t) for e, t in times.items()} == {e: 1 for e in READERS if e != "london@example.org"}
        with restarted.sessions() as session:
            statuses = dict(
                session.execute(select(Batch.send_at, Batch.status).where(Batch.issue_id == issue_id)).all()
            )
        assert statuses[EXPECTED_UTC["london@example.org"]] == "submitting"
        assert set(statuses.values()) == {"submitted", "submitting"}
        restarted.close()
    finally:
        schedule.use_core(None)


def test_the_scheduler_composes_at_the_first_wave_then_sends_each_wave_when_due(settings, clock):
    # The sample articles are dated in 2026-W48; the weekly crontab (Monday 08:00, New York) names
    # Monday 30 November, whose first wave (Kathmandu, 07:00 = 01:15 UTC) comes on Sunday evening there.
    day = date(2026, 11, 30)
    due = {email: local_instant(zone or NEWSLETTER_ZONE, day, local().at) for email, zone in READERS.items()}
    core = build_core(settings, local_config(), clock=clock)
    schedule.use_core(core)
    try:
        seed_readers(core)
        clock.at = due["kathmandu@example.org"] - timedelta(minutes=5)
        assert delivery_day(core, clock.at) == day
        schedule.waves_job()
        with core.sessions() as session:
            assert session.scalars(select(Issue.status)).all() == []  # not composed before the first wave
        for email, instant in sorted(due.items(), key=lambda kv: kv[1]):
            clock.at = instant
            schedule.waves_job()
            with core.sessions() as session:
                issue = session.scalars(select(Issue)).one()
            assert issue.week == "2026-W48" and sent_at(core, issue.id)[email] == [instant]
        assert {e: len(t) for e, t in sent_at(core, issue.id).items()} == dict.fromkeys(READERS, 1)
        assert [w["zones"] for w in issue.waves or []] == [
            ["Asia/Kathmandu"],
            ["Africa/Nairobi"],
            ["Etc/UTC"],
            [NEWSLETTER_ZONE],
            ["America/Denver"],
        ]
    finally:
        schedule.use_core(None)
        core.close()


# --- SendGrid: each wave handed over ahead with send_at and one batch id ---------------------------------


@pytest.fixture
def fake(clock):
    with FakeSendGrid(keep_bodies=True, clock=lambda: clock().timestamp()) as server:
        yield server


@pytest.fixture
def sg_core(settings, clock, fake):
    sg = settings.model_copy(
        update={"provider": "sendgrid", "sendgrid_api_key": SecretStr(fake.api_key), "sendgrid_api_host": fake.url}
    )
    core = build_core(sg, local_config(), clock=clock)
    yield core
    core.close()


def test_sendgrid_gets_every_wave_ahead_with_its_send_at_and_the_issues_batch_id(sg_core, fake, clock):
    issue_id = seed(sg_core)
    clock.at = EXPECTED_UTC["kathmandu@example.org"]  # the first wave is due; the others go ahead
    planned, report = send(sg_core, the_issue(sg_core, issue_id), local=local())
    assert fake.violations == []
    assert planned == 5 and report.sent == 5 and report.waiting == 0
    schedule_id = the_issue(sg_core, issue_id).provider_batch_id
    assert schedule_id and fake.batch_ids == [schedule_id]
    by_email = {a.emails[0]: a for a in fake.accepted}
    assert by_email["kathmandu@example.org"].send_at is None  # due now: no send_at
    for email, instant in EXPECTED_UTC.items():
        if email != "kathmandu@example.org":
            assert by_email[email].send_at == int(instant.timestamp())
            assert by_email[email].batch_id == schedule_id
    # Each handed-over reader is recorded sent at the time SendGrid is to deliver it.
    assert sent_at(sg_core, issue_id) == {
        e: [clock.at if e == "kathmandu@example.org" else t] for e, t in EXPECTED_UTC.items()
    }
    delivered = dict(fake.delivered_at(EXPECTED_UTC["denver@example.org"].timestamp()))
    assert {e: datetime.fromtimestamp(t, UTC) for e, t in delivered.items()} == {
        **EXPECTED_UTC,
        "kathmandu@example.org": clock.at,
    }


def test_a_wave_beyond_72_hours_waits_and_the_fake_refuses_a_send_at_too_far_ahead(sg_core, fake, clock):
    issue_id = seed(sg_core)
    clock.at = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)  # four days before
    _planned, report = send(sg_core, the_issue(sg_core, issue_id), local=local())
    assert report.sent == 0 and report.waiting == 5 and fake.requests == 0
    # The fake can fail: a request scheduled 4 days ahead breaks SendGrid's 72-hour limit.
    problems = fake.check_schedule({"send_at": int((clock.at + timedelta(days=4)).timestamp()), "batch_id": "x"})
    assert len(problems) == 2 and "72 hours" in problems[0] and "batch_id" in problems[1]
    clock.at = EXPECTED_UTC["denver@example.org"] - timedelta(hours=70)  # now within 71 h of them all
    _planned, report = send(sg_core, the_issue(sg_core, issue_id))
    assert report.sent == 5 and fake.violations == []


def test_cancel_stops_the_scheduled_waves_at_sendgrid_and_the_pending_ones_here(sg_core, fake, clock):
    issue_id = seed(sg_core)
    clock.at = EXPECTED_UTC["nairobi@example.org"] - timedelta(hours=70)  # London and later: beyond 71 h
    send(sg_core, the_issue(sg_core, issue_id), local=local())
    assert sorted(e for a in fake.accepted for e in a.emails) == ["kathmandu@example.org", "nairobi@example.org"]
    clock.at += timedelta(hours=1)
    done = run.cancel(sg_core.mailer(), the_issue(sg_core, issue_id))
    schedule_id = the_issue(sg_core, issue_id).provider_batch_id
    assert done.at_provider and fake.cancelled == {schedule_id: clock.at.timestamp()}
    assert done.batches == 5 and done.recipients == 5 and done.too_late == 0
    assert fake.delivered_at(datetime(2026, 12, 8, tzinfo=UTC).timestamp()) == []
    clock.at = EXPECTED_UTC["denver@example.org"]
    _planned, report = send(sg_core, the_issue(sg_core, issue_id))
    assert report.sent == 0 and len(fake.accepted) == 2  # nothing more goes
    with sg_core.sessions() as session:
        assert set(session.scalars(select(Delivery.status).where(Delivery.issue_id == issue_id))) == {"cancelled"}
        assert session.get_one(Issue, issue_id).status == "sent"


def test_cancel_with_the_outbox_keeps_the_waves_not_yet_due_from_going(tz_core, settings, clock):
    issue_id = seed(tz_core)
    send(tz_core, the_issue(tz_core, issue_id), local=local())
    clock.at = EXPECTED_UTC["nairobi@example.org"]
    send(tz_core, the_issue(tz_core, issue_id))
    done = run.cancel(tz_core.mailer(), the_issue(tz_core, issue_id))
    assert not done.at_provider and done.batches == 3 and done.recipients == 3
    clock.at = EXPECTED_UTC["denver@example.org"]
    send(tz_core, the_issue(tz_core, issue_id))
    assert sorted(sent_at(tz_core, issue_id)) == ["kathmandu@example.org", "nairobi@example.org"]


def test_the_dry_run_and_the_figures_show_each_wave(tz_core, clock):
    issue_id = seed(tz_core)
    dry = run.dry_run(tz_core.mailer(), the_issue(tz_core, issue_id), local=local())
    assert not dry.planned
    assert [(w.send_at, w.recipients) for w in dry.waves] == [(t, 1) for t in sorted(EXPECTED_UTC.values())]
    assert dry.waves[0].zones == ["Asia/Kathmandu"] and dry.waves[0].local == "2026-12-07 07:00"
    send(tz_core, the_issue(tz_core, issue_id), local=local())
    clock.at = EXPECTED_UTC["nairobi@example.org"]
    send(tz_core, the_issue(tz_core, issue_id))
    dry = run.dry_run(tz_core.mailer(), the_issue(tz_core, issue_id))
    assert dry.planned
    assert [(w.sent, w.pending) for w in dry.waves] == [(1, 0), (1, 0), (0, 1), (0, 1), (0, 1)]
    assert dry.waves[3].zones == [NEWSLETTER_ZONE] and dry.waves[3].offset == "-05:00"


def test_the_preview_shows_a_drafts_coming_waves_and_a_sent_issues_figures_per_wave(settings, tz_core, clock):
    from tests.web_site import running_site

    issue_id = seed(tz_core)
    token = "editor-token-for-waves"
    bearer = {"Authorization": f"Bearer {token}"}
    slug = the_issue(tz_core, issue_id).slug
    with running_site(settings, clock=clock, newsletter=local_config(), admin_token=token) as site:
        # 6 December: the weekly crontab's next day is Monday 7 December.
        draft = site.http.get(f"/preview/{slug}", headers=bearer).text
        assert 'id="waves"' in draft and "on 2026-12-07" in draft
        first = re.search(r'<tr id="wave-1">(.*?)</tr>', draft, re.S)[1]
        assert "Asia/Kathmandu" in first and "07:00 (UTC+05:45)" in first and "Mon 01:15" in first
        send(tz_core, the_issue(tz_core, issue_id), local=local())
        clock.at = EXPECTED_UTC["nairobi@example.org"]
        send(tz_core, the_issue(tz_core, issue_id))
        with tz_core.sessions.begin() as session:
            reader = store.find(session, "kathmandu@example.org")
            for kind in ("delivered", "open"):
                session.add(
                    Event(
                        type=kind, email=reader.email, issue_id=issue_id, subscriber_id=reader.id, occurred_at=clock.at
                    )
                )
        sending = site.http.get(f"/preview/{slug}", headers=bearer).text
        cells = [
            re.findall(r'<td class="n">(\d+)</td>', re.search(rf'<tr id="wave-{n}">(.*?)</tr>', sending, re.S)[1])
            for n in range(1, 6)
        ]
        # Readers, sent, waiting, skipped, then delivered, opened, clicked (from the provider's events) per
        # wave: the first two went and Kathmandu's reader opened it; the other three wait.
        assert (
            cells
            == [["1", "1", "0", "0", "1", "1", "0"], ["1", "1", "0", "0", "0", "0", "0"]]
            + [["1", "0", "1", "0", "0", "0", "0"]] * 3
        )


def test_a_wave_missed_by_more_than_the_grace_period_is_not_sent_late_by_the_scheduler(tz_core, clock, caplog):
    issue_id = seed(tz_core)
    send(tz_core, the_issue(tz_core, issue_id), local=local())
    schedule.use_core(tz_core)
    try:
        clock.at = EXPECTED_UTC["nairobi@example.org"]
        schedule.waves_job()
        # Down from here until 7 hours after the last wave (grace: 6 hours): London's wave is 14 hours late.
        clock.at = EXPECTED_UTC["denver@example.org"] + timedelta(hours=5)
        schedule.waves_job()
        assert sorted(sent_at(tz_core, issue_id)) == [
            "denver@example.org",
            "kathmandu@example.org",
            "nairobi@example.org",
        ]
        assert "2 batches not sent: their wave was due more than 6:00:00 ago" in caplog.text
    finally:
        schedule.use_core(None)
    # The operator's `digest send --resume` sends them late, once.
    send(tz_core, the_issue(tz_core, issue_id))
    assert {e: len(t) for e, t in sent_at(tz_core, issue_id).items()} == dict.fromkeys(READERS, 1)


def test_digest_send_dry_run_prints_the_waves_and_cancel_keeps_the_waiting_ones_from_going(settings, cli_env, tmp_path):
    from tests.cli_helpers import run_cli

    config = tmp_path / "digest.toml"
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    config.write_text(text.replace('deliver = "at_once"', 'deliver = "local"'), encoding="utf-8")
    env = {**cli_env, "DIGEST_CONFIG": str(config)}
    core = build_core(settings, local_config())
    issue_id = seed(core)
    core.close()
    dry = run_cli(["send", "--dry-run", "--week", "2026-W49"], env, tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert (
        "would plan: 5 recipients in 5 batches" in dry.stdout
        and "would plan: 5 waves, each reader at 07:00" in dry.stdout
    )
    lines = re.findall(
        r"^  wave (\d): (\S+) 07:00 local \(UTC([+-]\d\d:\d\d)\) = \S+ (\d\d:\d\d) UTC: 1 recipients; (.+)$",
        dry.stdout,
        re.M,
    )
    assert [(n, zone) for n, _day, _offset, _utc, zone in lines][:3] == [
        ("1", "Asia/Kathmandu"),
        ("2", "Africa/Nairobi"),
        ("3", "Etc/UTC"),
    ]
    assert lines[0][2:4] == ("+05:45", "01:15") and lines[2][2:4] == ("+00:00", "07:00")
    assert sorted(z for *_, z in lines) == sorted(z or NEWSLETTER_ZONE for z in READERS.values())
    sent = run_cli(["send", "--week", "2026-W49"], env, tmp_path)
    assert sent.returncode == 0, sent.stderr
    waiting = int(re.search(r"(\d+) batches \(\d+ recipients\) wait for their wave", sent.stdout)[1])
    cancelled = run_cli(["send", "--cancel", "--week", "2026-W49"], env, tmp_path)
    assert f"{waiting} batches ({waiting} recipients) cancelled; they will not be sent" in cancelled.stdout
    core = build_core(settings, local_config())
    try:
        with core.sessions() as session:
            statuses = session.scalars(select(Delivery.status).where(Delivery.issue_id == issue_id)).all()
        # The waves never claimed have no deliveries rows; the figures count their readers cancelled.
        figures = run.issue_figures(core.sessions, issue_id)
        assert sorted(set(statuses)) <= ["cancelled", "sent"] and figures.cancelled == waiting
        assert figures.sent + figures.cancelled == figures.recipients
    finally:
        core.close()
