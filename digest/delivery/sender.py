"""Send an issue's planned batches, each at most once, moving batch status by compare-and-set."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from digest import shutdown
from digest.delivery.providers.base import OutgoingIssue, Provider, ProviderError, Recipient
from digest.models import Batch, Delivery, Issue, utcnow
from subscribers.models import Subscriber

log = logging.getLogger(__name__)


@dataclass
class SendReport:
    batches: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0  # left since the plan was made (unsubscribed, bounced, complained)
    unknown_batches: list[int] = field(default_factory=list)  # found in `submitting`: fate unknown


def move_batch(session: Session, batch_id: int, from_statuses: tuple[str, ...], to_status: str, **values) -> bool:
    """Compare-and-set; False when another process moved the batch first."""
    result = session.execute(
        update(Batch)
        .where(Batch.id == batch_id, Batch.status.in_(from_statuses))
        .values(status=to_status, updated_at=utcnow(), **values)
    )
    return result.rowcount == 1


def send_issue(
    sessions: sessionmaker,
    provider: Provider,
    outgoing: OutgoingIssue,
    recipient_values: Callable[[Subscriber], dict[str, str]],
    unsubscribe_url: Callable[[Subscriber], str],
    *,
    on_batch: Callable[[int, int], None] | None = None,
) -> SendReport:
    report = SendReport()
    with sessions() as session:
        batches = session.execute(
            select(Batch.id, Batch.status).where(Batch.issue_id == outgoing.issue_id).order_by(Batch.number)
        ).all()
    for batch_id, status in batches:
        if shutdown.requested.is_set():
            log.info("stopping before batch %s as asked; `digest send --resume` continues", batch_id)
            break
        if status == "submitting":
            report.unknown_batches.append(batch_id)
            continue
        if status != "pending":
            continue
        with sessions.begin() as session:
            if not move_batch(session, batch_id, ("pending",), "submitting", attempts=Batch.attempts + 1):
                continue
        report.batches += 1
        with sessions.begin() as session:
            rows = session.execute(
                select(Delivery, Subscriber)
                .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .where(Delivery.batch_id == batch_id, Delivery.status == "pending")
                .order_by(Delivery.id)
            ).all()
            recipients = []
            for delivery, subscriber in rows:
                # Unsubscribes win: someone who left after the plan was made is not mailed.
                if subscriber.status != "active":
                    delivery.status = "skipped"
                    report.skipped += 1
                    continue
                recipients.append(
                    Recipient(
                        delivery_id=delivery.id,
                        email=subscriber.email,
                        name=subscriber.name,
                        values=recipient_values(subscriber),
                        unsubscribe_url=unsubscribe_url(subscriber),
                    )
                )
        try:
            message_ids = provider.send_batch(outgoing, recipients, batch_id=batch_id) if recipients else {}
        except ProviderError as exc:
            with sessions.begin() as session:
                move_batch(session, batch_id, ("submitting",), "failed", error=str(exc))
            report.failed += len(recipients)
            log.error("batch %s failed: %s", batch_id, exc)
            continue
        now = utcnow()
        with sessions.begin() as session:
            move_batch(session, batch_id, ("submitting",), "submitted", submitted_at=now, error=None)
            for delivery_id, message_id in message_ids.items():
                session.execute(
                    update(Delivery)
                    .where(Delivery.id == delivery_id)
                    .values(status="sent", message_id=message_id, sent_at=now)
                )
        report.sent += len(message_ids)
        if on_batch:
            on_batch(batch_id, len(message_ids))
    with sessions.begin() as session:
        open_batches = session.scalar(
            select(Batch.id)
            .where(Batch.issue_id == outgoing.issue_id, Batch.status.in_(("pending", "submitting", "failed")))
            .limit(1)
        )
        if open_batches is None:
            session.execute(
                update(Issue)
                .where(Issue.id == outgoing.issue_id, Issue.status == "sending")
                .values(status="sent", sent_at=utcnow())
            )
    return report
