"""Freeze an issue's recipients into stored batches before the first request is made.

The plan is made inside the database by one SELECT: a million recipients never pass through Python, and
it takes seconds, not an ORM object per delivery. Recipients are whoever the audience's SQL names
(`Audience.eligible`: active, confirmed, not suppressed), numbered by id into batches of `batch_size`,
grouped by wave and segment (the set of the issue's sections they left out, see digest.email.segments)
so that every batch carries one rendering and goes at one instant.

The plan is frozen on the batches themselves: each stores its readers' ids (`batches.members`, a JSON
array) and their number (`batches.recipients`). A batch's `deliveries` rows (one per reader, unique per
issue and reader, where each outcome is recorded) are made from its members when it is claimed
(`digest.delivery.sender.make_deliveries`), in the claim's transaction. Writing a million rows into five
indexes, each checked against two foreign keys, was most of a plan's time (30 s on PostgreSQL); a
thousand batch rows take a fraction of a second, and the claim's thousand rows cost a few milliseconds.
"""

from __future__ import annotations

import json
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

    The recipients, their segments and their zones are read by one statement, which returns each batch's
    members; batches are numbered wave after wave (earliest first; one wave when `local` is None: at
    once), segment after segment within a wave (the full issue first), recipients by subscriber id within
    their segment.
    With `local`, each reader's wave is computed from their zone on `local.day` (see digest.delivery.waves)
    and stored on their batch (`wave`, `send_at`); a zone changed later does not move them this issue.
    Callers hold the send lock, so only one process plans an issue; the unique key on (issue, batch
    number) would refuse a second plan anyway, and the one on (issue, subscriber) a second row for a
    reader when the claims make them."""
    existing = session.scalar(select(func.count()).select_from(Batch).where(Batch.issue_id == issue.id))
    if existing:
        return PlanCounts(existing, [], 0)
    eligible: TextSelect = audience.eligible(session, issue_sections(issue.content or {}))
    waves, rows = _batches(session, eligible, local, int(batch_size))
    send_at = {w.number: w.send_at for w in waves}
    counts: dict[tuple[int, int], int] = {}
    for w, m, n, _ in rows:
        counts[(w, m)] = counts.get((w, m), 0) + n
    segments, nothing = _segments(_merge_waves(counts), issue.content or {})
    keys = {s.mask: s.key for s in segments}
    batch_rows: list[dict[str, Any]] = []
    for w, m, n, ids in rows:
        if m not in keys:
            continue
        batch_rows.append(
            {
                "issue_id": issue.id,
                "number": len(batch_rows) + 1,
                "segment": keys[m],
                "status": "pending",
                "attempts": 0,
                "wave": w if local is not None else None,
                "send_at": send_at.get(w),
                "recipients": n,
                "members": ids,
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
    if nothing:
        log.info("issue %s: %d subscribers left out every section it has; they are not mailed", issue.week, nothing)
    if local is not None:
        for each in waves:
            each.recipients = sum(n for (w, m), n in counts.items() if w == each.number and m in keys)
        issue.waves = [w.as_dict() for w in waves if w.recipients]
    issue.status = "sending"
    issue.send_started_at = now
    return PlanCounts(len(batch_rows), segments, nothing)


def _batches(
    session: Session, eligible: TextSelect, local: LocalDelivery | None, size: int
) -> tuple[list[Wave], list[tuple[int, int, int, str]]]:
    """The waves ([] at once) and the batches of a plan: (wave, mask, recipients, their ids as a JSON
    array), one per batch, in the order they are numbered.

    One statement freezes everyone: the readers' ids grouped by segment (and zone, for waves), a few
    groups, not a million rows. Zones that reach the local time at one instant are put together as one
    wave; each wave and segment is cut into batches of `size` by subscriber id here. A thousand batch rows
    are then written, not a million deliveries rows: those are made batch by batch at each claim
    (digest.delivery.sender.make_deliveries), which is what lets a plan of a million take seconds. Cutting
    in Python (1,000,000 ids: about a second) is faster on both stores than numbering rows in SQL with a
    window function, and one pass reads the zones with the readers, so no zone is missed in between."""
    postgres = session.connection().dialect.name == "postgresql"
    ids = "CAST(json_agg(id) AS text)" if postgres else "json_group_array(id)"
    by = "z, m" if local is not None else "m"
    found = [
        (row.z if local is not None else None, row.m, row.ids)
        for row in session.execute(
            text(f"SELECT {by}, {ids} AS ids FROM ({eligible.sql}) r GROUP BY {by}"), dict(eligible.params)
        )
    ]
    waves: list[Wave] = []
    wave_of: dict[str, int] = {}
    if local is not None:
        waves, wave_of = plan_waves([z for z, _, _ in found], local)
    grouped: dict[tuple[int, int], list[int]] = {}
    for z, mask, people in found:
        wave = wave_of[z or local.default_zone] if local is not None else 0
        grouped.setdefault((wave, int(mask)), []).extend(json.loads(people))
    rows: list[tuple[int, int, int, str]] = []
    for (wave, mask), people in sorted(grouped.items()):
        people.sort()  # by subscriber id within the wave and segment
        for start in range(0, len(people), size):
            chunk = people[start : start + size]
            rows.append((wave, mask, len(chunk), json.dumps(chunk, separators=(",", ":"))))
    return waves, rows


def _merge_waves(counts: dict[tuple[int, int], int]) -> list[tuple[int, int]]:
    by_mask: dict[int, int] = {}
    for (_, mask), n in counts.items():
        by_mask[mask] = by_mask.get(mask, 0) + n
    return list(by_mask.items())
