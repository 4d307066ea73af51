"""Freeze an issue's recipients into stored batches before the first request is made.

The plan is made inside the database (INSERT ... SELECT): a million recipients never pass through
Python, and it takes seconds, not an ORM object per delivery. Recipients are whoever the audience's SQL
names (`Audience.eligible`: active, confirmed, not suppressed), numbered by id into batches of `batch_size`,
grouped by segment (the set of the issue's sections they left out, see digest.email.segments) so that every
batch carries one rendering.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from digest.delivery.audience import Audience
from digest.email.segments import FULL, issue_sections, segment_content, segment_key
from digest.store.db import TextSelect
from digest.store.models import Batch, Issue, IssueRendering

log = logging.getLogger(__name__)


def count_recipients(session: Session, audience: Audience) -> int:
    eligible = audience.eligible(session, [])
    return session.scalar(text(f"SELECT count(*) FROM ({eligible.sql}) r"), dict(eligible.params)) or 0


@dataclass(frozen=True)
class Segment:
    mask: int
    left_out: list[str]  # the issue's sections this segment leaves out, in the issue's order
    recipients: int

    @property
    def key(self) -> str:
        return segment_key(self.left_out)


def _segments(rows: Iterable[tuple[int, int]], content: dict[str, Any]) -> tuple[list[Segment], int]:
    """(segments with something to read, in mask order; recipients who would get no article at all)."""
    sections = issue_sections(content)
    segments: list[Segment] = []
    nothing = 0
    for mask, count in sorted(rows):
        left_out = [n for i, n in enumerate(sections) if mask & (1 << i)]
        if mask and segment_content(content, left_out) is None:
            nothing += count
            continue
        segments.append(Segment(mask, left_out, count))
    return segments, nothing


def _by_mask(session: Session, source: str, params: dict[str, Any] | None = None) -> list[tuple[int, int]]:
    rows = session.execute(text(f"SELECT m, count(*) FROM {source} GROUP BY m"), params or {})
    return [(int(m), int(n)) for m, n in rows]


def count_segments(session: Session, audience: Audience, issue: Issue) -> tuple[list[Segment], int]:
    """What a plan made now would hold, without storing anything (for `digest send --dry-run`)."""
    eligible = audience.eligible(session, issue_sections(issue.content or {}))
    return _segments(_by_mask(session, f"({eligible.sql}) r", dict(eligible.params)), issue.content or {})


@dataclass(frozen=True)
class PlanCounts:
    batches: int
    segments: list[Segment]
    left_out_everything: int  # active subscribers who left out every section of this issue: not mailed


def plan_batches(session: Session, audience: Audience, issue: Issue, *, batch_size: int, now: datetime) -> int:
    """Create the batches once; a plan that exists is kept as it is. Returns the number of batches."""
    return plan_issue(session, audience, issue, batch_size=batch_size, now=now).batches


def plan_issue(session: Session, audience: Audience, issue: Issue, *, batch_size: int, now: datetime) -> PlanCounts:
    """Create the batches once, grouped by segment so that each batch carries one rendering.

    The recipients and their segments are frozen by one statement into a temporary table; batches are
    numbered segment after segment (the full issue first), recipients by subscriber id within their
    segment. Callers hold the send lock, so only one process plans an issue; the unique keys on
    (issue, batch number) and (issue, subscriber) would refuse a second plan anyway."""
    existing = session.scalar(select(func.count()).select_from(Batch).where(Batch.issue_id == issue.id))
    if existing:
        return PlanCounts(existing, [], 0)
    postgres = session.connection().dialect.name == "postgresql"
    eligible: TextSelect = audience.eligible(session, issue_sections(issue.content or {}))
    frozen = "pg_temp.plan_recipients" if postgres else "temp.plan_recipients"
    session.execute(text(f"DROP TABLE IF EXISTS {frozen}"))  # left by a plan that failed on this connection
    session.execute(
        text(
            f"CREATE TEMPORARY TABLE plan_recipients {'ON COMMIT DROP ' if postgres else ''}AS "
            f"SELECT id, m, ROW_NUMBER() OVER (PARTITION BY m ORDER BY id) AS rn FROM ({eligible.sql}) r"
        ),
        dict(eligible.params),
    )
    segments, nothing = _segments(_by_mask(session, frozen), issue.content or {})
    batch_rows: list[dict[str, Any]] = []
    first_number: dict[int, int] = {}
    number = 0
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
            {"issue_id": issue.id, "segment": s.key, "left_out_sections": s.left_out, "created_at": now}
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
        log.info("issue %s: %d subscribers left out every section it has; they are not mailed", issue.week, nothing)
    issue.status = "sending"
    issue.send_started_at = now
    return PlanCounts(len(batch_rows), segments, nothing)
