"""What a stored plan holds, its readers settled (deliveries rows) or not yet (their batch's frozen members)."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.store.models import Batch, Delivery


def planned(session: Session, issue_id: int | None = None) -> list[tuple[int, int]]:
    """(batch number, subscriber id) of every planned recipient, by batch number then subscriber id."""
    where = [] if issue_id is None else [Batch.issue_id == issue_id]
    found: list[tuple[int, int]] = []
    for number, members in session.execute(select(Batch.number, Batch.members).where(*where)):
        found += [(number, person) for person in json.loads(members or "[]")]
    for number, person in session.execute(
        select(Batch.number, Delivery.subscriber_id).join(Delivery, Delivery.batch_id == Batch.id).where(*where)
    ).all():
        found.append((number, person))
    return sorted(found)
