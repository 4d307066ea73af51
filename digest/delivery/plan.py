"""Freeze an issue's recipients into stored batches before the first request is made.

The plan is made inside the database (INSERT ... SELECT): a million recipients never pass through
Python, and it takes seconds, not an ORM object per delivery. Recipients are the active, confirmed
subscribers whose address is not suppressed, numbered by subscriber id into batches of `batch_size`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from digest.models import Batch, Issue
from subscribers.models import Subscriber, Suppression
from subscribers.store import email_hash

_HASH_FUNCTION = "digest_email_hash"


def recipients_query():
    """Active, confirmed subscribers, in a stable order (suppressions are checked separately)."""
    return (
        select(Subscriber.id, Subscriber.email)
        .where(Subscriber.status == "active", Subscriber.confirmed_at.is_not(None))
        .order_by(Subscriber.id)
    )


def _suppression_filter(session: Session) -> str:
    """SQL that keeps suppressed addresses out, or nothing when there are no suppressions.

    Suppressions are stored as SHA-256 of the lower-cased address; PostgreSQL computes it itself,
    SQLite through a function registered on this connection (the same `email_hash` the store uses)."""
    if session.scalar(select(Suppression.id).limit(1)) is None:
        return ""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        hashed = "encode(sha256(convert_to(lower(btrim(s.email)), 'UTF8')), 'hex')"
    else:
        conn.connection.driver_connection.create_function(_HASH_FUNCTION, 1, email_hash, deterministic=True)
        hashed = f"{_HASH_FUNCTION}(s.email)"
    return f" AND NOT EXISTS (SELECT 1 FROM suppressions x WHERE x.email_hash = {hashed})"


_RECIPIENTS = "FROM subscribers s WHERE s.status = 'active' AND s.confirmed_at IS NOT NULL"


def count_recipients(session: Session) -> int:
    return session.scalar(text(f"SELECT count(*) {_RECIPIENTS}{_suppression_filter(session)}")) or 0


def plan_batches(session: Session, issue: Issue, *, batch_size: int, now: datetime) -> int:
    """Create the batches once; a plan that exists is kept as it is. Returns the number of batches.

    Callers hold the send lock, so only one process plans an issue; the unique keys on
    (issue, batch number) and (issue, subscriber) would refuse a second plan anyway."""
    existing = session.scalar(select(func.count()).select_from(Batch).where(Batch.issue_id == issue.id))
    if existing:
        return existing
    suppressed = _suppression_filter(session)
    wanted = session.scalar(text(f"SELECT count(*) {_RECIPIENTS}{suppressed}")) or 0
    batches = -(-wanted // batch_size)
    if batches:
        session.execute(
            insert(Batch),
            [
                {
                    "issue_id": issue.id,
                    "number": n,
                    "status": "pending",
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(1, batches + 1)
            ],
        )
        # Recipient number k (by subscriber id) goes in batch (k - 1) // batch_size + 1.
        session.execute(
            text(
                "INSERT INTO deliveries (issue_id, batch_id, subscriber_id, status) "
                "SELECT :issue_id, b.id, r.id, 'pending' FROM ("
                f"  SELECT s.id AS id, (ROW_NUMBER() OVER (ORDER BY s.id) - 1) / :size + 1 AS number {_RECIPIENTS}"
                f"{suppressed}"
                ") r JOIN batches b ON b.issue_id = :issue_id AND b.number = r.number"
            ),
            {"issue_id": issue.id, "size": batch_size},
        )
        # Someone who left between the count and the insert can leave the last batch empty.
        session.execute(
            text(
                "DELETE FROM batches WHERE issue_id = :issue_id "
                "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.batch_id = batches.id)"
            ),
            {"issue_id": issue.id},
        )
        batches = session.scalar(select(func.count()).select_from(Batch).where(Batch.issue_id == issue.id))
    issue.status = "sending"
    issue.send_started_at = now
    return batches
