"""Freeze an issue's recipients into stored batches before the first request is made."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.models import Batch, Delivery, Issue
from subscribers.models import Subscriber, Suppression
from subscribers.store import email_hash


def recipients_query():
    """Active, confirmed subscribers, in a stable order."""
    return (
        select(Subscriber.id, Subscriber.email)
        .where(Subscriber.status == "active", Subscriber.confirmed_at.is_not(None))
        .order_by(Subscriber.id)
    )


def plan_batches(session: Session, issue: Issue, *, batch_size: int, now: datetime) -> int:
    """Create the batches once; a plan that exists is kept as it is. Returns the number of batches."""
    existing = session.scalar(select(func.count()).select_from(Batch).where(Batch.issue_id == issue.id))
    if existing:
        return existing
    suppressed = set(session.scalars(select(Suppression.email_hash)))
    number, batch, in_batch = 0, None, 0
    # Rows are streamed, never all held at once.
    for subscriber_id, email in session.execute(recipients_query().execution_options(yield_per=2000)):
        if suppressed and email_hash(email) in suppressed:
            continue
        if batch is None or in_batch >= batch_size:
            number += 1
            batch = Batch(issue_id=issue.id, number=number, status="pending", created_at=now, updated_at=now)
            session.add(batch)
            session.flush()
            in_batch = 0
        session.add(Delivery(issue_id=issue.id, batch_id=batch.id, subscriber_id=subscriber_id, status="pending"))
        in_batch += 1
    issue.status = "sending"
    issue.send_started_at = now
    return number
