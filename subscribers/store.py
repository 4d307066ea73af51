"""Adding, importing and listing subscribers, with consent and a history of every status change."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.errors import UsageError
from subscribers.models import FINAL_STATUSES, Subscriber, SubscriberChange, Suppression


class InvalidAddress(ValueError):
    pass


def normalize_email(address: str) -> str:
    """Validated (syntax only, no DNS) and lower-cased, so one person is one row."""
    try:
        result = validate_email(address.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(str(exc)) from None
    return result.normalized.lower()


def email_hash(address: str) -> str:
    return hashlib.sha256(address.strip().lower().encode("utf-8")).hexdigest()


def set_status(session: Session, subscriber: Subscriber, status: str, cause: str, now: datetime) -> None:
    if subscriber.status == status:
        return
    session.add(
        SubscriberChange(
            subscriber_id=subscriber.id, from_status=subscriber.status, to_status=status, cause=cause, at=now
        )
    )
    subscriber.status = status
    subscriber.updated_at = now


def is_suppressed(session: Session, address: str) -> bool:
    return session.scalar(select(Suppression.id).where(Suppression.email_hash == email_hash(address))) is not None


@dataclass
class Rejected:
    line: int
    value: str
    reason: str


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_out: int = 0  # unsubscribed, bounced, complained or suppressed: never reactivated by an import
    rejected: list[Rejected] = field(default_factory=list)


def read_csv(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows with their line numbers; the header must name an `email` column."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with handle:
        reader = csv.DictReader(handle)
        fields = [f.strip().lower() for f in reader.fieldnames or []]
        if "email" not in fields:
            raise UsageError(f"{path}: line 1: the header needs an 'email' column (found {fields or 'nothing'})")
        reader.fieldnames = fields
        for row in reader:
            yield reader.line_num, {k: (v or "").strip() for k, v in row.items() if k}


def import_csv(session: Session, path: Path, *, now: datetime) -> ImportReport:
    report = ImportReport()
    seen: dict[str, Subscriber] = {}
    for line, row in read_csv(path):
        raw = row.get("email", "")
        try:
            address = normalize_email(raw)
        except InvalidAddress as exc:
            report.rejected.append(Rejected(line, raw, str(exc)))
            continue
        name = row.get("name") or None
        subscriber = seen.get(address) or session.scalars(select(Subscriber).where(Subscriber.email == address)).first()
        if subscriber is None:
            if is_suppressed(session, address):
                report.kept_out += 1
                continue
            subscriber = Subscriber(
                email=address,
                name=name,
                status="active",
                consent_source="import",
                consent_at=now,
                confirmed_at=now,
                created_at=now,
                updated_at=now,
            )
            session.add(subscriber)
            session.flush()
            session.add(
                SubscriberChange(
                    subscriber_id=subscriber.id,
                    from_status=None,
                    to_status="active",
                    cause=f"import {path.name}:{line}",
                    at=now,
                )
            )
            report.added += 1
        elif subscriber.status in FINAL_STATUSES:
            report.kept_out += 1
        elif name and subscriber.name != name:
            subscriber.name, subscriber.updated_at = name, now
            report.updated += 1
        else:
            report.unchanged += 1
        seen[address] = subscriber
    return report


def list_subscribers(session: Session, status: str | None = None) -> list[Subscriber]:
    query = select(Subscriber).order_by(Subscriber.id)
    if status:
        query = query.where(Subscriber.status == status)
    return list(session.scalars(query))
