"""Freeze an issue's recipients into stored batches before the first request is made.

The plan is made inside the database (INSERT ... SELECT): a million recipients never pass through
Python, and it takes seconds, not an ORM object per delivery. Recipients are the active, confirmed
subscribers whose address is not suppressed, numbered by subscriber id into batches of `batch_size`,
grouped by segment (the set of the issue's sections they left out, see digest.email.segments) so that every
batch carries one rendering.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from digest.email.segments import FULL, issue_sections, segment_content, segment_key
from digest.store.models import Batch, Issue, IssueRendering
from subscribers.models import Subscriber, Suppression
from subscribers.store import email_hash

log = logging.getLogger(__name__)

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


def _mask_sql(dialect: str, sections: list[str]) -> tuple[str, dict]:
    """SQL for each subscriber's segment as a bit mask over the issue's sections (bit i: left out
    sections[i]), and its parameters. Computed in the one statement that freezes the recipients, so a
    preference saved while the plan is made is either wholly in it or wholly not."""
    if not sections:
        return "0", {}
    params = {f"section_{i}": name for i, name in enumerate(sections)}
    if dialect == "postgresql":
        listed = "(s.preferences -> 'exclude_sections')"
        has_any = f"json_typeof({listed}) = 'array' AND json_array_length({listed}) > 0"
        excludes = f"CAST({listed} AS jsonb) @> jsonb_build_array(CAST(:{{p}} AS text))"
    else:
        has_any = "json_array_length(s.preferences, '$.exclude_sections') > 0"
        excludes = "EXISTS (SELECT 1 FROM json_each(s.preferences, '$.exclude_sections') j WHERE j.value = :{p})"
    bits = " + ".join(f"CASE WHEN {excludes.format(p=p)} THEN {1 << i} ELSE 0 END" for i, p in enumerate(params))
    # Most subscribers leave nothing out: they skip the per-section tests.
    return f"CASE WHEN {has_any} THEN {bits} ELSE 0 END", params


@dataclass(frozen=True)
class Segment:
    mask: int
    excluded: list[str]  # the issue's sections this segment leaves out, in the issue's order
    recipients: int

    @property
    def key(self) -> str:
        return segment_key(self.excluded)


def _segments(rows, content: dict) -> tuple[list[Segment], int]:
    """(segments with something to read, in mask order; recipients who would get no article at all)."""
    sections = issue_sections(content)
    segments, nothing = [], 0
    for mask, count in sorted(rows):
        excluded = [n for i, n in enumerate(sections) if mask & (1 << i)]
        if mask and segment_content(content, excluded) is None:
            nothing += count
            continue
        segments.append(Segment(mask, excluded, count))
    return segments, nothing


def count_segments(session: Session, issue: Issue) -> tuple[list[Segment], int]:
    """What a plan made now would hold, without storing anything (for `digest send --dry-run`)."""
    sections = issue_sections(issue.content or {})
    mask, params = _mask_sql(session.connection().dialect.name, sections)
    rows = session.execute(
        text(f"SELECT m, count(*) FROM (SELECT {mask} AS m {_RECIPIENTS}{_suppression_filter(session)}) r GROUP BY m"),
        params,
    ).all()
    return _segments(rows, issue.content or {})


@dataclass(frozen=True)
class PlanSummary:
    batches: int
    segments: list[Segment]
    left_out_everything: int  # active subscribers who left out every section of this issue: not mailed


def plan_batches(session: Session, issue: Issue, *, batch_size: int, now: datetime) -> int:
    """Create the batches once; a plan that exists is kept as it is. Returns the number of batches."""
    return plan_issue(session, issue, batch_size=batch_size, now=now).batches


def plan_issue(session: Session, issue: Issue, *, batch_size: int, now: datetime) -> PlanSummary:
    """Create the batches once, grouped by segment so that each batch carries one rendering.

    The recipients and their segments are frozen by one statement into a temporary table; batches are
    numbered segment after segment (the full issue first), recipients by subscriber id within their
    segment. Callers hold the send lock, so only one process plans an issue; the unique keys on
    (issue, batch number) and (issue, subscriber) would refuse a second plan anyway."""
    existing = session.scalar(select(func.count()).select_from(Batch).where(Batch.issue_id == issue.id))
    if existing:
        return PlanSummary(existing, [], 0)
    conn = session.connection()
    postgres = conn.dialect.name == "postgresql"
    sections = issue_sections(issue.content or {})
    mask, params = _mask_sql(conn.dialect.name, sections)
    frozen = "pg_temp.plan_recipients" if postgres else "temp.plan_recipients"
    session.execute(text(f"DROP TABLE IF EXISTS {frozen}"))  # left by a plan that failed on this connection
    session.execute(
        text(
            f"CREATE TEMPORARY TABLE plan_recipients {'ON COMMIT DROP ' if postgres else ''}AS "
            "SELECT id, m, ROW_NUMBER() OVER (PARTITION BY m ORDER BY id) AS rn FROM ("
            f"  SELECT s.id AS id, {mask} AS m {_RECIPIENTS}{_suppression_filter(session)}"
            ") r"
        ),
        params,
    )
    rows = session.execute(text(f"SELECT m, count(*) FROM {frozen} GROUP BY m")).all()
    segments, nothing = _segments(rows, issue.content or {})
    batch_rows, first_number, number = [], {}, 0
    for segment in segments:
        first_number[segment.mask] = number
        for _ in range(-(-segment.recipients // batch_size)):
            number += 1
            batch_rows.append(
                {
                    "issue_id": issue.id,
                    "number": number,
                    "segment": segment.key,
                    "status": "pending",
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    if batch_rows:
        session.execute(insert(Batch), batch_rows)
        renderings = [
            {"issue_id": issue.id, "segment": s.key, "excluded_sections": s.excluded, "created_at": now}
            for s in segments
            if s.key != FULL
        ]
        if renderings:
            session.execute(insert(IssueRendering), renderings)
        # Recipient k of a segment (by subscriber id) goes in that segment's ((k - 1) // size + 1)th batch.
        offsets = " ".join(f"WHEN {m} THEN {n}" for m, n in first_number.items())
        session.execute(
            text(
                "INSERT INTO deliveries (issue_id, batch_id, subscriber_id, status) "
                f"SELECT :issue_id, b.id, r.id, 'pending' FROM {frozen} r "
                "JOIN batches b ON b.issue_id = :issue_id "
                f"AND b.number = (CASE r.m {offsets} END) + (r.rn - 1) / :size + 1"
            ),
            {"issue_id": issue.id, "size": batch_size},
        )
    session.execute(text(f"DROP TABLE {frozen}"))
    if nothing:
        log.info("issue %s: %d subscribers left out every section it has; they are not mailed", issue.period, nothing)
    issue.status = "sending"
    issue.send_started_at = now
    return PlanSummary(len(batch_rows), segments, nothing)
