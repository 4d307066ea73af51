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
from digest.delivery.waves import LocalDelivery, Wave, plan_waves
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


def plan_batches(
    session: Session,
    audience: Audience,
    issue: Issue,
    *,
    batch_size: int,
    now: datetime,
    local: LocalDelivery | None = None,
) -> int:
    """Create the batches once; a plan that exists is kept as it is. Returns the number of batches."""
    return plan_issue(session, audience, issue, batch_size=batch_size, now=now, local=local).batches


def plan_issue(
    session: Session,
    audience: Audience,
    issue: Issue,
    *,
    batch_size: int,
    now: datetime,
    local: LocalDelivery | None = None,
) -> PlanCounts:
    """Create the batches once, grouped by wave and segment so that each batch carries one rendering and
    goes at one instant.

    The recipients, their segments and their zones are frozen by one statement into a temporary table;
    batches are numbered wave after wave (earliest first; one wave when `local` is None: at once), segment
    after segment within a wave (the full issue first), recipients by subscriber id within their segment.
    With `local`, each reader's wave is computed from their zone on `local.day` (see digest.delivery.waves)
    and stored on their batch (`wave`, `send_at`); a zone changed later does not move them this issue.
    Callers hold the send lock, so only one process plans an issue; the unique keys on (issue, batch
    number) and (issue, subscriber) would refuse a second plan anyway."""
    existing = session.scalar(select(func.count()).select_from(Batch).where(Batch.issue_id == issue.id))
    if existing:
        return PlanCounts(existing, [], 0)
    postgres = session.connection().dialect.name == "postgresql"
    eligible: TextSelect = audience.eligible(session, issue_sections(issue.content or {}))
    temp = "pg_temp" if postgres else "temp"
    people, frozen = f"{temp}.plan_people", f"{temp}.plan_recipients"
    on_commit = "ON COMMIT DROP " if postgres else ""
    for table in (people, frozen):  # left by a plan that failed on this connection
        session.execute(text(f"DROP TABLE IF EXISTS {table}"))
    waves: list[Wave] = []
    if local is None:
        # One wave: the recipients are numbered within their segment as they are frozen, in one pass.
        session.execute(
            text(
                f"CREATE TEMPORARY TABLE plan_recipients {on_commit}AS "
                "SELECT id, m, 0 AS w, ROW_NUMBER() OVER (PARTITION BY m ORDER BY id) AS rn "
                f"FROM ({eligible.sql}) r"
            ),
            dict(eligible.params),
        )
    else:
        session.execute(
            text(f"CREATE TEMPORARY TABLE plan_people {on_commit}AS SELECT id, m, z FROM ({eligible.sql}) r"),
            dict(eligible.params),
        )
        zones = session.scalars(text(f"SELECT DISTINCT z FROM {people}")).all()
        waves, wave_of = plan_waves(zones, local)
        wave_sql, wave_params = _wave_case(wave_of, local.default_zone)
        session.execute(
            text(
                f"CREATE TEMPORARY TABLE plan_recipients {on_commit}AS "
                "SELECT id, m, w, ROW_NUMBER() OVER (PARTITION BY w, m ORDER BY id) AS rn "
                f"FROM (SELECT id, m, {wave_sql} AS w FROM {people}) p"
            ),
            wave_params,
        )
        session.execute(text(f"DROP TABLE {people}"))
    send_at = {w.number: w.send_at for w in waves}
    counts = _by_wave_and_mask(session, frozen)
    segments, nothing = _segments(_merge_waves(counts), issue.content or {})
    kept = {s.mask for s in segments}
    batch_rows: list[dict[str, Any]] = []
    first_number: dict[tuple[int, int], int] = {}
    number = 0
    for (wave, mask), recipients in sorted(counts.items()):
        if mask not in kept:
            continue
        first_number[(wave, mask)] = number
        key = segment_key(next(s.left_out for s in segments if s.mask == mask))
        for _ in range(-(-recipients // batch_size)):
            number += 1
            batch_rows.append(
                {
                    "issue_id": issue.id,
                    "number": number,
                    "segment": key,
                    "status": "pending",
                    "attempts": 0,
                    "wave": wave if local is not None else None,
                    "send_at": send_at.get(wave),
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
        # Recipient k of a (wave, segment) by subscriber id goes in its ((k - 1) // size + 1)th batch.
        offsets = " ".join(f"WHEN r.w = {w} AND r.m = {m} THEN {n}" for (w, m), n in first_number.items())
        session.execute(
            text(
                "INSERT INTO deliveries (issue_id, batch_id, subscriber_id, status) "
                f"SELECT :issue_id, b.id, r.id, 'pending' FROM {frozen} r "
                "JOIN batches b ON b.issue_id = :issue_id "
                f"AND b.number = (CASE {offsets} END) + (r.rn - 1) / :size + 1"
            ),
            {"issue_id": issue.id, "size": batch_size},
        )
    session.execute(text(f"DROP TABLE {frozen}"))
    if nothing:
        log.info("issue %s: %d subscribers left out every section it has; they are not mailed", issue.week, nothing)
    if local is not None:
        for each in waves:
            each.recipients = sum(n for (w, m), n in counts.items() if w == each.number and m in kept)
        issue.waves = [w.as_dict() for w in waves if w.recipients]
    issue.status = "sending"
    issue.send_started_at = now
    return PlanCounts(len(batch_rows), segments, nothing)


def _wave_case(wave_of: dict[str, int], default_zone: str) -> tuple[str, dict[str, Any]]:
    """SQL giving each frozen recipient their wave number from their zone `z` (NULL: the default zone)."""
    params: dict[str, Any] = {}
    whens = []
    for i, (zone, number) in enumerate(sorted(wave_of.items())):
        params[f"zone_{i}"] = zone
        whens.append(f"WHEN :zone_{i} THEN {int(number)}")
    params["default_zone"] = default_zone
    return f"CASE COALESCE(z, :default_zone) {' '.join(whens)} ELSE {int(wave_of[default_zone])} END", params


def _by_wave_and_mask(session: Session, source: str) -> dict[tuple[int, int], int]:
    rows = session.execute(text(f"SELECT w, m, count(*) FROM {source} GROUP BY w, m"))
    return {(int(w), int(m)): int(n) for w, m, n in rows}


def _merge_waves(counts: dict[tuple[int, int], int]) -> list[tuple[int, int]]:
    by_mask: dict[int, int] = {}
    for (_, mask), n in counts.items():
        by_mask[mask] = by_mask.get(mask, 0) + n
    return list(by_mask.items())
