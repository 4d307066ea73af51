"""Freeze an issue's recipients into stored batches before the first request is made.

The plan is read by one SELECT that the store sorts into the order batches are numbered, streamed to
Python a few thousand rows at a time and cut into batches as it goes: it takes seconds, not an ORM object
per delivery, and its memory is a few batches, not the audience (holding every id at once was 40 MB at a
million readers and grows with them). Recipients are whoever the audience's SQL names
(`Audience.eligible`: active, confirmed, not suppressed), numbered by id into batches of `batch_size`,
grouped by wave and segment (the set of the issue's sections they left out, see digest.email.segments)
so that every batch carries one rendering and goes at one instant.

The plan is frozen on the batches themselves: each stores its readers' ids (`batches.members`, a JSON
array) and their number (`batches.recipients`). A reader's `deliveries` row (unique per issue and reader)
is written by the send once they are settled, with the outcome (`digest.delivery.sender`); until then
they are one of their batch's members. Writing a million rows into five indexes, each checked against
two foreign keys, was most of a plan's time (30 s on PostgreSQL); a thousand batch rows take a fraction
of a second.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from digest.delivery.audience import Audience
from digest.delivery.interpreter import bulk_work
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


@bulk_work()
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

    The recipients, their segments and their waves are read by one statement in the order they are
    numbered: wave after wave (earliest first; one wave when `local` is None: at once), segment after
    segment within a wave (the full issue first), recipients by subscriber id within their segment.
    With `local`, each reader's wave is computed from their zone on `local.day` (see digest.delivery.waves)
    and stored on their batch (`wave`, `send_at`); a zone changed later does not move them this issue.
    Callers hold the send lock, so only one process plans an issue; the unique key on (issue, batch
    number) would refuse a second plan anyway, and the one on (issue, subscriber) a second row for a
    reader when the claims make them."""
    existing = session.scalar(select(func.count()).select_from(Batch).where(Batch.issue_id == issue.id))
    if existing:
        return PlanCounts(existing, [], 0)
    content = issue.content or {}
    sections = issue_sections(content)
    eligible: TextSelect = audience.eligible(session, sections)
    readers, waves = _readers(session, eligible, local)
    send_at = {w.number: w.send_at for w in waves}
    kept: dict[int, str | None] = {}  # mask -> its segment's key, None: nothing to read in it

    def key_of(mask: int) -> str | None:
        if mask not in kept:
            left_out = [n for i, n in enumerate(sections) if mask & (1 << i)]
            kept[mask] = None if mask and segment_content(content, left_out) is None else segment_key(left_out)
        return kept[mask]

    counts: dict[tuple[int, int], int] = {}
    pending: list[dict[str, Any]] = []
    numbered = 0

    def cut(wave: int, mask: int, people: list[int]) -> None:
        nonlocal numbered
        counts[(wave, mask)] = counts.get((wave, mask), 0) + len(people)
        segment = key_of(mask)
        if segment is None:
            return
        numbered += 1
        pending.append(
            {
                "issue_id": issue.id,
                "number": numbered,
                "segment": segment,
                "status": "pending",
                "attempts": 0,
                "wave": wave if local is not None else None,
                "send_at": send_at.get(wave),
                "recipients": len(people),
                "members": json.dumps(people, separators=(",", ":")),
                "created_at": now,
                "updated_at": now,
            }
        )
        if len(pending) >= _INSERT_CHUNK:
            session.execute(insert(Batch), pending)
            pending.clear()

    size = int(batch_size)
    group: tuple[int, int] | None = None
    people: list[int] = []
    for row in readers:
        if (row[0], row[1]) != group or len(people) >= size:
            if people and group is not None:
                cut(*group, people)
            group, people = (int(row[0]), int(row[1])), []
        people.append(row[2])
    if people and group is not None:
        cut(*group, people)
    if pending:
        session.execute(insert(Batch), pending)
    segments, nothing = _segments(_merge_waves(counts), content)
    if numbered:
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
        keys = {s.mask for s in segments}
        for each in waves:
            each.recipients = sum(n for (w, m), n in counts.items() if w == each.number and m in keys)
        issue.waves = [w.as_dict() for w in waves if w.recipients]
    issue.status = "sending"
    issue.send_started_at = now
    return PlanCounts(numbered, segments, nothing)


# Batch rows written per INSERT and reader rows fetched per round trip: what the plan holds at once is a
# few of these, not the audience (a million readers' ids as Python ints are about 40 MB).
_INSERT_CHUNK = 100
_FETCH = 10_000


def _readers(session: Session, eligible: TextSelect, local: LocalDelivery | None) -> tuple[Iterator[Any], list[Wave]]:
    """(wave, mask, reader id) of every reader, in the order batches are numbered, streamed from the
    store a few thousand rows at a time; and the waves ([] at once: every reader is in wave 0).

    The store sorts and Python cuts: a batch's readers are consecutive rows. For waves, the zones are read
    first and mapped to their wave in the SQL; the readers' statement is a later snapshot on PostgreSQL
    (READ COMMITTED), so a zone first seen there (a reader who moved in between) maps to 0, sorts first,
    and the zones are read again with it: no reader is dropped or put into another zone's wave."""
    if local is None:
        sql = f"SELECT 0 AS w, m, id FROM ({eligible.sql}) r ORDER BY m, id"
        return _stream(session, sql, dict(eligible.params)), []
    zones: set[str | None] = {
        z for (z,) in session.execute(text(f"SELECT DISTINCT z FROM ({eligible.sql}) r"), dict(eligible.params))
    }
    while True:
        waves, wave_of = plan_waves(zones, local)
        params: dict[str, Any] = dict(eligible.params)
        params["plan_default_wave"] = wave_of[local.default_zone]
        whens = ["WHEN z IS NULL THEN :plan_default_wave"]
        for i, zone in enumerate(sorted(z for z in zones if z is not None)):
            params[f"plan_z{i}"] = zone
            params[f"plan_w{i}"] = wave_of[zone or local.default_zone]
            whens.append(f"WHEN z = :plan_z{i} THEN :plan_w{i}")
        sql = (
            "SELECT w, m, id, CASE WHEN w = 0 THEN z END AS z FROM "
            f"(SELECT CASE {' '.join(whens)} ELSE 0 END AS w, m, id, z FROM ({eligible.sql}) r) q "
            "ORDER BY w, m, id"
        )
        rows = _stream(session, sql, params)
        first = next(rows, None)
        if first is None or first[0] != 0:
            return (chain([first], rows) if first is not None else iter(())), waves
        # zones first seen by this statement: all of them are in the rows before the first mapped one
        zones.add(first[3])
        for row in rows:
            if row[0] != 0:
                break
            zones.add(row[3])
        rows.close()


def _stream(session: Session, sql: str, params: dict[str, Any]) -> Generator[Any, None, None]:
    """The rows of a SELECT, fetched `_FETCH` at a time (a server-side cursor on PostgreSQL).

    stream_results and fetchmany, not yield_per: with yield_per (SQLAlchemy 2.1, psycopg) a million rows
    grew the process by 240 MB although the cursor was a server-side one."""
    options = {"stream_results": True, "max_row_buffer": _FETCH}
    result = session.execute(text(sql), params, execution_options=options)
    try:
        while rows := result.fetchmany(_FETCH):
            yield from rows
    finally:
        result.close()


def _merge_waves(counts: dict[tuple[int, int], int]) -> list[tuple[int, int]]:
    by_mask: dict[int, int] = {}
    for (_, mask), n in counts.items():
        by_mask[mask] = by_mask.get(mask, 0) + n
    return list(by_mask.items())
