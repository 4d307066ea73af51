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

A batch keeps the people it has not settled as its frozen members (`batches.members`, from the plan), and
each person gets one `deliveries` row once settled, with the final status: at the claim for whoever left
since the plan (skipped) or whose message cannot be made (failed), and for the rest with the outcome of
the request, in the statement that records it (sent, or refused). A batch's rows and its members never
name the same person, so an issue's figures add the rows to the members of its open batches. The claim
writes nothing per recipient when nobody left, and the outcome one INSERT for a thousand: a send does
not write every row twice (pending, then sent), as it did before migration 0020.

Recipients are loaded one batch at a time; someone who unsubscribed, bounced, complained or was
suppressed since the plan was made is marked skipped instead of mailed.

One recipient never stops the send: whoever's message cannot be made (their values, their address, a
name the message cannot carry) or is refused alone by the provider is marked failed with the reason in
`deliveries.error`, and the rest of the batch goes and is recorded as sent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Select,
    String,
    Table,
    Text,
    Update,
    and_,
    bindparam,
    column,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeEngine

from digest.config import DeliveryConfig
from digest.delivery.audience import Audience
from digest.delivery.interpreter import bulk_work
from digest.delivery.lock import InFlight
from digest.delivery.posting import NotSent, Request, make_request, start_poster
from digest.delivery.providers.base import BatchResult, Provider
from digest.delivery.retry import RetryPolicy
from digest.email.message import OutgoingIssue
from digest.errors import DeliveryError, FailureKind, ProviderError
from digest.store.db import TextSelect, rowcount
from digest.store.models import Batch, Delivery, Issue, UTCDateTime, utcnow

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
    request_process_batches: int = 0  # from this many batches to send, the requests are made in a process

    @classmethod
    def from_config(cls, delivery: DeliveryConfig, *, resume: bool = False, retry_unknown: bool = False) -> SendOptions:
        """The newsletter file's `[delivery]` values (their defaults live there, and only there)."""
        return cls(
            delivery.max_failed_batches,
            RetryPolicy.from_config(delivery),
            resume,
            retry_unknown,
            delivery.request_process_batches,
        )


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
    return rowcount(session.execute(_moving(batch_id, from_statuses, to_status, **values))) == 1


def _move_on(
    connection: Connection, batch_id: int, from_statuses: tuple[str, ...], to_status: str, **values: object
) -> bool:
    """`move_batch` as a Core statement on the connection, for the send's own transactions, where no
    ORM object is loaded: the ORM's layer costs as much Python as the rest of a claim."""
    return rowcount(connection.execute(_moving(batch_id, from_statuses, to_status, **values))) == 1


def _moving(batch_id: int, from_statuses: tuple[str, ...], to_status: str, **values: object) -> Update:
    return (
        update(Batch)
        .where(Batch.id == batch_id, Batch.status.in_(from_statuses))
        .values(status=to_status, updated_at=utcnow(), **values)
    )


def pending_count(sessions: sessionmaker[Session], issue_id: int, statuses: tuple[str, ...]) -> int:
    """Recipients still to mail in batches of these statuses (the progress bar's total)."""
    with sessions() as session:
        frozen = session.scalar(
            select(func.sum(Batch.recipients)).where(
                Batch.issue_id == issue_id, Batch.status.in_(statuses), Batch.members.is_not(None)
            )
        )
        return int(frozen or 0)


def _members(dialect: str, array: str = "b.members") -> tuple[str, str]:
    """SQL over a JSON array of person ids (a batch `b`'s frozen members, or a parameter): (a FROM item with
    one row `j` per person, the person id)."""
    if dialect == "postgresql":
        return f"json_array_elements_text(CAST({array} AS json)) AS j(value)", "CAST(j.value AS integer)"
    return f"json_each({array}) j", "CAST(j.value AS INTEGER)"


def _people_of(session: Session, batch_id: int) -> TextSelect:
    """The batch's members, the people it has not settled yet: columns `id` and the batch's `issue_id`."""
    source, person = _members(session.connection().dialect.name)
    return TextSelect(
        f"SELECT {person} AS id, b.issue_id AS issue_id FROM batches b CROSS JOIN {source} "  # noqa: S608
        "WHERE b.id = :members_of AND b.members IS NOT NULL",
        {"members_of": batch_id},
    )


def _listed(session: Session, issue_id: int, people: Sequence[int]) -> TextSelect:
    """These people of the issue, their ids sent as one JSON array: columns `id` and `issue_id`."""
    return _listed_in(session.connection().dialect.name, issue_id, people)


def _listed_in(dialect: str, issue_id: int, people: Sequence[int]) -> TextSelect:
    source, person = _members(dialect, ":listed")
    return TextSelect(
        f"SELECT {person} AS id, CAST(:listed_issue AS INTEGER) AS issue_id FROM {source}",  # noqa: S608
        {"listed": json.dumps(list(people)), "listed_issue": issue_id},
    )


def _one_person(batch_id: int) -> TextSelect:
    """One person of the batch, named by the parameter `person` (rows written one by one, `executemany`)."""
    return TextSelect(
        "SELECT CAST(:person AS INTEGER) AS id, b.issue_id AS issue_id FROM batches b WHERE b.id = :members_of",
        {"members_of": batch_id},
    )


def load_people(session: Session, audience: Audience, batch_id: int) -> tuple[list[Any], list[int]]:
    """The batch's members still to mail (the audience's people, `Audience.batch_people`), and the ids of
    those who left since the plan."""
    # Plain SQL for the audience to join to its own tables: no ORM rows, no list of ids.
    return audience.batch_people(session, _people_of(session, batch_id))


def _write_deliveries(
    session: Session,
    audience: Audience,
    batch_id: int,
    people: TextSelect,
    *,
    rows: Sequence[Mapping[str, Any]] | None = None,
    values: Mapping[str, Any] | None = None,
) -> None:
    """Write a deliveries row, with its final status, for each person `people` names (`_people_of`, or
    `_one_person` once per item of `rows`) who is still in the store. `values` or each item of `rows`
    gives `status`, and as it applies `message_id`, `sent_at` and `error`. A person who has a row for the
    issue already keeps it: at most one row a reader, and writing an outcome twice changes nothing."""
    present = audience.present(people)
    found = text(present.sql).columns(column("id", Integer), column("issue_id", Integer)).subquery("r")
    fields: dict[str, TypeEngine[Any]] = {
        "status": String(),
        "message_id": String(),
        "sent_at": UTCDateTime(),
        "error": Text(),
    }
    chosen = [
        (bindparam(name, type_=kind) if values is None else literal(values[name], kind)).label(name)
        for name, kind in fields.items()
        if values is None or name in values
    ]
    source = select(found.c.issue_id, literal(batch_id).label("batch_id"), found.c.id, *chosen).order_by(found.c.id)
    insert = postgresql.insert if session.connection().dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(cast(Table, Delivery.__table__))
        .from_select(["issue_id", "batch_id", "subscriber_id", *(c.name for c in chosen)], source)
        .on_conflict_do_nothing(index_elements=["issue_id", "subscriber_id"])
    )
    params = dict(present.params)
    # On the connection: the session would take a list of rows for an ORM bulk insert of objects.
    if values is not None:
        session.connection().execute(statement, params)
    elif rows:
        session.connection().execute(statement, [{**params, **row} for row in rows])


def _settle_some(
    session: Session,
    audience: Audience,
    batch_id: int,
    settled: Sequence[Mapping[str, Any]],
    still: Sequence[int],
) -> None:
    """Some of a batch's members are settled while the batch stays open (those who left or whose message
    could not be made, at the claim; those the provider took or refused before a failure): their rows are
    written and the batch's members become `still`, so that a batch's rows and its members never name
    the same person, and `recipients` counts the members."""
    if not settled:
        return
    _write_deliveries(session, audience, batch_id, _one_person(batch_id), rows=settled)
    session.execute(
        update(Batch)
        .where(Batch.id == batch_id, Batch.members.is_not(None))
        .values(members=json.dumps(list(still)), recipients=len(still))
    )


def _outcomes(
    at: datetime,
    *,
    sent: Mapping[int, str | None] | None = None,
    refused: Mapping[int, str] | None = None,
    skipped: Sequence[int] = (),
) -> list[dict[str, Any]]:
    """`rows` for `_write_deliveries`: each person sent (with the message id), refused (with the reason),
    or skipped (left since the plan)."""
    rows = [
        {"person": p, "status": "sent", "message_id": m, "sent_at": at, "error": None} for p, m in (sent or {}).items()
    ]
    rows += [
        {"person": p, "status": "failed", "message_id": None, "sent_at": None, "error": reason[:1000]}
        for p, reason in (refused or {}).items()
    ]
    rows += [{"person": p, "status": "skipped", "message_id": None, "sent_at": None, "error": None} for p in skipped]
    return rows


@bulk_work()
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

    # The pipeline (see `_Request`): the poster (a process of its own for a large send, else a thread)
    # makes and posts the requests, one at a time; this thread records the last batch's outcome while
    # the next request is made, and on PostgreSQL claims the batch after it while the request is in
    # flight (`_ClaimAhead`).
    claims_ahead = _dialect(sessions) == "postgresql"
    own_process = options.request_process_batches > 0 and (
        _open_batch_count(sessions, outgoing.issue_id, claimable) >= options.request_process_batches
    )
    poster = start_poster(provider, audience.recipients_of, renderings, own_process=own_process)
    writer = _RowsWriter(sessions, audience, own_thread=claims_ahead)
    request: _Request | None = None
    ahead: _ClaimAhead | _PeekAhead | None = None
    accepted: _Accepted | None = None  # sent, its outcome not yet recorded
    unwritten: _SentRows | None = None  # recorded, its rows not yet written
    _write_missing_rows(sessions, audience, outgoing.issue_id)

    def submit(claimed: _Claimed | None) -> _Request | None:
        """The claimed batch's request, made on the poster now (sent on `go`)."""
        if claimed is None:
            return None
        rendering = renderings[claimed.segment]
        if claimed.send_at is not None and claimed.send_at > now():  # handed over ahead: the provider holds it
            rendering = dataclasses.replace(rendering, send_at=claimed.send_at, schedule_id=schedule_id)
        made = poster.submit(claimed.segment, rendering, claimed.batch_id, claimed.people)
        return _Request(claimed, rendering, made)

    try:
        claim = claim_next()
        request = submit(claim)
        while claim is not None and request is not None:
            tried.append(claim.batch_id)
            rendering = request.outgoing
            report.batches += 1
            report.skipped += len(claim.left)
            if accepted is not None and accepted.recorded is None:
                # Recorded before the next request goes: a crash leaves one batch of unknown fate, not two.
                accepted.record(sessions, audience, now())
            request.go()
            if accepted is not None:  # counted once the next request went
                unwritten = _accepted_now(sessions, audience, accepted, report, in_flight, on_batch, now)
                accepted = None
            if claims_ahead and not stop.is_set():
                ahead = _ClaimAhead(sessions, in_flight)
                ahead.claimed = claim_next(ahead.begin)
                if ahead.claimed is None:
                    ahead.rollback()
                    ahead = None
                else:  # its request is made while this one is on its way
                    ahead.request = submit(ahead.claimed)
            elif not stop.is_set():
                peek = _PeekAhead(sessions, audience, in_flight)
                peek.claimed = peek.read(
                    outgoing.issue_id, claimable, exclude, _due(now(), provider.schedules_ahead, stale_after)
                )
                if peek.claimed is not None:
                    peek.request = submit(peek.claimed)
                    ahead = peek
            if unwritten is not None:  # its rows, while this request is on its way
                writer.write(unwritten)
                unwritten = None
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
                taken = None
                if ahead is not None:
                    # The batch just accepted is recorded in the transaction that claims the next one: one
                    # commit between an answer and the next request, not two.
                    done = accepted
                    try:
                        taken = ahead.commit(functools.partial(done.record, sessions, audience, now()))
                    except BaseException:
                        done.recorded = None  # rolled back with the claim: `_unwind` records it
                        raise
                if ahead is not None and taken is not None and ahead.request is not None:
                    claim, request = taken, ahead.request
                else:  # none ahead, or the one peeked at moved meanwhile
                    claim = claim_next()
                    request = submit(claim)
                ahead = None
                continue
            if ahead is not None:  # the batch in hand goes on alone (retries, backoff): the one ahead waits
                ahead.rollback()
                ahead = None
            first, request = request, None
            try:
                outcome = _send_one_batch(
                    sessions, audience, provider, rendering, claim.batch_id, claim.people, options, stop, wait,
                    report, now, first=first.result,
                )  # fmt: skip
            finally:
                in_flight.release(claim.batch_id)
            if on_batch:
                on_batch(Progress(claim.number, outcome[0], outcome[1], len(claim.left)))
            # A provider that stops answering leaves one unknown batch after another: pause as for failures.
            if len(report.failed_batches) + report.new_unknown > options.max_failed_batches:
                report.paused = True
                break
            claim = claim_next()
            request = submit(claim)
        if accepted is not None:
            unwritten = _accepted_now(sessions, audience, accepted, report, in_flight, on_batch, now)
            accepted = None
    finally:
        if request is not None:
            request.cancel()  # not sent yet: it never will be
        poster.close()
        if unwritten is not None:
            writer.write(unwritten)
        writer.close()
        if ahead is not None:
            ahead.rollback()
        _unwind(sessions, audience, request, accepted, in_flight)
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


# A claim's `attempts` (built once: an SQL expression costs a claim as much as a small query).
_ONE_MORE_ATTEMPT = Batch.attempts + 1

# How long a batch claimed ahead may wait for the answer to the request before it (`_ClaimAhead`).
_HOLD_AHEAD_SECONDS = 1.0


def _open_batch_count(sessions: sessionmaker[Session], issue_id: int, statuses: tuple[str, ...]) -> int:
    with sessions() as session:
        found = session.scalar(
            select(func.count()).select_from(Batch).where(Batch.issue_id == issue_id, Batch.status.in_(statuses))
        )
    return int(found or 0)


def _dialect(sessions: sessionmaker[Session]) -> str:
    bind = sessions.kw.get("bind")
    return str(bind.dialect.name) if bind is not None else ""


@dataclass
class _Request:
    """One batch's request (`digest.delivery.posting`): made at once, on the poster, while this thread records
    the previous batch's outcome, and sent on `go` once that outcome is committed: whatever happens, at most
    the batch in flight is of unknown fate."""

    claim: _Claimed
    outgoing: OutgoingIssue
    handle: Request

    def go(self) -> None:
        self.handle.go()

    def cancel(self) -> None:
        self.handle.cancel()

    def answered(self, timeout: float) -> bool:
        return self.handle.answered(timeout)

    def failure(self) -> BaseException | None:
        return self.handle.failure()

    def result(self) -> BatchResult:
        return self.handle.result()


class _PeekAhead:
    """SQLite's claim ahead. Its one writer cannot be held for the length of a request (`_ClaimAhead`), so
    the next batch is only read (its people, who left) while the request before is in flight, and its
    request made; once that request is answered, the claim (the compare-and-set, the leavers' rows)
    takes a moment (`commit`). If the batch moved meanwhile, its request is cancelled, never sent, and
    the sender claims afresh. As on PostgreSQL, its recipients are checked up to one request earlier."""

    def __init__(self, sessions: sessionmaker[Session], audience: Audience, in_flight: InFlight) -> None:
        self._sessions = sessions
        self._audience = audience
        self._in_flight = in_flight
        self._status = "pending"
        self.claimed: _Claimed | None = None
        self.request: _Request | None = None  # its request, made, not sent

    def read(self, issue_id: int, statuses: tuple[str, ...], tried: list[int], due: _Due) -> _Claimed | None:
        with self._sessions() as session:
            row = session.execute(_first_open(issue_id, statuses, tried, due)).first()
            if row is None:
                return None
            batch_id, number, self._status, segment, send_at = row
            people, left = load_people(session, self._audience, batch_id)
        return _Claimed(batch_id, number, segment, send_at, people, left)

    def commit(self, record: Callable[[Session], object]) -> _Claimed | None:
        """Claim the batch read ahead, and `record` (the outcome of the batch before) in the same
        transaction, whether the claim holds or not."""
        claimed = self.claimed
        if claimed is None:
            with self._sessions.begin() as session:
                record(session)
            return None
        with self._sessions.begin() as session:
            record(session)
            taken = _take(session.connection(), self._in_flight, claimed.batch_id, self._status)
            if taken and claimed.left:
                settled = _outcomes(utcnow(), skipped=claimed.left)
                _settle_some(session, self._audience, claimed.batch_id, settled, [p.id for p in claimed.people])
        if not taken:
            self.rollback()
            return None
        return claimed

    def rollback(self) -> None:
        if self.request is not None:
            self.request.cancel()  # never sent
            self.request = None
        self.claimed = None


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
        self.request: _Request | None = None  # its request, made, not sent

    @contextmanager
    def begin(self) -> Iterator[Session]:
        self._session.begin()
        try:
            yield self._session
        except BaseException:
            self._session.rollback()
            self._session.close()
            raise

    def commit(self, record: Callable[[Session], object]) -> _Claimed | None:
        """Commit the claim, with `record` (the outcome of the batch before) in the same transaction."""
        try:
            record(self._session)
            self._session.commit()
        finally:
            self._session.close()
        return self.claimed

    def rollback(self) -> None:
        if self.request is not None:
            self.request.cancel()  # never sent
            self.request = None
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
    recorded: tuple[int, int, _SentRows | None] | None = None  # `_accept`'s (sent, refused, rows to write)

    def record(
        self, sessions: sessionmaker[Session], audience: Audience, at: datetime, within: Session | None = None
    ) -> None:
        people = [p.id for p in self.claim.people]
        self.recorded = _accept(sessions, audience, self.outgoing, self.claim.batch_id, people, self.result, at, within)


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
    people: list[Any]  # the audience's, to mail (`Audience.batch_people`)
    left: list[int]


def _open_batches(issue_id: int, statuses: tuple[str, ...], tried: list[int], due: _Due) -> Select[Any]:
    query = select(Batch.id).where(Batch.issue_id == issue_id, Batch.status.in_(statuses), due.clause())
    if tried:
        query = query.where(Batch.id.not_in(tried))
    return query


def _first_open(
    issue_id: int, statuses: tuple[str, ...], tried: list[int], due: _Due
) -> Select[int, int, str, str, datetime | None]:
    """The open batch to claim next, lowest number first: its id, number, status, segment and wave time."""
    return (
        _open_batches(issue_id, statuses, tried, due)
        .with_only_columns(Batch.id, Batch.number, Batch.status, Batch.segment, Batch.send_at)
        .order_by(Batch.number)
        .limit(1)
    )


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
    flight, and move it to `submitting` by compare-and-set, in one transaction with the recipients' check
    (whoever left or cannot be mailed is settled now, `_settle_some`). The compare-and-set stays the
    truth: a claim that loses a race moves nothing. None: nothing is left to claim now (what others are
    claiming at this instant is theirs). `begin`: the transaction to claim in, when it is not to commit
    at once (`_ClaimAhead`)."""
    passed: list[int] = []  # `submitting` batches another live sender has in flight (--retry-unknown)
    with (begin or sessions.begin)() as session:
        connection = session.connection()  # Core statements: see `_move_on`
        while True:
            # One row at a time: a claim that locked several would hide them all from the other senders.
            row = connection.execute(
                _first_open(issue_id, statuses, tried + passed, due).with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return None
            batch_id, number, status, segment, send_at = row
            if not _take(connection, in_flight, batch_id, status):
                passed.append(batch_id)
                continue
            people, left = load_people(session, audience, batch_id)
            if left:  # settled now: the members left are the people the request carries
                _settle_some(session, audience, batch_id, _outcomes(utcnow(), skipped=left), [p.id for p in people])
            return _Claimed(batch_id, number, segment, send_at, people, left)


def _take(connection: Connection, in_flight: InFlight, batch_id: int, status: str) -> bool:
    """Mark the batch ours in flight and move it from `status` to `submitting` by compare-and-set; False,
    and not ours, when another sender has it in flight or moved it first."""
    if not in_flight.hold(batch_id):
        return False
    if _move_on(connection, batch_id, (status,), "submitting", attempts=_ONE_MORE_ATTEMPT):
        return True
    in_flight.release(batch_id)
    return False


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
        for batch_id, number, status, updated_at, send_at, error, members, frozen in rows:
            open_recipients = members if frozen else 0
            if batch_id in tried:
                continue
            if status == "submitted":
                report.already_submitted += 1
            elif status == "submitting" and not in_flight.elsewhere(batch_id):
                report.unknown_batches.append(number)
                report.unknown.append(UnknownBatch(number, open_recipients, updated_at, error))
            elif status == "failed" and not options.retry_failed:
                report.left_failed += 1
            elif status == "pending" and send_at is not None and send_at > due.until:
                report.waiting_recipients += open_recipients
                report.waiting += 1
                report.next_wave = min(send_at, report.next_wave or send_at)
            elif status == "pending" and send_at is not None and due.stale_before and send_at < due.stale_before:
                report.stale += 1
    report.unknown.sort(key=lambda u: u.number)
    report.unknown_batches.sort()


def _send_one_batch(
    sessions: sessionmaker[Session],
    audience: Audience,
    provider: Provider,
    outgoing: OutgoingIssue,
    batch_id: int,
    people: list[Any],
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
    remaining = people
    sent_total = refused_total = 0
    retries = rate_waits = 0
    while True:
        try:
            if first is not None:
                attempt, first = first, None  # the next attempt, if any, is a new request
                result = attempt()
            else:
                result = make_request(audience.recipients_of, provider, outgoing, batch_id, remaining)()
        except ProviderError as exc:
            if exc.sent or exc.refused:  # what was settled before the failure is recorded now, never sent again
                remaining = [p for p in remaining if p.id not in exc.sent and p.id not in exc.refused]
                with sessions.begin() as session:
                    settled = _outcomes(now(), sent=exc.sent, refused=exc.refused)
                    _settle_some(session, audience, batch_id, settled, [p.id for p in remaining])
                sent_total += len(exc.sent)
                refused_total += len(exc.refused)
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
        ids = [p.id for p in remaining]
        sent, refused = _record_success(sessions, audience, outgoing, batch_id, ids, result, now())
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


@dataclass(frozen=True)
class _SentRows:
    """The rows of a batch accepted whole that are still to write (`_accept`'s second half)."""

    batch_id: int
    issue_id: int
    people: list[int]
    message_id: str | None
    sent_at: datetime

    def write(self, sessions: sessionmaker[Session], audience: Audience) -> None:
        """The batch's members become its rows (sent), unless it was moved on meanwhile (a cancel)."""
        with _outcome_transaction(sessions) as session:
            # Locks the batch first, as every writer of its rows does.
            cleared = session.execute(
                update(Batch)
                .where(Batch.id == self.batch_id, Batch.status == "submitted", Batch.members.is_not(None))
                .values(members=None)
            )
            if rowcount(cleared) == 1:
                values = {"status": "sent", "message_id": self.message_id, "sent_at": self.sent_at}
                people = _listed(session, self.issue_id, self.people)
                _write_deliveries(session, audience, self.batch_id, people, values=values)

    def write_at_once(self, connection: Connection, audience: Audience) -> None:
        """`write` as one statement, committed as it runs (PostgreSQL, `_RowsWriter`'s connection: in
        autocommit, `synchronous_commit` off). The batch is cleared first (its row locked) in a CTE, and the
        rows are written only if it was."""
        present = audience.present(_listed_in("postgresql", self.issue_id, self.people))
        statement = text(
            "WITH cleared AS (UPDATE batches SET members = NULL WHERE id = :rows_batch "  # noqa: S608
            "AND status = 'submitted' AND members IS NOT NULL RETURNING id) "
            "INSERT INTO deliveries (issue_id, batch_id, subscriber_id, status, message_id, sent_at) "
            f"SELECT r.issue_id, :rows_batch, r.id, 'sent', :rows_message, :rows_at FROM ({present.sql}) r "
            "WHERE EXISTS (SELECT 1 FROM cleared) ORDER BY r.id "
            "ON CONFLICT (issue_id, subscriber_id) DO NOTHING"
        ).bindparams(bindparam("rows_at", type_=UTCDateTime()))
        params = {**present.params, "rows_batch": self.batch_id, "rows_message": self.message_id}
        connection.execute(statement, {**params, "rows_at": self.sent_at})


def _accept(
    sessions: sessionmaker[Session],
    audience: Audience,
    outgoing: OutgoingIssue,
    batch_id: int,
    remaining: list[int],
    result: BatchResult,
    accepted_at: datetime,
    within: Session | None = None,
) -> tuple[int, int, _SentRows | None]:
    """The provider took the batch: it is submitted, each of `remaining` (person ids) sent or refused
    (those it named in neither are refused). Returns (sent, refused, the rows still to write). Recorded
    in a transaction of its own (`_outcome_transaction`), or in `within`, left for its owner to commit.

    A batch sent to everyone with one message id (SendGrid's) is recorded in two steps: now only its
    move to `submitted`, then, once the next request is on its way, its members as rows (`_SentRows`).
    So the next request waits for one small statement, not for a thousand rows. Until they are written
    (or if the sender dies first), a submitted batch's members count as sent, and the next send of the
    issue writes them (`_write_missing_rows`). Any other outcome is written whole at once."""
    # A batch handed over ahead is recorded sent at the time the provider is to deliver it.
    delivered_at = outgoing.send_at or accepted_at
    refused = dict(result.refused)
    for person in remaining:
        if person not in result.sent and person not in refused:
            refused[person] = "the provider did not accept this recipient"
    message_ids = set(result.sent.values())
    whole = not refused and len(message_ids) == 1
    with _outcome_transaction(sessions) if within is None else contextlib.nullcontext(within) as session:
        # The compare-and-set first: it locks the batch, so that a settle by its events cannot write the
        # same rows at the same time.
        done = {"submitted_at": accepted_at, "error": None, **({} if whole else {"members": None})}
        if not _move_on(session.connection(), batch_id, ("submitting",), "submitted", **done):
            log.warning("batch %s was settled by someone else while it was being sent", batch_id)
            return len(result.sent), len(refused), None
        if not whole:
            rows = _outcomes(delivered_at, sent=result.sent, refused=refused)
            _write_deliveries(session, audience, batch_id, _one_person(batch_id), rows=rows)
    if refused:
        log.warning("batch %s: %d recipient(s) not sent; the reasons are in deliveries.error", batch_id, len(refused))
    if not whole:
        return len(result.sent), len(refused), None
    rows_left = _SentRows(batch_id, outgoing.issue_id, list(result.sent), message_ids.pop(), delivered_at)
    return len(result.sent), 0, rows_left


def _record_success(
    sessions: sessionmaker[Session],
    audience: Audience,
    outgoing: OutgoingIssue,
    batch_id: int,
    remaining: list[int],
    result: BatchResult,
    accepted_at: datetime,
) -> tuple[int, int]:
    """`_accept` and its rows written at once. Returns (sent, refused)."""
    sent, refused, rows = _accept(sessions, audience, outgoing, batch_id, remaining, result, accepted_at)
    if rows is not None:
        rows.write(sessions, audience)
    return sent, refused


class _RowsWriter:
    """Writes the rows of the batches accepted whole (`_SentRows`): on PostgreSQL on a thread of its own,
    with a connection of its own, one statement a batch (`_SentRows.write_at_once`), while this thread
    claims the next batch; on SQLite (one writer) at once. A failure is logged and left to the next send
    (`_write_missing_rows`); meanwhile the batch's members count as sent."""

    def __init__(self, sessions: sessionmaker[Session], audience: Audience, *, own_thread: bool):
        self._sessions = sessions
        self._audience = audience
        self._queue: queue.SimpleQueue[_SentRows | None] | None = None
        self._thread: threading.Thread | None = None
        if own_thread:
            self._queue = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._run, name="digest-send-rows", daemon=True)
            self._thread.start()

    def write(self, rows: _SentRows) -> None:
        if self._queue is None:
            self._write(rows)
        else:
            self._queue.put(rows)

    def close(self) -> None:
        """Waits for the rows given so far."""
        if self._queue is not None and self._thread is not None:
            self._queue.put(None)
            self._thread.join()

    def _run(self) -> None:
        if self._queue is None:
            return
        connection: Connection | None = None
        try:
            while (rows := self._queue.get()) is not None:
                try:
                    if connection is None:
                        connection = self._connect()
                    rows.write_at_once(connection, self._audience)
                except Exception:  # counted as sent meanwhile; the next send writes them
                    log.exception("batch %s: the rows of its recipients could not be written", rows.batch_id)
                    if connection is not None:
                        with contextlib.suppress(Exception):
                            connection.invalidate()  # a new one for the next batch
                            connection.close()
                        connection = None
        finally:
            if connection is not None:
                self._disconnect(connection)

    def _connect(self) -> Connection:
        """Autocommit, with the commit not waiting for the disk (as `_outcome_transaction`, for the whole
        session): only the server's crash can lose a row, and the batch's members then stay to be
        written by the next send."""
        bind = self._sessions.kw["bind"]
        connection: Connection = bind.connect().execution_options(isolation_level="AUTOCOMMIT")
        connection.exec_driver_sql("SET synchronous_commit TO OFF")
        return connection

    @staticmethod
    def _disconnect(connection: Connection) -> None:
        try:
            connection.exec_driver_sql("RESET synchronous_commit")
        except Exception:
            log.exception("cannot put synchronous_commit back: the connection is dropped")
            with contextlib.suppress(Exception):
                connection.invalidate()  # never hand a relaxed connection to a claim
        connection.close()

    def _write(self, rows: _SentRows) -> None:
        try:
            rows.write(self._sessions, self._audience)
        except Exception:  # counted as sent meanwhile; the next send writes them
            log.exception("batch %s: the rows of its recipients could not be written", rows.batch_id)


def _write_missing_rows(sessions: sessionmaker[Session], audience: Audience, issue_id: int) -> None:
    """Batches accepted whole whose rows a sender that died did not write (`_accept`): written now, sent
    (without the message id, which was in that sender's memory only)."""
    with sessions() as session:
        found = session.scalars(
            select(Batch.id).where(Batch.issue_id == issue_id, Batch.status == "submitted", Batch.members.is_not(None))
        ).all()
    for batch_id in found:
        with sessions.begin() as session:
            submitted_at = session.scalar(select(Batch.submitted_at).where(Batch.id == batch_id))
            values = {"status": "sent", "message_id": None, "sent_at": submitted_at or utcnow()}
            _write_deliveries(session, audience, batch_id, _people_of(session, batch_id), values=values)
            session.execute(update(Batch).where(Batch.id == batch_id).values(members=None))
        log.info("batch %s: the rows of its recipients, sent by an earlier run, are written now", batch_id)


def _accepted_now(
    sessions: sessionmaker[Session],
    audience: Audience,
    accepted: _Accepted,
    report: SendReport,
    in_flight: InFlight,
    on_batch: Callable[[Progress], None] | None,
    now: Callable[[], datetime],
) -> _SentRows | None:
    """The outcome of a batch taken at the first attempt, recorded before the next request goes (unless
    it was, in the transaction of the next batch's claim), and counted; returns the rows to write once
    that request has gone."""
    claim = accepted.claim
    try:
        if accepted.recorded is None:
            accepted.record(sessions, audience, now())
    finally:
        in_flight.release(claim.batch_id)
    sent, refused, rows = cast(tuple[int, int, _SentRows | None], accepted.recorded)
    report.sent += sent
    report.failed += refused
    if on_batch:
        on_batch(Progress(claim.number, sent, refused, len(claim.left)))
    return rows


def _unwind(
    sessions: sessionmaker[Session],
    audience: Audience,
    request: _Request | None,
    accepted: _Accepted | None,
    in_flight: InFlight,
) -> None:
    """After an error stopped the send: a batch claimed whose request never went goes back to pending; a
    request the provider took is recorded if the store lets us; anything else is left of unknown fate."""
    if accepted is not None:
        try:
            rows = _accepted_now(sessions, audience, accepted, SendReport(), in_flight, None, utcnow)
            if rows is not None:
                rows.write(sessions, audience)
        except Exception:
            log.exception("batch %s was sent, but its outcome could not be recorded", accepted.claim.number)
    if request is None:
        return
    claim = request.claim
    try:
        failure = request.failure()
        if isinstance(failure, NotSent):
            with sessions.begin() as session:
                move_batch(session, claim.batch_id, ("submitting",), "pending")
        elif failure is None:
            done = _record_success(
                sessions,
                audience,
                request.outgoing,
                claim.batch_id,
                [p.id for p in claim.people],
                request.result(),
                utcnow(),
            )
            log.info("batch %s: sent %d, refused %d, recorded after the send stopped", claim.number, *done)
    except Exception:
        log.exception("batch %s: its state could not be put right after the send stopped", claim.number)
    finally:
        in_flight.release(claim.batch_id)


def _pending_in(session: Session, batch_id: int) -> int:
    """The batch's members not settled yet (those of a batch sent are all settled)."""
    frozen = session.scalar(select(Batch.recipients).where(Batch.id == batch_id, Batch.members.is_not(None)))
    return int(frozen or 0)


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


def settle_batch(
    session: Session, audience: Audience, batch_id: int, now: datetime, *, message_id: str | None = None
) -> bool:
    """A batch of unknown fate (`submitting`) was accepted: its members are recorded sent and it is
    submitted. False when it is not in `submitting` (already settled, or never sent)."""
    # The compare-and-set first: it locks the batch against the sender recording the same batch.
    if not move_batch(session, batch_id, ("submitting",), "submitted", submitted_at=now, error=None):
        return False
    written = {"status": "sent", "message_id": message_id, "sent_at": now}
    _write_deliveries(session, audience, batch_id, _people_of(session, batch_id), values=written)
    session.execute(update(Batch).where(Batch.id == batch_id).values(members=None))
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


def settle_from_events(
    session: Session, audience: Audience, claims: Mapping[int, Claim], *, now: datetime
) -> list[tuple[int, int]]:
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
        if claim.issue_id == issue_id and settle_batch(session, audience, batch_id, now, message_id=claim.message_id):
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
