"""The plan: active, confirmed, unsuppressed subscribers frozen into numbered batches, once."""

from __future__ import annotations

from sqlalchemy import func, select

from digest.delivery.plan import count_recipients, plan_batches
from digest.store.models import Batch, Delivery, Issue
from subscribers.models import Subscriber, Suppression
from subscribers.store import email_hash
from tests.fakes.seed import NOW, address, make_issue, seed_subscribers
from tests.planned import planned


def test_the_plan_freezes_active_confirmed_unsuppressed_subscribers_into_batches(core):
    with core.sessions.begin() as session:
        seed_subscribers(session, 25)
        people = {s.email: s for s in session.scalars(select(Subscriber))}
        people[address(3)].status = "unsubscribed"
        people[address(4)].status = "pending"
        people[address(5)].confirmed_at = None
        session.add(Suppression(email_hash=email_hash(address(6)), reason="bounced"))
        session.add(Suppression(email_hash=email_hash("someone.erased@example.org"), reason="erased"))
        issue = make_issue(session)
    with core.sessions.begin() as session:
        assert count_recipients(session, core.audience) == 21
        assert plan_batches(session, core.audience, issue, batch_size=10, now=NOW) == 3
    with core.sessions() as session:
        emails = dict(session.execute(select(Subscriber.id, Subscriber.email)).all())
        rows = [(number, emails[person]) for number, person in planned(session)]
        # Frozen on the batches: no deliveries row is written until a batch is claimed.
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0
        assert session.scalar(select(func.count()).select_from(Batch).where(Batch.status == "pending")) == 3
    expected = [address(i) for i in range(1, 26) if i not in (3, 4, 5, 6)]
    assert [e for _, e in rows] == expected
    # Numbered by subscriber: the first ten in batch 1, the next ten in batch 2, the last one in batch 3.
    assert [n for n, _ in rows] == [1] * 10 + [2] * 10 + [3]


def test_a_plan_that_exists_is_kept(core):
    with core.sessions.begin() as session:
        seed_subscribers(session, 5)
        issue = make_issue(session)
        assert plan_batches(session, core.audience, issue, batch_size=2, now=NOW) == 3
    with core.sessions.begin() as session:
        seed_subscribers(session, 5, start=6)  # joined after the plan: not in this issue
        assert plan_batches(session, core.audience, issue, batch_size=2, now=NOW) == 3
    with core.sessions() as session:
        assert len(planned(session)) == 5


def test_a_batch_gets_its_deliveries_rows_at_its_claim_and_an_erased_reader_none(core):
    from digest.delivery import run
    from subscribers.store import erase

    with core.sessions.begin() as session:
        seed_subscribers(session, 7)
        issue = make_issue(session)
        assert plan_batches(session, core.audience, issue, batch_size=3, now=NOW) == 3
    with core.sessions.begin() as session:
        erase(session, address(5), now=NOW)  # after the plan, before batch 2 is claimed
    figures = run.issue_figures(core.sessions, issue.id)
    assert (figures.recipients, figures.not_sent, figures.sent) == (7, 7, 0)
    assert run.plan_state(core.sessions, issue.id).recipients == 7

    _, report = run.deliver(core.mailer(), issue)

    assert (report.sent, report.failed, report.skipped) == (6, 0, 0)
    with core.sessions() as session:
        rows = session.execute(
            select(Batch.number, Subscriber.email, Delivery.status)
            .join(Delivery, Delivery.batch_id == Batch.id)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .order_by(Delivery.id)
        ).all()
        assert session.scalar(select(func.count()).select_from(Batch).where(Batch.members.is_not(None))) == 0
    # Each batch's rows follow subscriber id; the erased reader has none and was mailed nothing.
    assert [(n, e) for n, e, _ in rows] == [(1 + (i - 1) // 3, address(i)) for i in (1, 2, 3, 4, 6, 7)]
    assert {s for *_, s in rows} == {"sent"}
    figures = run.issue_figures(core.sessions, issue.id)
    assert (figures.recipients, figures.sent) == (6, 6)


def test_a_dry_run_of_a_plan_not_yet_claimed_reads_the_frozen_batch_and_stores_nothing(core):
    from digest.delivery import run

    with core.sessions.begin() as session:
        seed_subscribers(session, 5)
        issue = make_issue(session)
        assert plan_batches(session, core.audience, issue, batch_size=2, now=NOW) == 3
    dry = run.dry_run(core.mailer(), issue)
    assert (dry.planned, dry.recipients, dry.batches, dry.first_batch_recipients) == (True, 5, 3, 2)
    assert [(s.recipients, s.batches) for s in dry.segments] == [(5, 3)]
    with core.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0
        assert session.scalar(select(func.count()).select_from(Batch).where(Batch.members.is_not(None))) == 3


# --- the exact batches of a plan with waves and segments ---------------------------------------------

SECTIONS = ["Reporting", "Analysis", "Opinion"]  # the issue's, in its order: bit i of a mask is SECTIONS[i]
CONTENT = {
    "top": {"title": "top", "url": "https://example.org/top", "section": "Reporting"},
    "sections": [
        {"name": n, "articles": [{"title": n, "url": f"https://example.org/{n}", "section": n}]} for n in SECTIONS
    ],
}
DEFAULT_ZONE = "America/New_York"
# Etc/UTC and Europe/Lisbon reach 07:00 at one instant in December; Mars/Olympus is no zone (the default's).
ZONES = [None, "Etc/UTC", "Asia/Kathmandu", "Europe/Lisbon", "America/Denver", "Mars/Olympus", DEFAULT_ZONE]
LEFT_OUT = [[], ["Opinion"], ["Analysis", "Opinion"], SECTIONS, ["Sports"], ["Reporting"]]


def _seed_mixed(session, count: int) -> None:
    from sqlalchemy import insert

    from tests.fakes.seed import subscriber_row

    rows = []
    for i in range(count):
        row = subscriber_row(f"mixed{i:03d}@example.org", None)
        row["timezone"] = ZONES[(i * 7 + i // 5) % len(ZONES)]
        row["preferences"] = {"exclude_sections": LEFT_OUT[(i * 5 + i // 3) % len(LEFT_OUT)]}
        if i % 17 == 3:
            row["status"] = "unsubscribed"
        rows.append(row)
    session.execute(insert(Subscriber), rows)


def _expected(session, local, size: int) -> list[tuple[int | None, object, str, list[int]]]:
    """(wave, send_at, segment key, member ids) of every batch in number order, computed from the
    subscribers themselves: by wave (earliest first), then mask, then id, cut every `size`."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from digest.email.segments import segment_key

    def instant(zone):
        try:
            return datetime.combine(local.day, local.at, tzinfo=ZoneInfo(zone)).astimezone(UTC)
        except (ZoneInfoNotFoundError, ValueError):
            return instant(local.default_zone)

    readers = session.execute(
        select(Subscriber.id, Subscriber.timezone, Subscriber.preferences).where(Subscriber.status == "active")
    ).all()
    instants = sorted({instant(z or local.default_zone) for _, z, _ in readers} | {instant(local.default_zone)})
    groups: dict[tuple[int, int], list[int]] = {}
    for person, zone, prefs in readers:
        excluded = set(prefs.get("exclude_sections", []))
        if set(SECTIONS) <= excluded:
            continue  # nothing left to read
        mask = sum(1 << i for i, n in enumerate(SECTIONS) if n in excluded)
        wave = instants.index(instant(zone or local.default_zone)) + 1
        groups.setdefault((wave, mask), []).append(person)
    batches = []
    for (wave, mask), people in sorted(groups.items()):
        people.sort()
        key = segment_key([n for i, n in enumerate(SECTIONS) if mask & (1 << i)])
        for start in range(0, len(people), size):
            batches.append((wave, instants[wave - 1], key, people[start : start + size]))
    return batches


def test_a_plans_batches_are_cut_by_wave_then_segment_then_id_exactly(core):
    import json
    from datetime import date

    from digest.delivery.plan import plan_issue
    from digest.delivery.waves import LocalDelivery

    local = LocalDelivery.of(date(2026, 12, 7), "07:00", DEFAULT_ZONE)
    with core.sessions.begin() as session:
        _seed_mixed(session, 240)
        waves_issue = make_issue(session, "2026-W49")
        waves_issue.content = CONTENT
        at_once_issue = make_issue(session, "2026-W50")
        at_once_issue.content = CONTENT
    with core.sessions.begin() as session:
        issue = session.get_one(Issue, waves_issue.id)
        counts = plan_issue(session, core.audience, issue, batch_size=7, now=NOW, local=local)
        other = session.get_one(Issue, at_once_issue.id)
        at_once = plan_issue(session, core.audience, other, batch_size=7, now=NOW)
    with core.sessions() as session:
        expected = _expected(session, local, 7)
        stored = session.execute(
            select(Batch.number, Batch.wave, Batch.send_at, Batch.segment, Batch.recipients, Batch.members)
            .where(Batch.issue_id == waves_issue.id)
            .order_by(Batch.number)
        ).all()
        assert [b.number for b in stored] == list(range(1, len(expected) + 1))
        assert [(b.wave, b.send_at.replace(tzinfo=None), b.segment) for b in stored] == [
            (w, at.replace(tzinfo=None), key) for w, at, key, _ in expected
        ]
        assert [json.loads(b.members) for b in stored] == [people for *_, people in expected]
        assert [b.members for b in stored] == [json.dumps(p, separators=(",", ":")) for *_, p in expected]
        assert [b.recipients for b in stored] == [len(p) for *_, p in expected]
        assert len({w for w, *_ in expected}) >= 4 and len({k for _, _, k, _ in expected}) == 4
        assert counts.batches == len(expected) and counts.left_out_everything > 0
        waves = session.get_one(Issue, waves_issue.id).waves
        per_wave: dict[int, int] = {}
        for w, _, _, people in expected:
            per_wave[w] = per_wave.get(w, 0) + len(people)
        assert [(w["number"], w["recipients"]) for w in waves] == sorted(per_wave.items())

        # at once: one wave, no instant, the same segments in mask order, then ids
        flat: dict[str, list[int]] = {}
        for _, _, key, people in expected:
            flat.setdefault(key, []).extend(people)
        order = list(dict.fromkeys(key for _, _, key, _ in sorted(expected, key=lambda b: (_mask(b[2]), b[0]))))
        cut = [(key, sorted(flat[key])[i : i + 7]) for key in order for i in range(0, len(flat[key]), 7)]
        stored = session.execute(
            select(Batch.wave, Batch.send_at, Batch.segment, Batch.members)
            .where(Batch.issue_id == at_once_issue.id)
            .order_by(Batch.number)
        ).all()
        assert [(b.wave, b.send_at, b.segment, json.loads(b.members)) for b in stored] == [
            (None, None, key, people) for key, people in cut
        ]
        assert at_once.batches == len(cut) and session.get_one(Issue, at_once_issue.id).waves is None


def _mask(key: str) -> int:
    from digest.email.segments import segment_key

    for mask in range(1 << len(SECTIONS)):
        if segment_key([n for i, n in enumerate(SECTIONS) if mask & (1 << i)]) == key:
            return mask
    raise AssertionError(key)


def test_a_reader_whose_zone_appears_while_the_plan_reads_is_planned_in_that_zones_wave(core, monkeypatch):
    """The zones are read before the readers; a reader committed in between with a zone not read yet is
    neither dropped nor put in another wave: the plan reads the zones again."""
    import json
    from datetime import UTC, date, datetime
    from zoneinfo import ZoneInfo

    from sqlalchemy import insert

    from digest.delivery import plan as plan_module
    from digest.delivery.waves import LocalDelivery
    from tests.fakes.seed import subscriber_row

    local = LocalDelivery.of(date(2026, 12, 7), "07:00", DEFAULT_ZONE)
    with core.sessions.begin() as session:
        _seed_mixed(session, 60)
        issue_id = make_issue(session, "2026-W49").id
    real = plan_module.plan_waves
    calls: list[set] = []

    def moving_in(zones, local):
        if not calls:
            with core.sessions.begin() as other:
                row = subscriber_row("auckland@example.org", None)
                row["timezone"] = "Pacific/Auckland"
                other.execute(insert(Subscriber), [row])
        calls.append(set(zones))
        return real(zones, local)

    monkeypatch.setattr(plan_module, "plan_waves", moving_in)
    with core.sessions.begin() as session:
        issue = session.get_one(Issue, issue_id)
        plan_module.plan_issue(session, core.audience, issue, batch_size=5, now=NOW, local=local)
    with core.sessions() as session:
        auckland = session.scalar(select(Subscriber.id).where(Subscriber.email == "auckland@example.org"))
        active = set(session.scalars(select(Subscriber.id).where(Subscriber.status == "active")))
        batches = session.execute(select(Batch.wave, Batch.send_at, Batch.members).where(Batch.issue_id == issue_id))
        where: dict[int, list] = {}
        for wave, at, members in batches:
            for person in json.loads(members):
                where.setdefault(person, []).append((wave, at.replace(tzinfo=None)))
    first = datetime.combine(local.day, local.at, tzinfo=ZoneInfo("Pacific/Auckland")).astimezone(UTC)
    assert "Pacific/Auckland" not in calls[0] and "Pacific/Auckland" in calls[-1]
    assert where[auckland] == [(1, first.replace(tzinfo=None))]  # the earliest wave, alone
    assert all(len(places) == 1 for places in where.values())
    assert set(where) <= active and auckland in where
