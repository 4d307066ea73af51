"""`digest send` and the weekly job's send step: lock, plan once, send; also the dry run and the
test send. Thin glue between the core (settings, store, provider) and the sender."""

from __future__ import annotations

import dataclasses
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select

from digest.core import Digest
from digest.delivery.lock import send_lock
from digest.delivery.plan import count_segments, plan_issue, recipients_query
from digest.delivery.retry import RetryPolicy
from digest.delivery.sender import (
    Progress,
    SendOptions,
    SendReport,
    _RecipientRow,
    load_recipients,
    send_issue,
    settle_batch,
)
from digest.email.message import OutgoingIssue, Recipient
from digest.email.segments import issue_sections, leaves_nothing, render_missing, render_segment, segment_key
from digest.errors import DeliveryError, ProviderError, UsageError
from digest.store.models import Batch, Delivery, Issue, IssueRendering
from subscribers.models import Subscriber
from subscribers.store import InvalidAddress, normalize_email


def outgoing(core: Digest, issue: Issue, *, subject_prefix: str = "") -> OutgoingIssue:
    if issue.html is None or issue.text is None:
        raise DeliveryError(f"issue {issue.slug} is not rendered; run `digest build --week {issue.period}` first")
    return OutgoingIssue(
        issue_id=issue.id,
        slug=issue.slug,
        subject=subject_prefix + issue.subject,
        html=issue.html,
        text=issue.text,
        from_email=core.config.from_email,
        from_name=core.config.from_name or core.config.name,
        reply_to=core.config.reply_to,
        unsubscribe_mailto=core.config.delivery.unsubscribe_mailto,
    )


def segment_outgoings(core: Digest, issue: Issue, *, subject_prefix: str = "") -> dict[str, OutgoingIssue]:
    """The issue's stored renderings for the subscribers who left sections out, by segment key."""
    full = outgoing(core, issue, subject_prefix=subject_prefix)
    with core.sessions() as session:
        rows = session.scalars(
            select(IssueRendering).where(IssueRendering.issue_id == issue.id, IssueRendering.html.is_not(None))
        ).all()
    return {
        r.segment: dataclasses.replace(
            full, subject=subject_prefix + (r.subject or issue.subject), html=r.html, text=r.text
        )
        for r in rows
    }


def batch_size(core: Digest) -> int:
    return min(core.config.delivery.batch_size, core.provider.max_batch_size)


def send_options(core: Digest, *, resume: bool = False, retry_unknown: bool = False) -> SendOptions:
    d = core.config.delivery
    return SendOptions(
        retry_failed=resume,
        retry_unknown=retry_unknown,
        max_failed_batches=d.max_failed_batches,
        policy=RetryPolicy(
            retries=d.retries, backoff_seconds=d.backoff_seconds, backoff_max_seconds=d.backoff_max_seconds
        ),
    )


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


def plan_state(core: Digest, issue_id: int) -> PlanState:
    with core.sessions() as session:
        by_status = dict(
            session.execute(
                select(Batch.status, func.count()).where(Batch.issue_id == issue_id).group_by(Batch.status)
            ).all()
        )
        recipients = session.scalar(select(func.count()).select_from(Delivery).where(Delivery.issue_id == issue_id))
    return PlanState(by_status, recipients or 0)


def deliver(
    core: Digest,
    issue: Issue,
    *,
    resume: bool = False,
    retry_unknown: bool = False,
    stop: threading.Event | None = None,
    on_start: Callable[[int], None] | None = None,
    on_batch: Callable[[Progress], None] | None = None,
    sleep: Callable[[float], object] | None = None,
) -> tuple[int, SendReport]:
    """Plan once and send what is left. Returns (batches planned, report).

    Only one send of an issue runs at a time (`send_lock`); the lock is taken before planning, so
    two sends never plan or claim the same issue at once."""
    core.settings.require_secret_key()  # fail before planning, not halfway through a send
    the_outgoing = outgoing(core, issue)
    provider = core.provider
    with send_lock(core.engine, issue.id, issue.period):
        with core.sessions.begin() as session:
            fresh = session.get(Issue, issue.id)
            plan = plan_issue(session, fresh, batch_size=batch_size(core), now=core.now())
            planned = plan.batches
        # Each segment the plan holds is rendered once, before the first batch goes (and again after a
        # crash in between: only what is missing).
        render_missing(core, issue.id)
        segments = segment_outgoings(core, issue)
        if on_start:
            statuses = ("pending", "failed", "submitting") if retry_unknown else ("pending", "failed")
            from digest.delivery.sender import pending_count

            on_start(pending_count(core.sessions, issue.id, statuses if resume else ("pending",)))
        try:
            report = send_issue(
                core.sessions,
                provider,
                the_outgoing,
                core.recipient_values,
                core.unsubscribe_url,
                options=send_options(core, resume=resume, retry_unknown=retry_unknown),
                stop=stop,
                sleep=sleep,
                on_batch=on_batch,
                segments=segments,
            )
            report.not_planned = plan.left_out_everything
        finally:
            provider.close()
    return planned, report


@dataclass
class SegmentPlan:
    excluded: list[str]  # the issue's sections this segment leaves out; [] is the full issue
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


def outgoing_for_segment(core: Digest, issue: Issue, excluded: list[str], *, subject_prefix: str = "") -> OutgoingIssue:
    """The issue as this segment gets it: the stored rendering when there is one, else rendered now
    without storing it (a dry run or a test send must not change the store)."""
    full = outgoing(core, issue, subject_prefix=subject_prefix)
    if not excluded:
        return full
    stored = segment_outgoings(core, issue, subject_prefix=subject_prefix).get(segment_key(excluded))
    if stored is not None:
        return stored
    made = render_segment(core.config, issue, excluded, view_url=core.issue_url(issue.slug))
    if made is None:
        return full
    subject, _, rendered = made
    return dataclasses.replace(full, subject=subject_prefix + subject, html=rendered.html, text=rendered.text)


def _segment_names(session, issue: Issue) -> dict[str, list[str]]:
    """Segment key -> the sections it leaves out, for the issue's stored plan."""
    rows = session.execute(
        select(IssueRendering.segment, IssueRendering.excluded_sections).where(IssueRendering.issue_id == issue.id)
    )
    return {key: list(excluded) for key, excluded in rows}


def _stored_segments(session, issue: Issue) -> list[SegmentPlan]:
    names = _segment_names(session, issue)
    rows = session.execute(
        select(Batch.segment, func.count(func.distinct(Batch.id)), func.count(Delivery.id))
        .join(Delivery, Delivery.batch_id == Batch.id)
        .where(Batch.issue_id == issue.id)
        .group_by(Batch.segment)
        .order_by(func.min(Batch.number))
    ).all()
    return [SegmentPlan(list(names.get(key) or []), recipients, batches) for key, batches, recipients in rows]


def dry_run(core: Digest, issue: Issue) -> DryRun:
    """What a send would do now, without storing a plan or sending anything."""
    core.settings.require_secret_key()
    outgoing(core, issue)  # not rendered: say so before anything else
    size = batch_size(core)
    state = plan_state(core, issue.id)
    left_out = None
    with core.sessions() as session:
        if state.planned:
            first = session.execute(
                select(Batch.id, Batch.segment)
                .where(Batch.issue_id == issue.id, Batch.status == "pending")
                .order_by(Batch.number)
            ).first()
            recipients = []
            if first is not None:
                recipients, _ = load_recipients(
                    session, first.id, core.recipient_values, core.unsubscribe_url, unbuilt={}
                )
            total, batches, first_id = state.recipients, sum(state.batches.values()), first.id if first else 0
            segments = _stored_segments(session, issue)
            first_excluded = _segment_names(session, issue).get(first.segment, []) if first is not None else []
        else:
            found, left_out = count_segments(session, issue)
            segments = [SegmentPlan(s.excluded, s.recipients, -(-s.recipients // size)) for s in found]
            total = sum(s.recipients for s in segments)
            batches = sum(s.batches for s in segments)
            # The first batch is the first segment's (the full issue's, when anyone gets it); its payload
            # is estimated with the first recipients by id, whatever their segment.
            first_excluded = found[0].excluded if found else []
            first_size = min(size, found[0].recipients) if found else 0
            recipients = []
            for subscriber_id, address in session.execute(recipients_query().limit(first_size)):
                person = session.get(Subscriber, subscriber_id)
                recipients.append(
                    Recipient(
                        delivery_id=len(recipients) + 1,
                        email=address,
                        name=person.name,
                        values=core.recipient_values(person),
                        unsubscribe_url=core.unsubscribe_url(person),
                    )
                )
            first_id = 1
    provider = core.provider
    payload = 0
    if recipients:
        the_outgoing = outgoing_for_segment(core, issue, first_excluded)
        payload = provider.payload_size(the_outgoing, recipients, batch_id=first_id)
    return DryRun(
        state.planned, total, batches, size, len(recipients), payload, provider.name, state, segments, left_out
    )


def send_test(core: Digest, issue: Issue, address: str) -> str | None:
    """The issue to one address, subject marked [TEST]; no delivery is recorded. Returns the message id."""
    core.settings.require_secret_key()
    try:
        email = normalize_email(address)
    except InvalidAddress as exc:
        raise UsageError(f"--test {address!r}: {exc}") from None
    with core.sessions() as session:
        known = session.scalars(select(Subscriber).where(Subscriber.email == email)).first()
    # A subscriber gets the issue as their preferences make it (the full issue if they would get nothing).
    excluded = []
    if known is not None:
        excluded = [s for s in issue_sections(issue.content or {}) if s in set(known.excluded_sections)]
        if leaves_nothing(issue.content or {}, excluded):
            excluded = []
    # Someone not on the list gets well-formed links that lead nowhere (a random key no subscriber has).
    person = known or _RecipientRow(0, email, None, "active", secrets.token_urlsafe(16))
    recipient = Recipient(
        delivery_id=0,
        email=email,
        name=person.name,
        values=core.recipient_values(person),
        unsubscribe_url=core.unsubscribe_url(person),
    )
    provider = core.provider
    try:
        the_outgoing = outgoing_for_segment(core, issue, excluded, subject_prefix="[TEST] ")
        result = provider.send_batch(the_outgoing, [recipient], batch_id=0)
    except ProviderError as exc:
        raise DeliveryError(f"the test message to {email} was not sent: {exc}") from None
    finally:
        provider.close()
    if 0 not in result.sent:
        raise DeliveryError(f"the test message to {email} was not sent: {result.refused.get(0, 'refused')}")
    return result.sent[0]


def mark_sent(core: Digest, issue: Issue, number: int) -> int:
    """The operator's word that batch `number` of a send of unknown fate did go out (the provider's
    activity shows it): it becomes submitted and its recipients sent, without sending anything.
    Returns its recipients marked sent."""
    # Not while a send may still be waiting on it.
    with send_lock(core.engine, issue.id, issue.period), core.sessions.begin() as session:
        row = session.execute(
            select(Batch.id, Batch.status).where(Batch.issue_id == issue.id, Batch.number == number)
        ).first()
        if row is None:
            raise UsageError(f"issue {issue.period} has no batch {number}")
        if row.status != "submitting":
            raise UsageError(
                f"batch {number} of issue {issue.period} is {row.status}, not of unknown fate; "
                "only a batch left in `submitting` can be marked sent"
            )
        pending = session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.batch_id == row.id, Delivery.status == "pending")
        )
        settle_batch(session, row.id, core.now())
    return pending


def failed_recipients(core: Digest, issue_id: int, *, limit: int = 10) -> tuple[int, list[tuple[str, str]]]:
    """Recipients of the issue refused one by one (their message could not be built, or the provider
    refused the address): how many, and the first `limit` addresses with the reason recorded."""
    from subscribers.models import Subscriber

    failed = (Delivery.issue_id == issue_id, Delivery.status == "failed", Delivery.error.is_not(None))
    with core.sessions() as session:
        count = session.scalar(select(func.count()).select_from(Delivery).where(*failed))
        rows = session.execute(
            select(Subscriber.email, Delivery.error)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(*failed)
            .order_by(Delivery.id)
            .limit(limit)
        ).all()
    return count or 0, [(email, error) for email, error in rows]
