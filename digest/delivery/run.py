"""`digest send` and the weekly job's send step: lock, plan once, send; also the dry run and the
test send. Thin glue between the pieces a send is made with (a `Mailer`, built by digest.core) and
the sender."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from digest.config import DeliveryConfig
from digest.delivery.audience import Audience
from digest.delivery.lock import plan_lock, send_lock
from digest.delivery.plan import count_segments, plan_issue
from digest.delivery.providers.base import Provider
from digest.delivery.sender import (
    Progress,
    SendOptions,
    SendReport,
    UnknownBatch,
    finish_issue,
    load_people,
    pending_count,
    send_issue,
    settle_batch,
    unknown_batches,
)
from digest.delivery.waves import LocalDelivery, Wave, plan_waves
from digest.email.message import OutgoingIssue, Recipient, feedback_id
from digest.email.segments import RenderSegment, issue_sections, left_out_everything, render_missing, segment_key
from digest.errors import DeliveryError, ProviderError, UsageError
from digest.store.db import rowcount
from digest.store.models import Batch, Delivery, Event, Issue, IssueRendering


@dataclass(frozen=True)
class Addresses:
    """The newsletter's own addresses, the same on every message of every issue."""

    from_email: str
    from_name: str
    reply_to: str | None
    unsubscribe_mailto: str | None  # an extra List-Unsubscribe target, when configured
    list_id: str | None = None  # the List-Id header's value (digest.email.message.list_id_header)
    newsletter_slug: str = ""  # the second field of Feedback-ID (the first is the issue's slug)
    feedback_sender: str | None = None  # the last field of Feedback-ID; None: no Feedback-ID header


@dataclass(frozen=True)
class Mailer:
    """What a send is made with: the store, the provider, the audience, and the newsletter's delivery
    settings. Built by the composition root (`digest.core.Digest.mailer`); nothing here sees the rest."""

    engine: Engine  # the send lock
    sessions: sessionmaker[Session]
    provider: Provider
    audience: Audience
    addresses: Addresses
    settings: DeliveryConfig  # batch size, retries and backoff, failed batches before a pause
    render_segment: RenderSegment  # the issue without some sections, for those who left them out
    now: Callable[[], datetime]

    @property
    def batch_size(self) -> int:
        return min(self.settings.batch_size, self.provider.max_batch_size)


def outgoing(addresses: Addresses, issue: Issue, *, subject_prefix: str = "") -> OutgoingIssue:
    if issue.html is None or issue.text is None:
        raise DeliveryError(f"issue {issue.slug} is not rendered; run `digest build --week {issue.week}` first")
    return OutgoingIssue(
        issue_id=issue.id,
        slug=issue.slug,
        subject=subject_prefix + issue.subject,
        html=issue.html,
        text=issue.text,
        from_email=addresses.from_email,
        from_name=addresses.from_name,
        reply_to=addresses.reply_to,
        unsubscribe_mailto=addresses.unsubscribe_mailto,
        list_id=addresses.list_id,
        feedback_id=(
            feedback_id(issue.slug, addresses.newsletter_slug, addresses.feedback_sender)
            if addresses.feedback_sender
            else None
        ),
    )


def segment_outgoings(mailer: Mailer, issue: Issue, *, subject_prefix: str = "") -> dict[str, OutgoingIssue]:
    """The issue's stored renderings for the subscribers who left sections out, by segment key."""
    full = outgoing(mailer.addresses, issue, subject_prefix=subject_prefix)
    with mailer.sessions() as session:
        rows = session.execute(
            select(IssueRendering.segment, IssueRendering.subject, IssueRendering.html, IssueRendering.text).where(
                IssueRendering.issue_id == issue.id, IssueRendering.html.is_not(None)
            )
        ).all()
    return {
        segment: dataclasses.replace(
            full, subject=subject_prefix + (subject or issue.subject), html=html or "", text=text or ""
        )
        for segment, subject, html, text in rows
    }


@dataclass
class PlanState:
    """How far an issue's send has come, from the store."""

    batches: dict[str, int]  # status -> number of batches
    recipients: int  # deliveries planned

    @property
    def planned(self) -> bool:
        return bool(self.batches)

    @property
    def unfinished(self) -> bool:
        return any(self.batches.get(s) for s in ("pending", "submitting", "failed"))


def plan_state(sessions: sessionmaker[Session], issue_id: int) -> PlanState:
    with sessions() as session:
        by_status: dict[str, int] = dict(
            session.execute(
                select(Batch.status, func.count()).where(Batch.issue_id == issue_id).group_by(Batch.status)
            ).all()
        )
        recipients = session.scalar(select(func.count()).select_from(Delivery).where(Delivery.issue_id == issue_id))
    return PlanState(by_status, (recipients or 0) + _frozen(sessions, issue_id))


def _frozen(sessions: sessionmaker[Session], issue_id: int) -> int:
    """Recipients of the issue's batches not claimed yet (frozen on the batch, no deliveries rows yet)."""
    with sessions() as session:
        found = session.scalar(
            select(func.sum(Batch.recipients)).where(Batch.issue_id == issue_id, Batch.members.is_not(None))
        )
    return int(found or 0)


@dataclass(frozen=True)
class IssueFigures:
    """Where every planned recipient of an issue stands, from the store: the figures add up to `recipients`."""

    batches: int
    recipients: int
    sent: int
    failed: int
    skipped: int
    unknown: int  # in batches of unknown fate (submitting)
    cancelled: int  # in cancelled batches
    not_sent: int  # still pending in pending or failed batches: a wave to come, a --resume


def issue_figures(sessions: sessionmaker[Session], issue_id: int) -> IssueFigures:
    with sessions() as session:
        rows: list[tuple[str, str, int | None]] = [
            (batch_status, delivery_status, n)
            for batch_status, delivery_status, n in session.execute(
                select(Batch.status, Delivery.status, func.count())
                .join(Delivery, Delivery.batch_id == Batch.id)
                .where(Batch.issue_id == issue_id)
                .group_by(Batch.status, Delivery.status)
            )
        ]
        batches = session.scalar(select(func.count()).select_from(Batch).where(Batch.issue_id == issue_id)) or 0
        # Batches never claimed have no rows yet: their frozen recipients are all still pending.
        rows += [
            (batch_status, "pending", n)
            for batch_status, n in session.execute(
                select(Batch.status, func.sum(Batch.recipients))
                .where(Batch.issue_id == issue_id, Batch.members.is_not(None))
                .group_by(Batch.status)
            )
        ]
    counts = {"sent": 0, "failed": 0, "skipped": 0, "unknown": 0, "cancelled": 0, "not_sent": 0}
    for batch_status, delivery_status, n in rows:
        if delivery_status != "pending":
            key = delivery_status if delivery_status in counts else "failed"
        elif batch_status == "submitting":
            key = "unknown"
        elif batch_status == "cancelled":
            key = "cancelled"
        elif batch_status == "submitted":
            key = "sent"  # settled as a whole (--mark-sent, events) before its rows were
        else:
            key = "not_sent"
        counts[key] += int(n or 0)
    return IssueFigures(batches=batches, recipients=sum(counts.values()), **counts)


def deliver(
    mailer: Mailer,
    issue: Issue,
    *,
    resume: bool = False,
    retry_unknown: bool = False,
    stop: threading.Event | None = None,
    on_start: Callable[[int], None] | None = None,
    on_batch: Callable[[Progress], None] | None = None,
    sleep: Callable[[float], object] | None = None,
    local: LocalDelivery | None = None,
    stale_after: timedelta | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> tuple[int, SendReport]:
    """Plan once and send what is left. Returns (batches planned, report). For a progress bar: `on_stage`
    names each step before the sending ("planning", "rendering segments"), `on_start` gives the
    recipients to send, `on_batch` follows each batch.

    With `local` (local-time delivery), a plan made now puts readers into waves (see digest.delivery.waves)
    and only the waves that are due go (all within `schedules_ahead` with SendGrid, scheduled at the
    provider); the others stay pending for a later call. A plan that exists keeps its waves.

    On PostgreSQL any number of sends of one issue may run at once, here or on other machines: each claims
    the next due batch (see `sender._claim`), and one of them plans while the others wait for the plan
    (`plan_lock`). On SQLite one send of an issue runs at a time (`send_lock` refuses a second)."""
    the_outgoing = outgoing(mailer.addresses, issue)
    provider = mailer.provider
    with send_lock(mailer.engine, issue.id, issue.week, shared=True) as in_flight:
        planned, not_planned, schedule_id = prepare(mailer, issue, local=local, on_stage=on_stage)
        segments = segment_outgoings(mailer, issue)
        if on_start:
            statuses = ("pending", "failed", "submitting") if retry_unknown else ("pending", "failed")
            on_start(pending_count(mailer.sessions, issue.id, statuses if resume else ("pending",)))
        try:
            report = send_issue(
                mailer.sessions,
                provider,
                mailer.audience,
                the_outgoing,
                options=SendOptions.from_config(mailer.settings, resume=resume, retry_unknown=retry_unknown),
                stop=stop,
                sleep=sleep,
                on_batch=on_batch,
                segments=segments,
                now=mailer.now,
                schedule_id=schedule_id,
                stale_after=stale_after,
                in_flight=in_flight,
            )
            report.not_planned = not_planned
        finally:
            provider.close()
    return planned, report


def prepare(
    mailer: Mailer,
    issue: Issue,
    *,
    local: LocalDelivery | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> tuple[int, int, str | None]:
    """Plan the issue once and render its segments, one process at a time (the others wait, then find
    it done). Returns (batches planned, subscribers not planned as they left out everything, the
    provider's schedule id when batches go ahead of their wave)."""
    if on_stage:
        on_stage("planning")
    with plan_lock(mailer.engine, issue.id):
        with mailer.sessions.begin() as session:
            fresh = session.get_one(Issue, issue.id)
            plan = plan_issue(
                session, mailer.audience, fresh, batch_size=mailer.batch_size, now=mailer.now(), local=local
            )
        schedule_id = _schedule_id(mailer, issue.id)
        # Each segment the plan holds is rendered once, before the first batch goes (and again after a
        # crash in between: only what is missing).
        if on_stage and any(segment.left_out for segment in plan.segments):
            on_stage("rendering segments")
        render_missing(mailer.sessions, mailer.render_segment, issue.id)
    return plan.batches, plan.left_out_everything, schedule_id


def unknown_now(mailer: Mailer, issue: Issue) -> list[UnknownBatch]:
    """The issue's batches of unknown fate now, leaving out those a live sender has in flight."""
    with send_lock(mailer.engine, issue.id, issue.week, shared=True) as in_flight, mailer.sessions() as session:
        return unknown_batches(session, issue.id, in_flight)


def _schedule_id(mailer: Mailer, issue_id: int) -> str | None:
    """The provider's id for the issue's scheduled sends, made once and stored on the issue, when a batch
    will be handed over ahead of its time; None otherwise (SMTP, the outbox, or every wave due)."""
    provider = mailer.provider
    if not provider.schedules_ahead:
        return None
    with mailer.sessions() as session:
        stored = session.scalar(select(Issue.provider_batch_id).where(Issue.id == issue_id))
        if stored:
            return stored
        ahead = session.scalar(
            select(func.count())
            .select_from(Batch)
            .where(Batch.issue_id == issue_id, Batch.status == "pending", Batch.send_at > mailer.now())
        )
    if not ahead:
        return None
    made = provider.new_schedule_id()
    with mailer.sessions.begin() as session:
        session.execute(
            update(Issue).where(Issue.id == issue_id, Issue.provider_batch_id.is_(None)).values(provider_batch_id=made)
        )
        return session.scalar(select(Issue.provider_batch_id).where(Issue.id == issue_id))


@dataclass
class SegmentPlan:
    left_out: list[str]  # the issue's sections this segment leaves out; [] is the full issue
    recipients: int
    batches: int


@dataclass
class DryRun:
    planned: bool  # False: the plan below is what a send would make now
    recipients: int
    batches: int
    batch_size: int
    first_batch_recipients: int
    first_batch_bytes: int
    provider: str
    state: PlanState
    segments: list[SegmentPlan] = dataclasses.field(default_factory=list)
    left_out_everything: int | None = None  # not mailed: they left out every section (None: not known)
    waves: list[WaveFigures] = dataclasses.field(default_factory=list)  # local-time delivery; [] at once


def outgoing_for_segment(
    mailer: Mailer, issue: Issue, left_out: list[str], *, subject_prefix: str = ""
) -> OutgoingIssue:
    """The issue as this segment gets it: the stored rendering when there is one, else rendered now
    without storing it (a dry run or a test send must not change the store)."""
    full = outgoing(mailer.addresses, issue, subject_prefix=subject_prefix)
    if not left_out:
        return full
    stored = segment_outgoings(mailer, issue, subject_prefix=subject_prefix).get(segment_key(left_out))
    if stored is not None:
        return stored
    made = mailer.render_segment(issue, left_out)
    if made is None:
        return full
    return dataclasses.replace(full, subject=subject_prefix + made.subject, html=made.html, text=made.text)


def _segment_names(session: Session, issue: Issue) -> dict[str, list[str]]:
    """Segment key -> the sections it leaves out, for the issue's stored plan."""
    rows = session.execute(
        select(IssueRendering.segment, IssueRendering.left_out_sections).where(IssueRendering.issue_id == issue.id)
    )
    return {key: list(left_out) for key, left_out in rows}


def _stored_segments(session: Session, issue: Issue) -> list[SegmentPlan]:
    names = _segment_names(session, issue)
    rows = session.execute(
        select(Batch.segment, func.count(), func.min(Batch.number))
        .where(Batch.issue_id == issue.id)
        .group_by(Batch.segment)
        .order_by(func.min(Batch.number))
    ).all()
    made = dict(
        session.execute(
            select(Batch.segment, func.count(Delivery.id))
            .join(Delivery, Delivery.batch_id == Batch.id)
            .where(Batch.issue_id == issue.id)
            .group_by(Batch.segment)
        ).all()
    )
    frozen = dict(
        session.execute(
            select(Batch.segment, func.sum(Batch.recipients))
            .where(Batch.issue_id == issue.id, Batch.members.is_not(None))
            .group_by(Batch.segment)
        ).all()
    )
    return [
        SegmentPlan(list(names.get(key) or []), int(made.get(key) or 0) + int(frozen.get(key) or 0), batches)
        for key, batches, _ in rows
    ]


def _first_eligible(session: Session, audience: Audience, count: int) -> list[Recipient]:
    """The first `count` people a plan made now would mail, by id, as recipients numbered from 1."""
    eligible = audience.eligible(session, [])
    ids = session.scalars(
        text(f"SELECT id FROM ({eligible.sql}) r ORDER BY id LIMIT :first_count"),  # noqa: S608 (the audience's SQL)
        {**eligible.params, "first_count": count},
    ).all()
    recipients, _, _ = audience.recipients(session, ids)
    return recipients


@dataclass
class WaveFigures:
    """One wave of an issue's local-time delivery, and what became of its recipients so far."""

    number: int
    send_at: datetime  # UTC
    local: str  # the local date and time its readers get it at
    offset: str  # their UTC offset that day
    zones: list[str]
    recipients: int
    sent: int = 0
    skipped: int = 0  # left before their batch was claimed
    failed: int = 0
    pending: int = 0
    cancelled: int = 0
    # From the provider's events: distinct readers of the wave it delivered to, who opened, who clicked.
    delivered: int = 0
    opened: int = 0
    clicked: int = 0


def planned_waves(session: Session, issue: Issue) -> list[WaveFigures]:
    """The stored plan's waves with their recipients by delivery status ([] for a send at once)."""
    waves = [Wave.from_dict(w) for w in issue.waves or []]
    if not waves:
        return []
    counts: dict[int, dict[str, int]] = {}
    rows = session.execute(
        select(Batch.wave, Delivery.status, func.count())
        .join(Delivery, Delivery.batch_id == Batch.id)
        .where(Batch.issue_id == issue.id)
        .group_by(Batch.wave, Delivery.status)
    )
    frozen = session.execute(
        select(Batch.wave, Batch.status, func.sum(Batch.recipients))
        .where(Batch.issue_id == issue.id, Batch.members.is_not(None))
        .group_by(Batch.wave, Batch.status)
    )
    for wave, status, n in rows:
        counts.setdefault(wave or 0, {})[status] = n
    for wave, batch_status, n in frozen:  # never claimed: pending, or cancelled with their batch
        status = "cancelled" if batch_status == "cancelled" else "pending"
        by_status = counts.setdefault(wave or 0, {})
        by_status[status] = by_status.get(status, 0) + int(n or 0)
    events: dict[int, dict[str, int]] = {}
    for wave, kind, n in session.execute(
        select(Batch.wave, Event.type, func.count(func.distinct(Event.subscriber_id)))
        .join(Delivery, (Delivery.issue_id == Event.issue_id) & (Delivery.subscriber_id == Event.subscriber_id))
        .join(Batch, Batch.id == Delivery.batch_id)
        .where(Event.issue_id == issue.id, Event.type.in_(("delivered", "open", "click")))
        .group_by(Batch.wave, Event.type)
    ):
        events.setdefault(wave or 0, {})[kind] = n
    figures = []
    for w in waves:
        by_status = counts.get(w.number, {})
        figures.append(
            WaveFigures(
                w.number,
                w.send_at,
                w.local,
                w.offset,
                w.zones,
                sum(by_status.values()),
                by_status.get("sent", 0),
                by_status.get("skipped", 0),
                by_status.get("failed", 0),
                by_status.get("pending", 0),
                by_status.get("cancelled", 0),
                events.get(w.number, {}).get("delivered", 0),
                events.get(w.number, {}).get("open", 0),
                events.get(w.number, {}).get("click", 0),
            )
        )
    return figures


def planned_waves_of(mailer: Mailer, issue: Issue) -> list[WaveFigures]:
    with mailer.sessions() as session:
        return planned_waves(session, session.get_one(Issue, issue.id))


def expected_waves(session: Session, audience: Audience, local: LocalDelivery) -> list[WaveFigures]:
    """The waves a plan made now would hold, with the readers of each (nothing stored)."""
    eligible = audience.eligible(session, [])
    rows = session.execute(
        text(f"SELECT z, count(*) FROM ({eligible.sql}) r GROUP BY z"),  # noqa: S608 (the audience's SQL)
        dict(eligible.params),
    ).all()
    by_zone: dict[str, int] = {}
    for zone, n in rows:
        key = zone or local.default_zone
        by_zone[key] = by_zone.get(key, 0) + int(n)
    waves, wave_of = plan_waves(by_zone, local)
    for zone, n in by_zone.items():
        waves[wave_of[zone] - 1].recipients += n
    return [WaveFigures(w.number, w.send_at, w.local, w.offset, w.zones, w.recipients) for w in waves if w.recipients]


def dry_run(mailer: Mailer, issue: Issue, *, local: LocalDelivery | None = None) -> DryRun:
    """What a send would do now, without storing a plan or sending anything (with `local`: its waves)."""
    outgoing(mailer.addresses, issue)  # not rendered: say so before anything else
    size = mailer.batch_size
    state = plan_state(mailer.sessions, issue.id)
    left_out = None
    recipients: list[Recipient] = []
    first_id = 1
    with mailer.sessions() as session:
        if state.planned:
            first = session.execute(
                select(Batch.id, Batch.segment)
                .where(Batch.issue_id == issue.id, Batch.status == "pending")
                .order_by(Batch.number)
            ).first()
            first_left_out: list[str] = []
            if first is not None:
                people, _ = load_people(session, mailer.audience, first.id)
                recipients, _ = mailer.audience.recipients_of(people)
                first_id = first.id
                first_left_out = _segment_names(session, issue).get(first.segment, [])
            total, batches = state.recipients, sum(state.batches.values())
            segments = _stored_segments(session, issue)
        else:
            found, left_out = count_segments(session, mailer.audience, issue)
            segments = [SegmentPlan(s.left_out, s.recipients, -(-s.recipients // size)) for s in found]
            total = sum(s.recipients for s in segments)
            batches = sum(s.batches for s in segments)
            # The first batch is the first segment's (the full issue's, when anyone gets it); its payload
            # is estimated with the first recipients by id, whatever their segment.
            first_left_out = found[0].left_out if found else []
            if found:
                first_count = min(size, found[0].recipients)
                if local is not None:  # the first batch is the first wave's
                    first_count = min(first_count, expected_waves(session, mailer.audience, local)[0].recipients)
                recipients = _first_eligible(session, mailer.audience, first_count)
    provider = mailer.provider
    payload = 0
    if recipients:
        the_outgoing = outgoing_for_segment(mailer, issue, first_left_out)
        payload = provider.payload_size(the_outgoing, recipients, batch_id=first_id)
    with mailer.sessions() as session:
        if state.planned:
            waves = planned_waves(session, session.get_one(Issue, issue.id))
        elif local is not None:
            waves = expected_waves(session, mailer.audience, local)
            # Batches are made per wave (and per segment within it; counted here as if one).
            batches = max(batches, sum(-(-w.recipients // size) for w in waves))
        else:
            waves = []
    return DryRun(
        state.planned, total, batches, size, len(recipients), payload, provider.name, state, segments, left_out, waves
    )


@dataclass
class Cancelled:
    batches: int  # batches that will not go (pending, or scheduled at the provider and cancelled there)
    recipients: int
    at_provider: bool  # the provider's scheduled sends were cancelled (SendGrid's batch id)
    too_late: int  # batches handed over whose time is (nearly) there: the provider may send them anyway


# SendGrid does not promise to cancel a scheduled request due within this long.
CANCEL_MARGIN = timedelta(minutes=10)


def cancel(mailer: Mailer, issue: Issue) -> Cancelled:
    """Stop an issue whose waves have not all gone: pending batches become `cancelled` (never sent), and,
    when batches were handed to the provider ahead of their time, its scheduled sends are cancelled there
    and those batches (due later than CANCEL_MARGIN) become `cancelled` too. Taken under the send lock,
    so no batch is claimed meanwhile."""
    now = mailer.now()
    with send_lock(mailer.engine, issue.id, issue.week):
        with mailer.sessions() as session:
            schedule_id = session.scalar(select(Issue.provider_batch_id).where(Issue.id == issue.id))
            scheduled = session.scalar(
                select(func.count())
                .select_from(Batch)
                .where(Batch.issue_id == issue.id, Batch.status == "submitted", Batch.send_at > now)
            )
        at_provider = False
        if schedule_id and scheduled:
            try:
                mailer.provider.cancel_scheduled(schedule_id)
            except ProviderError as exc:
                raise DeliveryError(
                    f"issue {issue.week}: the provider did not cancel its scheduled sends: {exc}; "
                    "nothing was changed, try `digest send --cancel` again"
                ) from None
            finally:
                mailer.provider.close()
            at_provider = True
        with mailer.sessions.begin() as session:
            moved = [
                *session.scalars(
                    update(Batch)
                    .where(Batch.issue_id == issue.id, Batch.status.in_(("pending", "failed")))
                    .values(status="cancelled", updated_at=now)
                    .returning(Batch.id)
                )
            ]
            too_late = 0
            if at_provider:
                moved += session.scalars(
                    update(Batch)
                    .where(Batch.issue_id == issue.id, Batch.status == "submitted", Batch.send_at > now + CANCEL_MARGIN)
                    .values(status="cancelled", updated_at=now)
                    .returning(Batch.id)
                )
                too_late = (
                    session.scalar(
                        select(func.count())
                        .select_from(Batch)
                        .where(Batch.issue_id == issue.id, Batch.status == "submitted", Batch.send_at > now)
                    )
                    or 0
                )
            recipients = 0
            if moved:
                result = session.execute(
                    update(Delivery)
                    .where(Delivery.batch_id.in_(moved), Delivery.status.in_(("pending", "sent")))
                    .values(status="cancelled")
                )
                # A batch never claimed keeps its frozen members and no rows: it counts as cancelled whole.
                frozen = session.scalar(
                    select(func.sum(Batch.recipients)).where(Batch.id.in_(moved), Batch.members.is_not(None))
                )
                recipients = rowcount(result) + int(frozen or 0)
            finish_issue(session, issue.id)
    return Cancelled(len(moved), recipients, at_provider, too_late)


def send_test(mailer: Mailer, issue: Issue, address: str) -> str | None:
    """The issue to one address, subject marked [TEST]; no delivery is recorded. Returns the message id."""
    try:
        with mailer.sessions() as session:
            recipient, chosen = mailer.audience.test_recipient(session, address)
    except UsageError as exc:
        raise UsageError(f"--test {address!r}: {exc}") from None
    # A subscriber gets the issue as they would (the full issue if they would get nothing).
    left_out = [s for s in issue_sections(issue.content or {}) if s in set(chosen)]
    if left_out_everything(issue.content or {}, left_out):
        left_out = []
    provider = mailer.provider
    try:
        the_outgoing = outgoing_for_segment(mailer, issue, left_out, subject_prefix="[TEST] ")
        result = provider.send_batch(the_outgoing, [recipient], batch_id=0)
    except ProviderError as exc:
        raise DeliveryError(f"the test message to {recipient.email} was not sent: {exc}") from None
    finally:
        provider.close()
    if 0 not in result.sent:
        raise DeliveryError(f"the test message to {recipient.email} was not sent: {result.refused.get(0, 'refused')}")
    return result.sent[0]


def mark_sent(mailer: Mailer, issue: Issue, number: int) -> int:
    """The operator's word that batch `number` of a send of unknown fate did go out (the provider's
    activity shows it): it becomes submitted and its recipients sent, without sending anything.
    Returns its recipients marked sent."""
    # Not while a send may still be waiting on it.
    with send_lock(mailer.engine, issue.id, issue.week), mailer.sessions.begin() as session:
        row = session.execute(
            select(Batch.id, Batch.status).where(Batch.issue_id == issue.id, Batch.number == number)
        ).first()
        if row is None:
            raise UsageError(f"issue {issue.week} has no batch {number}")
        if row.status != "submitting":
            raise UsageError(
                f"batch {number} of issue {issue.week} is {row.status}, not of unknown fate; "
                "only a batch left in `submitting` can be marked sent"
            )
        pending = session.scalar(select(Batch.recipients).where(Batch.id == row.id, Batch.members.is_not(None)))
        settle_batch(session, mailer.audience, row.id, mailer.now())
    return pending or 0


def failed_recipients(mailer: Mailer, issue_id: int, *, limit: int = 10) -> tuple[int, list[tuple[str, str]]]:
    """Recipients of the issue refused one by one (their message could not be built, or the provider
    refused the address): how many, and the first `limit` addresses with the reason recorded."""
    failed = (Delivery.issue_id == issue_id, Delivery.status == "failed", Delivery.error.is_not(None))
    with mailer.sessions() as session:
        count = session.scalar(select(func.count()).select_from(Delivery).where(*failed))
        rows = session.execute(
            select(Delivery.subscriber_id, Delivery.error).where(*failed).order_by(Delivery.id).limit(limit)
        ).all()
        addresses = mailer.audience.addresses(session, {person for person, _ in rows})
    return count or 0, [(addresses[person], error or "") for person, error in rows if person in addresses]
