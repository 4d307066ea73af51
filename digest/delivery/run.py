"""`digest send` and the weekly job's send step: lock, plan once, send; also the dry run and the
test send. Thin glue between the core (settings, store, provider) and the sender."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select

from digest.core import Digest
from digest.delivery.lock import send_lock
from digest.delivery.plan import count_recipients, plan_batches, recipients_query
from digest.delivery.providers.base import OutgoingIssue, Recipient
from digest.delivery.retry import RetryPolicy
from digest.delivery.sender import Progress, SendOptions, SendReport, _RecipientRow, load_recipients, send_issue
from digest.errors import DeliveryError, UsageError
from digest.models import Batch, Delivery, Issue
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
            planned = plan_batches(session, fresh, batch_size=batch_size(core), now=core.now())
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
            )
        finally:
            provider.close()
    return planned, report


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


def dry_run(core: Digest, issue: Issue) -> DryRun:
    """What a send would do now, without storing a plan or sending anything."""
    core.settings.require_secret_key()
    the_outgoing = outgoing(core, issue)
    size = batch_size(core)
    state = plan_state(core, issue.id)
    with core.sessions() as session:
        if state.planned:
            first = session.scalar(
                select(Batch.id).where(Batch.issue_id == issue.id, Batch.status == "pending").order_by(Batch.number)
            )
            recipients = []
            if first is not None:
                recipients, _ = load_recipients(session, first, core.recipient_values, core.unsubscribe_url)
            total, batches, first_id = state.recipients, sum(state.batches.values()), first or 0
        else:
            total = count_recipients(session)
            batches = -(-total // size)
            recipients = []
            for subscriber_id, address in session.execute(recipients_query().limit(size)):
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
    payload = provider.payload_size(the_outgoing, recipients, batch_id=first_id) if recipients else 0
    return DryRun(state.planned, total, batches, size, len(recipients), payload, provider.name, state)


def send_test(core: Digest, issue: Issue, address: str) -> str | None:
    """The issue to one address, subject marked [TEST]; no delivery is recorded. Returns the message id."""
    core.settings.require_secret_key()
    try:
        email = normalize_email(address)
    except InvalidAddress as exc:
        raise UsageError(f"--test {address!r}: {exc}") from None
    with core.sessions() as session:
        known = session.scalars(select(Subscriber).where(Subscriber.email == email)).first()
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
        ids = provider.send_batch(outgoing(core, issue, subject_prefix="[TEST] "), [recipient], batch_id=0)
    except Exception as exc:
        from digest.delivery.providers.base import ProviderError

        if isinstance(exc, ProviderError):
            raise DeliveryError(f"the test message to {email} was not sent: {exc}") from None
        raise
    finally:
        provider.close()
    if 0 not in ids:
        raise DeliveryError(f"the provider refused {email}")
    return ids[0]
