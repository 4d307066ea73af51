"""Send an issue's planned batches, each at most once, moving batch status by compare-and-set.

A batch goes pending -> submitting (claimed, before the request) -> submitted (the provider accepted
it) or failed (refused, or out of retries). The claim is committed before the request and the outcome
after it, so a process that dies mid-request leaves its batch in `submitting`: its fate is unknown,
and it is never re-sent by itself (only with `retry_unknown`, an operator's decision). So does a request
that timed out or lost its connection after it was sent (`FailureKind.UNKNOWN`). Such a batch is settled
by the provider's own events naming it (`settle_from_events`) or by the operator (`mark_sent`).

The store's work overlaps the provider's: a batch's outcome is recorded while the next request is made
(it goes once that outcome is committed), and on PostgreSQL the batch after it is claimed, uncommitted,
while a request is in flight (`_Request`, `_ClaimAhead`; digest/delivery/README.md).

Recipients are loaded one batch at a time; someone who unsubscribed, bounced, complained or was
suppressed since the plan was made is marked skipped instead of mailed.

One recipient never stops the send: whoever's message cannot be made (their values, their address, a
name the message cannot carry) or is refused alone by the provider is marked failed with the reason in
`deliveries.error`, and the rest of the batch goes and is recorded as sent.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Select, and_, bindparam, func, or_, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from digest.config import DeliveryConfig
from digest.delivery.audience import Audience
from digest.delivery.lock import InFlight
from digest.delivery.providers.base import BatchResult, Provider
from digest.delivery.retry import RetryPolicy
from digest.email.message import OutgoingIssue, Recipient
from digest.errors import DeliveryError, FailureKind, ProviderError
from digest.store.db import TextSelect, rowcount
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
        made = session.scalar(
            select(func.count())
            .select_from(Delivery)
            .join(Batch, Batch.id == Delivery.batch_id)
            .where(Batch.issue_id == issue_id, Batch.status.in_(statuses), Delivery.status == "pending")
        )
        # A batch not claimed yet has no rows: all its frozen recipients are pending.
        frozen = session.scalar(
            select(func.sum(Batch.recipients)).where(
                Batch.issue_id == issue_id, Batch.status.in_(statuses), Batch.members.is_not(None)
            )
        )
        return (made or 0) + (frozen or 0)


def _members(dialect: str) -> tuple[str, str]:
    """SQL over a batch `b`'s frozen members: (a FROM item with one row `j` per member, the person id)."""
    if dialect == "postgresql":
        return "json_array_elements_text(CAST(b.members AS json)) AS j(value)", "CAST(j.value AS integer)"
    return "json_each(b.members) j", "j.value"


def make_deliveries(session: Session, audience: Audience, batch_id: int) -> None:
    """Turn a frozen batch's members into its deliveries rows (pending), in subscriber id order, and clear
    `members`: from then on the rows are the batch's truth. Done by the claim, in its transaction, so a
    batch is claimed with its rows or not at all. Someone erased since the plan gets no row (their delivery
    rows would be gone too); the unique key (issue, subscriber) still holds at most one row per reader."""
    source, person = _members(session.connection().dialect.name)
    members = TextSelect(
        f"SELECT {person} AS id, b.issue_id AS issue_id, b.id AS batch_id FROM batches b CROSS JOIN {source} "  # noqa: S608
        "WHERE b.id = :frozen_batch AND b.members IS NOT NULL",
        {"frozen_batch": batch_id},
    )
    present = audience.present(members)
    session.execute(
        text(
            "INSERT INTO deliveries (issue_id, batch_id, subscriber_id, status) "  # noqa: S608 (the audience's SQL)
            f"SELECT r.issue_id, r.batch_id, r.id, 'pending' FROM ({present.sql}) r ORDER BY r.id"
        ),
        dict(present.params),
    )
    session.execute(update(Batch).where(Batch.id == batch_id).values(members=None))


def load_recipients(
    session: Session, audience: Audience, batch_id: int, *, frozen: bool = False
) -> tuple[list[Recipient], list[int], dict[int, str]]:
    """The batch's recipients still to mail; the delivery ids of those who left since the plan; and the
    delivery ids whose values could not be made, with the reason (see `Audience.recipients`).

    `frozen`: the batch is not claimed yet (no deliveries rows); its members are read as they are, numbered
    from 1 in their place of delivery ids, without storing anything (the dry run's payload estimate)."""
    # Plain SQL for the audience to join to its own tables: no ORM rows, no list of ids.
    if frozen:
        source, person = _members(session.connection().dialect.name)
        pending = TextSelect(
            f"SELECT ROW_NUMBER() OVER (ORDER BY {person}) AS delivery_id, {person} AS subscriber_id "  # noqa: S608
            f"FROM batches b CROSS JOIN {source} WHERE b.id = :batch_id",
            {"batch_id": batch_id},
        )
    else:
        pending = TextSelect(
            "SELECT d.id AS delivery_id, d.subscriber_id AS subscriber_id FROM deliveries d "
            "WHERE d.batch_id = :batch_id AND d.status = 'pending'",
            {"batch_id": batch_id},
        )
    return audience.batch_recipients(session, pending)


# Built once; the ids are one expanding parameter, not a thousand literals to coerce on every batch.
_MARK_SENT = (
    update(Delivery)
    .where(
        Delivery.batch_id == bindparam("batch"),
        Delivery.status == "pending",
        Delivery.id.in_(bindparam("deliveries", expanding=True)),
    )
    .values(status="sent", message_id=bindparam("message"), sent_at=bindparam("at"))
)


def _record_sent(
    session: Session, batch_id: int, message_ids: dict[int, str | None], now: datetime, *, all_pending: bool = False
) -> None:
    """Mark these deliveries sent. `all_pending`: they are every delivery of the batch still pending (the
    claim's recipients, less those settled by an earlier attempt), so no list of ids is needed."""
    if not message_ids:
        return
    ids = set(message_ids.values())
    if len(ids) == 1 and all_pending:
        session.execute(
            update(Delivery)
            .where(Delivery.batch_id == batch_id, Delivery.status == "pending")
            .values(status="sent", message_id=ids.pop(), sent_at=now)
        )
        return
    if len(ids) == 1:  # one request, one X-Message-Id: one statement for the whole batch
        session.execute(
            _MARK_SENT, {"batch": batch_id, "deliveries": list(message_ids), "message": ids.pop(), "at": now}
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
    in_flight: InFlight | None = None,
) -> SendReport:
    """Send the issue's batches. `outgoing` is the full issue (segment ""); `segments` holds the other
    renderings by segment key, and each batch goes with the one its plan names.

    A batch of a wave (local-time delivery, `Batch.send_at`) is taken only when it is due, or, with a
    provider that schedules ahead (SendGrid), once it is within `provider.schedules_ahead` of its time: it
    then goes with `send_at` and the issue's `schedule_id`. A batch not yet due stays pending, unclaimed,
    so whoever leaves before it is claimed is not mailed. With `stale_after` (the scheduler's grace), a
    wave missed by more than that is left pending and counted `stale`, never sent late by itself.

    Batches are claimed one at a time (`_claim`), so other senders of the issue may work beside this one
    (PostgreSQL; `in_flight`, from `send_lock`, tells their batches in flight from unknown ones)."""
    renderings = {**(segments or {}), "": outgoing}
    stop = stop or threading.Event()
    in_flight = in_flight or InFlight()
    # Waiting on the stop event makes a backoff end as soon as SIGINT or SIGTERM arrives.
    wait = sleep or stop.wait
    started = time.monotonic()
    report = SendReport()
    with sessions() as session:
        segments_open = session.scalars(
            select(Batch.segment).distinct().where(Batch.issue_id == outgoing.issue_id, Batch.status != "submitted")
        ).all()
    missing = sorted({s for s in segments_open if s not in renderings})
    if missing:
        # Checked before any claim: a batch is never moved to submitting without the body it needs.
        raise DeliveryError(
            f"issue {outgoing.slug}: no rendering for segment(s) {', '.join(missing)}; "
            "`digest send --resume` renders them before sending"
        )
    claimable = (
        ("pending",)
        + (("failed",) if options.retry_failed else ())
        + (("submitting",) if options.retry_unknown else ())
    )
    tried: list[int] = []  # this run's batches: never claimed twice by it (a failed one waits for --resume)
    # Only a failed or unknown batch can be claimable again, and only with --resume: without it the
    # claim's query needs no list of this run's batches (a thousand ids at a million recipients).
    exclude = tried if len(claimable) > 1 else []

    def claim_next(begin: Callable[[], AbstractContextManager[Session]] | None = None) -> _Claimed | None:
        due = _due(now(), provider.schedules_ahead, stale_after)
        if begin is None and stop.is_set():
            report.stopped = _next_claimable(sessions, outgoing.issue_id, claimable, exclude, due) is not None
            return None
        return _claim(sessions, audience, outgoing.issue_id, claimable, exclude, due, in_flight, begin)

    # The pipeline (see `_Request`): one thread makes and posts the requests, one at a time; this one
    # records the last batch's outcome while the next request is made, and on PostgreSQL claims the
    # batch after it while the request is in flight (`_ClaimAhead`).
    claims_ahead = _dialect(sessions) == "postgresql"
    poster = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="digest-send")
    request: _Request | None = None
    ahead: _ClaimAhead | None = None
    accepted: _Accepted | None = None  # sent, its outcome not yet recorded
    try:
        claim = claim_next()
        while claim is not None:
            tried.append(claim.batch_id)
            rendering = renderings[claim.segment]
            if claim.send_at is not None and claim.send_at > now():  # handed over ahead: the provider holds it
                rendering = dataclasses.replace(rendering, send_at=claim.send_at, schedule_id=schedule_id)
            report.batches += 1
            report.skipped += len(claim.left)
            report.failed += len(claim.unbuilt)
            request = _Request(poster, provider, rendering, claim)
            if accepted is not None:
                # Recorded before the next request goes: a crash leaves one batch of unknown fate, not two.
                _record_accepted(sessions, accepted, report, in_flight, on_batch, now)
                accepted = None
            request.go()
            if claims_ahead and not stop.is_set():
                ahead = _ClaimAhead(sessions, in_flight)
                ahead.claimed = claim_next(ahead.begin)
                if ahead.claimed is None:
                    ahead.rollback()
                    ahead = None
            if ahead is not None and not request.answered(_HOLD_AHEAD_SECONDS):
                # A slow answer: the batch claimed ahead goes back to the other senders meanwhile.
                ahead.rollback()
                ahead = None
            failure = request.failure()
            if failure is None:
                accepted = _Accepted(claim, rendering, request.result())
                request = None
                if stop.is_set() and ahead is not None:
                    ahead.rollback()
                    ahead = None
                claim = ahead.commit() if ahead is not None else claim_next()
                ahead = None
                continue
            if ahead is not None:  # the batch in hand goes on alone (retries, backoff): the one ahead waits
                ahead.rollback()
                ahead = None
            first, request = request, None
            try:
                outcome = _send_one_batch(
                    sessions, provider, rendering, claim.batch_id, claim.recipients, options, stop, wait, report, now,
                    first=first.result,
                )  # fmt: skip
            finally:
                in_flight.release(claim.batch_id)
            if on_batch:
                on_batch(Progress(claim.number, outcome[0], outcome[1] + len(claim.unbuilt), len(claim.left)))
            # A provider that stops answering leaves one unknown batch after another: pause as for failures.
            if len(report.failed_batches) + report.new_unknown > options.max_failed_batches:
                report.paused = True
                break
            claim = claim_next()
        if accepted is not None:
            _record_accepted(sessions, accepted, report, in_flight, on_batch, now)
            accepted = None
    finally:
        if request is not None:
            request.cancel()  # not sent yet: it never will be
        poster.shutdown(wait=True)
        if ahead is not None:
            ahead.rollback()
        _unwind(sessions, request, accepted, in_flight)
        report.seconds = time.monotonic() - started
    _tally(
        sessions,
        outgoing.issue_id,
        report,
        options,
        set(tried),
        in_flight,
        _due(now(), provider.schedules_ahead, stale_after),
    )
    with sessions.begin() as session:
        finish_issue(session, outgoing.issue_id)
    return report


# How long a batch claimed ahead may wait for the answer to the request before it (`_ClaimAhead`).
_HOLD_AHEAD_SECONDS = 1.0


def _dialect(sessions: sessionmaker[Session]) -> str:
    bind = sessions.kw.get("bind")
    return str(bind.dialect.name) if bind is not None else ""


class _NotSent(Exception):
    """A request given up before anything was sent (the send stopped on an error)."""


class _Request:
    """One batch's request on the poster thread: made at once (`Preparing.prepare_batch`), sent on `go`.

    So the request is made while this thread records the previous batch's outcome, and only goes once
    that outcome is committed: whatever happens, at most the batch in flight is of unknown fate."""

    def __init__(
        self,
        poster: concurrent.futures.Executor,
        provider: Provider,
        outgoing: OutgoingIssue,
        claim: _Claimed,
    ) -> None:
        self.claim = claim
        self.outgoing = outgoing
        self._go = threading.Event()
        self._cancelled = False
        self._future = poster.submit(self._run, provider, outgoing, claim.batch_id, claim.recipients)

    def _run(
        self, provider: Provider, outgoing: OutgoingIssue, batch_id: int, recipients: list[Recipient]
    ) -> BatchResult:
        prepare = getattr(provider, "prepare_batch", None)
        send: Callable[[], BatchResult]
        if not recipients:
            send = BatchResult
        elif prepare is not None:
            send = prepare(outgoing, recipients, batch_id=batch_id)
        else:
            send = lambda: provider.send_batch(outgoing, recipients, batch_id=batch_id)  # noqa: E731
        self._go.wait()
        if self._cancelled:
            raise _NotSent
        return send()

    def go(self) -> None:
        self._go.set()

    def cancel(self) -> None:
        self._cancelled = True
        self._go.set()

    def answered(self, timeout: float) -> bool:
        done, _ = concurrent.futures.wait([self._future], timeout=timeout)
        return bool(done)

    def failure(self) -> BaseException | None:
        return self._future.exception()

    def result(self) -> BatchResult:
        return self._future.result()


class _ClaimAhead:
    """A claim made while the previous batch's request is in flight (PostgreSQL), in a transaction left
    open until that request is answered: committed then, and the batch's request goes; rolled back when
    the send stops, the request failed, or its answer is slow (`_HOLD_AHEAD_SECONDS`: meanwhile the row
    stays locked, and the other senders pass it by). A crash before the commit leaves the batch pending,
    as if never claimed: `submitting` still means a request may have gone. Its recipients are checked when
    it is claimed, at most that long before its request is made.

    Not on SQLite: its one writer would keep the database locked for the length of every request."""

    def __init__(self, sessions: sessionmaker[Session], in_flight: InFlight) -> None:
        self._session = sessions()
        self._in_flight = in_flight
        self.claimed: _Claimed | None = None

    @contextmanager
    def begin(self) -> Iterator[Session]:
        self._session.begin()
        try:
            yield self._session
        except BaseException:
            self._session.rollback()
            self._session.close()
            raise

    def commit(self) -> _Claimed | None:
        try:
            self._session.commit()
        finally:
            self._session.close()
        return self.claimed

    def rollback(self) -> None:
        try:
            self._session.rollback()
        finally:
            self._session.close()
            if self.claimed is not None:
                self._in_flight.release(self.claimed.batch_id)
                self.claimed = None


@dataclass
class _Accepted:
    claim: _Claimed
    outgoing: OutgoingIssue
    result: BatchResult


@dataclass(frozen=True)
class _Due:
    """Which batches may be claimed now: at once (no wave), or a wave due (or within the provider's
    schedule-ahead) and not missed by more than `stale_after`."""

    until: datetime
    stale_before: datetime | None

    def clause(self) -> ColumnElement[bool]:
        due = or_(Batch.send_at.is_(None), Batch.send_at <= self.until)
        if self.stale_before is None:
            return due
        return and_(due, or_(Batch.send_at.is_(None), Batch.send_at >= self.stale_before))


def _due(at: datetime, ahead: timedelta, stale_after: timedelta | None) -> _Due:
    return _Due(at + ahead, at - stale_after if stale_after is not None else None)


@dataclass
class _Claimed:
    batch_id: int
    number: int
    segment: str
    send_at: datetime | None
    recipients: list[Recipient]
    left: list[int]
    unbuilt: dict[int, str]


def _open_batches(issue_id: int, statuses: tuple[str, ...], tried: list[int], due: _Due) -> Select[Any]:
    query = select(Batch.id).where(Batch.issue_id == issue_id, Batch.status.in_(statuses), due.clause())
    if tried:
        query = query.where(Batch.id.not_in(tried))
    return query


def _next_claimable(
    sessions: sessionmaker[Session], issue_id: int, statuses: tuple[str, ...], tried: list[int], due: _Due
) -> int | None:
    with sessions() as session:
        found: int | None = session.scalar(_open_batches(issue_id, statuses, tried, due).limit(1))
        return found


def _claim(
    sessions: sessionmaker[Session],
    audience: Audience,
    issue_id: int,
    statuses: tuple[str, ...],
    tried: list[int],
    due: _Due,
    in_flight: InFlight,
    begin: Callable[[], AbstractContextManager[Session]] | None = None,
) -> _Claimed | None:
    """Claim the next due batch, lowest number first: lock the first row no other sender is claiming now
    (`FOR UPDATE SKIP LOCKED`; SQLite, one sender, has no such clause and needs none), mark it ours in
    flight, and move it to `submitting` by compare-and-set, in one transaction with the making of its
    deliveries rows from its frozen members (its first claim; `make_deliveries`) and the recipients'
    check. The compare-and-set stays the truth: a claim that loses a race moves nothing. None: nothing
    is left to claim now (what others are claiming at this instant is theirs). `begin`: the transaction
    to claim in, when it is not to commit at once (`_ClaimAhead`)."""
    passed: list[int] = []  # `submitting` batches another live sender has in flight (--retry-unknown)
    with (begin or sessions.begin)() as session:
        while True:
            # One row at a time: a claim that locked several would hide them all from the other senders.
            row = session.execute(
                _open_batches(issue_id, statuses, tried + passed, due)
                .with_only_columns(
                    Batch.id, Batch.number, Batch.status, Batch.segment, Batch.send_at, Batch.members.is_not(None)
                )
                .order_by(Batch.number)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return None
            batch_id, number, status, segment, send_at, frozen = row
            if not in_flight.hold(batch_id):
                passed.append(batch_id)
                continue
            if not move_batch(session, batch_id, (status,), "submitting", attempts=Batch.attempts + 1):
                in_flight.release(batch_id)
                passed.append(batch_id)
                continue
            if frozen:  # its first claim: its deliveries rows are made now, with the claim
                make_deliveries(session, audience, batch_id)
            recipients, left, unbuilt = load_recipients(session, audience, batch_id)
            if left:
                session.execute(update(Delivery).where(Delivery.id.in_(left)).values(status="skipped"))
            _record_refused(session, unbuilt)
            return _Claimed(batch_id, number, segment, send_at, recipients, left, unbuilt)


def _tally(
    sessions: sessionmaker[Session],
    issue_id: int,
    report: SendReport,
    options: SendOptions,
    tried: set[int],
    in_flight: InFlight,
    due: _Due,
) -> None:
    """What this run left to others: batches sent before (or by other senders), of unknown fate, failed
    earlier, waiting for their wave, or missed. A `submitting` batch another live sender has in flight
    is neither: it is theirs."""
    with sessions() as session:
        rows = session.execute(
            select(
                Batch.id,
                Batch.number,
                Batch.status,
                Batch.updated_at,
                Batch.send_at,
                Batch.error,
                Batch.recipients,
                Batch.members.is_not(None),
            )
            .where(Batch.issue_id == issue_id)
            .order_by(Batch.number)
        ).all()
        for batch_id, number, status, updated_at, send_at, error, planned, frozen in rows:
            if batch_id in tried:
                continue
            if status == "submitted":
                report.already_submitted += 1
            elif status == "submitting" and not in_flight.elsewhere(batch_id):
                report.unknown_batches.append(number)
                report.unknown.append(UnknownBatch(number, _pending_in(session, batch_id), updated_at, error))
            elif status == "failed" and not options.retry_failed:
                report.left_failed += 1
            elif status == "pending" and send_at is not None and send_at > due.until:
                report.waiting_recipients += planned if frozen else _pending_in(session, batch_id)
                report.waiting += 1
                report.next_wave = min(send_at, report.next_wave or send_at)
            elif status == "pending" and send_at is not None and due.stale_before and send_at < due.stale_before:
                report.stale += 1
    report.unknown.sort(key=lambda u: u.number)
    report.unknown_batches.sort()


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
    first: Callable[[], BatchResult] | None = None,
) -> tuple[int, int]:
    """Send a claimed batch with retries; returns (sent, failed) recipients and records the outcome.
    `first`: the first attempt, made already (`_Request.result`: its answer, or its failure raised)."""
    policy = options.policy
    remaining = recipients
    sent_total = refused_total = 0
    retries = rate_waits = 0
    while True:
        try:
            if first is not None:
                attempt, first = first, None  # the next attempt, if any, is a new request
                result = attempt()
            else:
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
        sent, refused = _record_success(sessions, outgoing, batch_id, remaining, result, now())
        sent_total += sent
        refused_total += refused
        report.sent += sent_total
        report.failed += refused_total
        return sent_total, refused_total


@contextmanager
def _outcome_transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """The transaction that records a batch the provider took, committed without waiting for the disk
    (PostgreSQL: `synchronous_commit` off; SQLite: `synchronous` NORMAL for it alone). The claim before
    the request is still flushed: losing it could send a batch twice. Losing this record (only the
    server's or the machine's crash can, not ours) leaves the batch `submitting`, of unknown fate, as a
    crash during its request would: settled by the provider's events, never re-sent by itself."""
    with sessions() as session:
        connection = session.connection()
        level = None
        if connection.dialect.name == "postgresql":
            session.execute(text("SET LOCAL synchronous_commit TO OFF"))
        elif connection.dialect.name == "sqlite":
            # Taken only outside a transaction: before the first write (the driver's BEGIN comes with
            # it), and put back before the connection returns to the pool.
            level = int(connection.exec_driver_sql("PRAGMA synchronous").scalar() or 2)
            connection.exec_driver_sql("PRAGMA synchronous=NORMAL")
        try:
            yield session
            session.commit()
        finally:
            if level is not None:
                session.rollback()  # nothing after a commit; what failed, otherwise
                try:
                    session.connection().exec_driver_sql(f"PRAGMA synchronous={level}")
                except Exception:
                    log.exception("cannot put PRAGMA synchronous back: the connection is dropped")
                    with contextlib.suppress(Exception):
                        session.connection().invalidate()  # never hand a relaxed connection to a claim


def _record_success(
    sessions: sessionmaker[Session],
    outgoing: OutgoingIssue,
    batch_id: int,
    remaining: list[Recipient],
    result: BatchResult,
    accepted_at: datetime,
) -> tuple[int, int]:
    """The provider took the batch: it is submitted, each of `remaining` sent or refused (those it named
    in neither are refused). Returns (sent, refused)."""
    # A batch handed over ahead is recorded sent at the time the provider is to deliver it.
    delivered_at = outgoing.send_at or accepted_at
    refused = dict(result.refused)
    for r in remaining:
        if r.delivery_id not in result.sent and r.delivery_id not in refused:
            refused[r.delivery_id] = "the provider did not accept this recipient"
    with _outcome_transaction(sessions) as session:
        if not move_batch(session, batch_id, ("submitting",), "submitted", submitted_at=accepted_at, error=None):
            log.warning("batch %s was moved by someone else while it was being sent", batch_id)
        # The claim left pending exactly its recipients; what earlier attempts settled left `remaining`.
        everyone = not refused and result.sent.keys() == {r.delivery_id for r in remaining}
        _record_sent(session, batch_id, result.sent, delivered_at, all_pending=everyone)
        _record_refused(session, refused)
    if refused:
        log.warning("batch %s: %d recipient(s) not sent; the reasons are in deliveries.error", batch_id, len(refused))
    return len(result.sent), len(refused)


def _record_accepted(
    sessions: sessionmaker[Session],
    accepted: _Accepted,
    report: SendReport,
    in_flight: InFlight,
    on_batch: Callable[[Progress], None] | None,
    now: Callable[[], datetime],
) -> None:
    """The outcome of a batch taken at the first attempt, recorded while the next request is made."""
    claim = accepted.claim
    try:
        sent, refused = _record_success(
            sessions, accepted.outgoing, claim.batch_id, claim.recipients, accepted.result, now()
        )
    finally:
        in_flight.release(claim.batch_id)
    report.sent += sent
    report.failed += refused
    if on_batch:
        on_batch(Progress(claim.number, sent, refused + len(claim.unbuilt), len(claim.left)))


def _unwind(
    sessions: sessionmaker[Session], request: _Request | None, accepted: _Accepted | None, in_flight: InFlight
) -> None:
    """After an error stopped the send: a batch claimed whose request never went goes back to pending; a
    request the provider took is recorded if the store lets us; anything else is left of unknown fate."""
    if accepted is not None:
        try:
            _record_accepted(sessions, accepted, SendReport(), in_flight, None, utcnow)
        except Exception:
            log.exception("batch %s was sent, but its outcome could not be recorded", accepted.claim.number)
    if request is None:
        return
    claim = request.claim
    try:
        failure = request.failure()
        if isinstance(failure, _NotSent):
            with sessions.begin() as session:
                move_batch(session, claim.batch_id, ("submitting",), "pending")
        elif failure is None:
            done = _record_success(
                sessions, request.outgoing, claim.batch_id, claim.recipients, request.result(), utcnow()
            )
            log.info("batch %s: sent %d, refused %d, recorded after the send stopped", claim.number, *done)
    except Exception:
        log.exception("batch %s: its state could not be put right after the send stopped", claim.number)
    finally:
        in_flight.release(claim.batch_id)


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


def unknown_batches(session: Session, issue_id: int, in_flight: InFlight | None = None) -> list[UnknownBatch]:
    """The issue's batches of unknown fate, for `digest send` and the preview. With `in_flight` (from
    `send_lock`), a batch another live sender has in flight now is left out: it is not unknown."""
    rows = session.execute(
        select(Batch.id, Batch.number, Batch.updated_at, Batch.error)
        .where(Batch.issue_id == issue_id, Batch.status == "submitting")
        .order_by(Batch.number)
    ).all()
    return [
        UnknownBatch(number, _pending_in(session, id_), since, error)
        for id_, number, since, error in rows
        if in_flight is None or not in_flight.elsewhere(id_)
    ]


def merge_reports(reports: Sequence[SendReport]) -> SendReport:
    """One report of several senders of one issue (`digest send --workers N`): their work added up;
    what they found left (failed earlier, waiting, missed) is the same store seen by each, so the
    largest count; a batch of unknown fate is counted once."""
    merged = SendReport()
    unknown: dict[int, UnknownBatch] = {}
    for r in reports:
        merged.batches += r.batches
        merged.sent += r.sent
        merged.failed += r.failed
        merged.skipped += r.skipped
        merged.new_unknown += r.new_unknown
        merged.new_unknown_recipients += r.new_unknown_recipients
        merged.failed_batches += r.failed_batches
        for u in r.unknown:
            unknown.setdefault(u.number, u)
        merged.left_failed = max(merged.left_failed, r.left_failed)
        merged.not_planned = max(merged.not_planned, r.not_planned)
        merged.waiting = max(merged.waiting, r.waiting)
        merged.waiting_recipients = max(merged.waiting_recipients, r.waiting_recipients)
        merged.stale = max(merged.stale, r.stale)
        if r.next_wave is not None:
            merged.next_wave = min(r.next_wave, merged.next_wave or r.next_wave)
        merged.paused = merged.paused or r.paused
        merged.stopped = merged.stopped or r.stopped
        merged.seconds = max(merged.seconds, r.seconds)
    merged.already_submitted = min((r.already_submitted for r in reports), default=0)
    merged.failed_batches.sort()
    merged.unknown = sorted(unknown.values(), key=lambda u: u.number)
    merged.unknown_batches = [u.number for u in merged.unknown]
    return merged
