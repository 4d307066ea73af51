"""Send an issue's planned batches, each at most once, moving batch status by compare-and-set.

A batch goes pending -> submitting (claimed, before the request) -> submitted (the provider accepted
it) or failed (refused, or out of retries). The claim is committed before the request and the outcome
after it, so a process that dies mid-request leaves its batch in `submitting`: its fate is unknown,
and it is never re-sent by itself (only with `retry_unknown`, an operator's decision). So does a request
that timed out or lost its connection after it was sent (`FailureKind.UNKNOWN`). Such a batch is settled
by the provider's own events naming it (`settle_from_events`) or by the operator (`mark_sent`).

Recipients are loaded one batch at a time; someone who unsubscribed, bounced, complained or was
suppressed since the plan was made is marked skipped instead of mailed.

One recipient never stops the send: whoever's message cannot be made (their values, their address, a
name the message cannot carry) or is refused alone by the provider is marked failed with the reason in
`deliveries.error`, and the rest of the batch goes and is recorded as sent.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from digest.config import DeliveryConfig
from digest.delivery.audience import Audience
from digest.delivery.providers.base import BatchResult, Provider
from digest.delivery.retry import RetryPolicy
from digest.email.message import OutgoingIssue, Recipient
from digest.errors import DeliveryError, FailureKind, ProviderError
from digest.store.db import rowcount
from digest.store.models import Batch, Delivery, Issue, utcnow

log = logging.getLogger(__name__)


@dataclass
class UnknownBatch:
    number: int
    recipients: int
    since: datetime | None
    reason: str | None = None  # why its fate is unknown, when the sender saw it happen


@dataclass
class SendReport:
    batches: int = 0  # batches attempted by this run
    sent: int = 0
    failed: int = 0  # recipients in failed batches, or refused one by one
    skipped: int = 0  # left since the plan was made (unsubscribed, bounced, complained, suppressed)
    unknown_batches: list[int] = field(default_factory=list)  # batch numbers left in `submitting`
    new_unknown: int = 0  # of those, batches this run left unknown (a timeout after the request was sent)
    new_unknown_recipients: int = 0  # the recipients of those batches still pending (neither sent nor refused)
    unknown: list[UnknownBatch] = field(default_factory=list)
    failed_batches: list[tuple[int, str]] = field(default_factory=list)  # (batch number, reason)
    already_submitted: int = 0  # batches a previous run had sent
    left_failed: int = 0  # batches failed by an earlier run, not retried by this one
    not_planned: int = (
        0  # left out every section of the issue when it was planned: not mailed (see digest.email.segments)
    )
    waiting: int = 0  # batches of a wave whose time has not come (local-time delivery): left pending
    waiting_recipients: int = 0
    next_wave: datetime | None = None  # when the first of them is due
    stale: int = 0  # batches of a wave missed by more than `stale_after`: left pending, not sent late
    paused: bool = False  # too many failed batches
    stopped: bool = False  # a signal asked us to stop
    seconds: float = 0.0

    @property
    def unknown_recipients(self) -> int:
        return sum(u.recipients for u in self.unknown)

    @property
    def recipients(self) -> int:
        """The recipients of the batches this run took: each is sent, failed, skipped or unknown."""
        return self.sent + self.failed + self.skipped + self.new_unknown_recipients

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class SendOptions:
    max_failed_batches: int
    policy: RetryPolicy
    retry_failed: bool = False  # --resume: batches a previous run failed go again
    retry_unknown: bool = False  # --retry-unknown: batches left in `submitting` go again

    @classmethod
    def from_config(cls, delivery: DeliveryConfig, *, resume: bool = False, retry_unknown: bool = False) -> SendOptions:
        """The newsletter file's `[delivery]` values (their defaults live there, and only there)."""
        return cls(delivery.max_failed_batches, RetryPolicy.from_config(delivery), resume, retry_unknown)


@dataclass
class Progress:
    """What a progress bar needs after each batch."""

    number: int
    sent: int
    failed: int
    skipped: int


def move_batch(
    session: Session, batch_id: int, from_statuses: tuple[str, ...], to_status: str, **values: object
) -> bool:
    """Compare-and-set; False when another process moved the batch first."""
    result = session.execute(
        update(Batch)
        .where(Batch.id == batch_id, Batch.status.in_(from_statuses))
        .values(status=to_status, updated_at=utcnow(), **values)
    )
    return rowcount(result) == 1


def pending_count(sessions: sessionmaker[Session], issue_id: int, statuses: tuple[str, ...]) -> int:
    """Recipients still to mail in batches of these statuses (the progress bar's total)."""
    with sessions() as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(Delivery)
                .join(Batch, Batch.id == Delivery.batch_id)
                .where(Batch.issue_id == issue_id, Batch.status.in_(statuses), Delivery.status == "pending")
            )
            or 0
        )


def load_recipients(
    session: Session, audience: Audience, batch_id: int
) -> tuple[list[Recipient], list[int], dict[int, str]]:
    """The batch's recipients still to mail; the delivery ids of those who left since the plan; and the
    delivery ids whose values could not be made, with the reason (see `Audience.recipients`)."""
    pending = session.execute(
        select(Delivery.id, Delivery.subscriber_id)
        .where(Delivery.batch_id == batch_id, Delivery.status == "pending")
        .order_by(Delivery.id)
    ).all()
    return audience.recipients(session, dict(pending))


def _record_sent(session: Session, batch_id: int, message_ids: dict[int, str | None], now: datetime) -> None:
    if not message_ids:
        return
    ids = set(message_ids.values())
    if len(ids) == 1:  # one request, one X-Message-Id: one statement for the whole batch
        session.execute(
            update(Delivery)
            .where(Delivery.batch_id == batch_id, Delivery.status == "pending", Delivery.id.in_(list(message_ids)))
            .values(status="sent", message_id=ids.pop(), sent_at=now)
        )
        return
    session.execute(
        update(Delivery),
        [{"id": d, "status": "sent", "message_id": m, "sent_at": now} for d, m in message_ids.items()],
    )


def _record_refused(session: Session, reasons: Mapping[int, str]) -> None:
    """Recipients failed one by one, each with the reason (a pending one only: never undo a sent)."""
    if not reasons:
        return
    for delivery_id, reason in reasons.items():
        session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.status == "pending")
            .values(status="failed", error=reason[:1000])
        )


def send_issue(
    sessions: sessionmaker[Session],
    provider: Provider,
    audience: Audience,
    outgoing: OutgoingIssue,
    *,
    options: SendOptions,
    stop: threading.Event | None = None,
    sleep: Callable[[float], object] | None = None,
    on_batch: Callable[[Progress], None] | None = None,
    segments: Mapping[str, OutgoingIssue] | None = None,
    now: Callable[[], datetime] = utcnow,
    schedule_id: str | None = None,
    stale_after: timedelta | None = None,
) -> SendReport:
    """Send the issue's batches. `outgoing` is the full issue (segment ""); `segments` holds the other
    renderings by segment key, and each batch goes with the one its plan names.

    A batch of a wave (local-time delivery, `Batch.send_at`) is taken only when it is due, or, with a
    provider that schedules ahead (SendGrid), once it is within `provider.schedules_ahead` of its time: it
    then goes with `send_at` and the issue's `schedule_id`. A batch not yet due stays pending, unclaimed,
    so whoever leaves before it is claimed is not mailed. With `stale_after` (the scheduler's grace), a
    wave missed by more than that is left pending and counted `stale`, never sent late by itself."""
    renderings = {**(segments or {}), "": outgoing}
    stop = stop or threading.Event()
    # Waiting on the stop event makes a backoff end as soon as SIGINT or SIGTERM arrives.
    wait = sleep or stop.wait
    started = time.monotonic()
    report = SendReport()
    with sessions() as session:
        batches = session.execute(
            select(Batch.id, Batch.number, Batch.status, Batch.updated_at, Batch.segment, Batch.send_at)
            .where(Batch.issue_id == outgoing.issue_id)
            .order_by(Batch.number)
        ).all()
    missing = sorted({b.segment for b in batches if b.status != "submitted" and b.segment not in renderings})
    if missing:
        # Checked before any claim: a batch is never moved to submitting without the body it needs.
        raise DeliveryError(
            f"issue {outgoing.slug}: no rendering for segment(s) {', '.join(missing)}; "
            "`digest send --resume` renders them before sending"
        )
    try:
        for batch_id, number, status, updated_at, segment, send_at in batches:
            if status == "submitted":
                report.already_submitted += 1
                continue
            if status == "submitting" and not options.retry_unknown:
                with sessions() as session:
                    size = _pending_in(session, batch_id)
                    reason = session.scalar(select(Batch.error).where(Batch.id == batch_id))
                report.unknown_batches.append(number)
                report.unknown.append(UnknownBatch(number, size, updated_at, reason))
                continue
            if status == "failed" and not options.retry_failed:
                report.left_failed += 1
                continue
            if send_at is not None and send_at > now() + provider.schedules_ahead:
                with sessions() as session:
                    report.waiting_recipients += _pending_in(session, batch_id)
                report.waiting += 1
                report.next_wave = min(send_at, report.next_wave or send_at)
                continue
            if send_at is not None and stale_after is not None and send_at < now() - stale_after:
                report.stale += 1
                continue
            if stop.is_set():
                report.stopped = True
                break
            rendering = renderings[segment]
            if send_at is not None and send_at > now():  # handed over ahead: the provider holds it till then
                rendering = dataclasses.replace(rendering, send_at=send_at, schedule_id=schedule_id)
            # The claim and the recipients' check are one transaction: one commit (one fsync) less per batch.
            with sessions.begin() as session:
                if not move_batch(session, batch_id, (status,), "submitting", attempts=Batch.attempts + 1):
                    continue  # another process claimed it first
                recipients, left, unbuilt = load_recipients(session, audience, batch_id)
                if left:
                    session.execute(update(Delivery).where(Delivery.id.in_(left)).values(status="skipped"))
                _record_refused(session, unbuilt)
            report.batches += 1
            report.skipped += len(left)
            report.failed += len(unbuilt)
            outcome = _send_one_batch(
                sessions, provider, rendering, batch_id, recipients, options, stop, wait, report, now
            )
            if on_batch:
                on_batch(Progress(number, outcome[0], outcome[1] + len(unbuilt), len(left)))
            # A provider that stops answering leaves one unknown batch after another: pause as for failures.
            if len(report.failed_batches) + report.new_unknown > options.max_failed_batches:
                report.paused = True
                break
    finally:
        report.seconds = time.monotonic() - started
    with sessions.begin() as session:
        finish_issue(session, outgoing.issue_id)
    return report


def _send_one_batch(
    sessions: sessionmaker[Session],
    provider: Provider,
    outgoing: OutgoingIssue,
    batch_id: int,
    recipients: list[Recipient],
    options: SendOptions,
    stop: threading.Event,
    wait: Callable[[float], object],
    report: SendReport,
    now: Callable[[], datetime] = utcnow,
) -> tuple[int, int]:
    """Send a claimed batch with retries; returns (sent, failed) recipients and records the outcome."""
    policy = options.policy
    remaining = recipients
    sent_total = refused_total = 0
    retries = rate_waits = 0
    while True:
        try:
            result = provider.send_batch(outgoing, remaining, batch_id=batch_id) if remaining else BatchResult()
        except ProviderError as exc:
            if exc.sent or exc.refused:  # what was settled before the failure is recorded now, never sent again
                with sessions.begin() as session:
                    _record_sent(session, batch_id, exc.sent, now())
                    _record_refused(session, exc.refused)
                sent_total += len(exc.sent)
                refused_total += len(exc.refused)
                remaining = [r for r in remaining if r.delivery_id not in exc.sent and r.delivery_id not in exc.refused]
            if exc.kind is FailureKind.UNKNOWN:
                report.sent += sent_total
                report.failed += refused_total
                return sent_total + _leave_unknown(sessions, batch_id, len(remaining), str(exc), report), refused_total
            if exc.kind is FailureKind.STOP:
                # Nothing of this batch was accepted: it goes back to pending for a later --resume.
                with sessions.begin() as session:
                    move_batch(session, batch_id, ("submitting",), "pending", error=str(exc))
                report.sent += sent_total
                report.failed += refused_total
                raise DeliveryError(str(exc)) from None
            delay = None
            if exc.kind is FailureKind.RATE_LIMITED and rate_waits < policy.rate_limit_waits:
                rate_waits += 1
                delay = policy.rate_limit_wait(exc.retry_after)
            elif exc.kind in (FailureKind.TRANSIENT, FailureKind.RATE_LIMITED) and retries < policy.retries:
                retries += 1
                delay = policy.backoff(retries)
            if delay is not None and not stop.is_set():
                log.warning("batch %s: %s; trying again in %.1fs", batch_id, exc, delay)
                wait(delay)
                if not stop.is_set():
                    continue
                reason = f"stopped while waiting to retry after: {exc}"
            else:
                reason = str(exc)
            with sessions.begin() as session:
                move_batch(session, batch_id, ("submitting",), "failed", error=reason)
                number = session.scalars(select(Batch.number).where(Batch.id == batch_id)).one()
            log.error("batch %s failed: %s", number, reason)
            report.failed_batches.append((number, reason))
            report.failed += len(remaining) + refused_total
            report.sent += sent_total
            return sent_total, len(remaining) + refused_total
        accepted_at = now()
        # A batch handed over ahead is recorded sent at the time the provider is to deliver it.
        delivered_at = outgoing.send_at or accepted_at
        refused = dict(result.refused)
        for r in remaining:
            if r.delivery_id not in result.sent and r.delivery_id not in refused:
                refused[r.delivery_id] = "the provider did not accept this recipient"
        with sessions.begin() as session:
            if not move_batch(session, batch_id, ("submitting",), "submitted", submitted_at=accepted_at, error=None):
                log.warning("batch %s was moved by someone else while it was being sent", batch_id)
            _record_sent(session, batch_id, result.sent, delivered_at)
            _record_refused(session, refused)
        if refused:
            log.warning(
                "batch %s: %d recipient(s) not sent; the reasons are in deliveries.error", batch_id, len(refused)
            )
        sent_total += len(result.sent)
        refused_total += len(refused)
        report.sent += sent_total
        report.failed += refused_total
        return sent_total, refused_total


def _pending_in(session: Session, batch_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.batch_id == batch_id, Delivery.status == "pending")
        )
        or 0
    )


def _leave_unknown(
    sessions: sessionmaker[Session], batch_id: int, recipients: int, reason: str, report: SendReport
) -> int:
    """Keep a batch whose request may have been accepted in `submitting`, never to be retried by itself.
    Returns its recipients when the provider's events settled it while we waited (they count as sent)."""
    with sessions.begin() as session:
        still_unknown = move_batch(session, batch_id, ("submitting",), "submitting", error=reason)
        number = session.scalars(select(Batch.number).where(Batch.id == batch_id)).one()
    if not still_unknown:
        report.sent += recipients
        return recipients
    log.error("batch %s: %s; left unknown, not re-sent", number, reason)
    report.new_unknown += 1
    report.new_unknown_recipients += recipients
    report.unknown_batches.append(number)
    report.unknown.append(UnknownBatch(number, recipients, utcnow(), reason))
    return 0


def settle_batch(session: Session, batch_id: int, now: datetime, *, message_id: str | None = None) -> bool:
    """A batch of unknown fate (`submitting`) was accepted: mark it submitted and its recipients sent.
    False when it is not in `submitting` (already settled, or never sent)."""
    if not move_batch(session, batch_id, ("submitting",), "submitted", submitted_at=now, error=None):
        return False
    session.execute(
        update(Delivery)
        .where(Delivery.batch_id == batch_id, Delivery.status == "pending")
        .values(status="sent", message_id=message_id, sent_at=now)
    )
    finish_issue(session, session.scalars(select(Batch.issue_id).where(Batch.id == batch_id)).one())
    return True


def finish_issue(session: Session, issue_id: int) -> bool:
    """Mark the issue sent once none of its batches is pending, unknown or failed."""
    open_batch = session.scalar(
        select(Batch.id)
        .where(Batch.issue_id == issue_id, Batch.status.in_(("pending", "submitting", "failed")))
        .limit(1)
    )
    if open_batch is not None:
        return False
    result = session.execute(
        update(Issue).where(Issue.id == issue_id, Issue.status == "sending").values(status="sent", sent_at=utcnow())
    )
    return rowcount(result) == 1


class Claim(Protocol):
    """What the provider's events say about the request that carried a batch (subscribers.events.BatchClaim)."""

    @property
    def issue_id(self) -> int: ...

    @property
    def message_id(self) -> str | None: ...


def settle_from_events(session: Session, claims: Mapping[int, Claim], *, now: datetime) -> list[tuple[int, int]]:
    """Settle the batches that the provider's (signed) events prove accepted. `claims` maps a batch id,
    as our custom_args carried it, to what the events say (`issue_id`, `message_id`). Only a batch that
    is in `submitting` and belongs to the issue the events name is settled. Returns (issue id, number)s."""
    if not claims:
        return []
    rows = session.execute(
        select(Batch.id, Batch.issue_id, Batch.number).where(Batch.id.in_(list(claims)), Batch.status == "submitting")
    ).all()
    settled: list[tuple[int, int]] = []
    for batch_id, issue_id, number in rows:
        claim = claims[batch_id]
        if claim.issue_id == issue_id and settle_batch(session, batch_id, now, message_id=claim.message_id):
            settled.append((issue_id, number))
    return settled


def unknown_batches(session: Session, issue_id: int) -> list[UnknownBatch]:
    """The issue's batches of unknown fate, for `digest send` and the preview."""
    rows = session.execute(
        select(Batch.id, Batch.number, Batch.updated_at, Batch.error)
        .where(Batch.issue_id == issue_id, Batch.status == "submitting")
        .order_by(Batch.number)
    ).all()
    return [UnknownBatch(number, _pending_in(session, id_), since, error) for id_, number, since, error in rows]
