"""SendGrid's Event Webhook: check the signature, store every event once, and act on the ones that matter.

SendGrid signs `timestamp + raw body` with ECDSA P-256 / SHA-256 and sends the signature (base64
DER) and timestamp in the X-Twilio-Email-Event-Webhook-Signature / -Timestamp headers. It posts a
batch every 30 s or 768 KB and retries for 24 hours until it gets a 2xx, so the same event may come
twice: events are deduplicated on sg_event_id by the store's unique key. An event without one gets a
key made from its own content (`sha256:` + the hash of its canonical JSON), so a replay of it is a
duplicate too.

What an event does to the subscriber:

    bounce (type bounce)                    -> bounced     (type blocked is temporary: stored only)
    dropped (Bounced Address, Invalid …)    -> bounced
    spamreport                              -> complained
    unsubscribe, group_unsubscribe          -> unsubscribed
    delivered, open, click, anything else   -> stored for the issue's statistics, no change

A change never makes anyone active, and never softens a status (complained > bounced > unsubscribed).
An event for an address we do not (or no longer) hold leaves a suppression, so no import adds it back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NoReturn, TypedDict, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key
from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from digest.errors import UsageError
from digest.store.models import Event, Issue
from subscribers import store
from subscribers.models import Subscriber, Suppression

MAX_AGE_SECONDS = 600
CHUNK = 500
_RANK = {"pending": 0, "active": 0, "unsubscribed": 1, "bounced": 2, "complained": 3}
# One event as SendGrid posts it: JSON, whatever its fields hold.
EventBody = dict[str, Any]
# Declarative tables (never a join or a select), which the insert constructs take.
_EVENTS = cast(Table, Event.__table__)
_SUPPRESSIONS = cast(Table, Suppression.__table__)


class SignatureError(UsageError):
    """The request is not signed by the holder of the configured key, or is too old."""

    http_status = 403


class BadEvents(UsageError, ValueError):
    """The body is not a JSON array of event objects."""


@lru_cache(maxsize=4)
def load_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """SendGrid shows the key as base64 DER (SubjectPublicKeyInfo); PEM is accepted too."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = load_pem_public_key(text.encode())
        else:
            key = load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error, TypeError) as exc:
        raise ValueError(
            f"DIGEST_SENDGRID_WEBHOOK_PUBLIC_KEY is not a public key ({exc}); paste the Verification Key "
            "from SendGrid's Mail Settings > Signed Event Webhook"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("DIGEST_SENDGRID_WEBHOOK_PUBLIC_KEY is not an ECDSA P-256 key")
    return key


def verify(public_key: str, signature: str | None, timestamp: str | None, body: bytes, *, now: datetime) -> None:
    if not signature or not timestamp:
        raise SignatureError("the request is not signed (no signature or timestamp header)")
    try:
        sent_at = int(timestamp.strip())
    except ValueError:
        raise SignatureError("the signature timestamp is not a Unix time") from None
    age = now.timestamp() - sent_at
    if age > MAX_AGE_SECONDS or age < -MAX_AGE_SECONDS:
        raise SignatureError(f"the signature timestamp is {int(age)} s away from now (more than 10 minutes)")
    try:
        raw_signature = base64.b64decode(signature.strip(), validate=True)
        load_public_key(public_key).verify(
            raw_signature, timestamp.strip().encode("ascii") + body, ec.ECDSA(hashes.SHA256())
        )
    except (InvalidSignature, binascii.Error, ValueError, UnicodeEncodeError):
        raise SignatureError("the signature does not match the body and timestamp") from None


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def parse(body: bytes) -> list[EventBody]:
    try:
        events = json.loads(body, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadEvents(f"the body is not JSON: {exc}") from None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise BadEvents("the body must be a JSON array of event objects")
    return cast(list[EventBody], events)


def effect(event: EventBody) -> str | None:
    """The status this event puts the subscriber in, if any."""
    kind = event.get("event")
    if kind == "bounce":
        return "bounced" if str(event.get("type", "bounce")).lower() == "bounce" else None
    if kind == "dropped":
        reason = str(event.get("reason", "")).lower()
        # "Invalid SMTPAPI header" is our request's fault, not the address's.
        address_problem = "bounced address" in reason or (reason.startswith("invalid") and "smtpapi" not in reason)
        return "bounced" if address_problem else None
    if kind == "spamreport":
        return "complained"
    if kind in ("unsubscribe", "group_unsubscribe"):
        return "unsubscribed"
    return None


@dataclass
class EventReport:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    status_changes: int = 0


def _occurred_at(value: object) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), UTC) if isinstance(value, str | int | float) else None
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _row_id(value: object) -> int | None:
    """A store row id from an event's custom_args (strings, as SendGrid sends them back), if it is one."""
    try:
        number = int(value) if isinstance(value, str | int | float) else 0  # 0: not a row id
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**31 else None


def event_key(event: EventBody) -> str:
    """The event's id for deduplication: SendGrid's sg_event_id, else a hash of the event itself."""
    given = event.get("sg_event_id")
    if given not in (None, ""):
        return str(given)[:200]
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


# Events SendGrid sends only for a message it took in: any of them proves its request was accepted.
ACCEPTED_EVENTS = frozenset({"processed", "delivered", "dropped", "bounce", "deferred"})


@dataclass(frozen=True)
class BatchClaim:
    """What an event says about the request that carried its message (our custom_args)."""

    issue_id: int
    message_id: str | None  # the request's X-Message-Id: sg_message_id up to its first dot


def batch_claims(events: list[EventBody]) -> dict[int, BatchClaim]:
    """Batch id -> claim, from the events that prove a request was accepted."""
    claims: dict[int, BatchClaim] = {}
    for event in events:
        if event.get("event") not in ACCEPTED_EVENTS:
            continue
        batch_id, issue_id = _row_id(event.get("batch_id")), _row_id(event.get("issue_id"))
        if batch_id is None or issue_id is None or batch_id in claims:
            continue
        message = event.get("sg_message_id")
        message_id = None
        if isinstance(message, str) and message.split(".", 1)[0]:
            message_id = message.split(".", 1)[0][:200]
        claims[batch_id] = BatchClaim(issue_id, message_id)
    return claims


def _email(event: EventBody) -> str | None:
    value = event.get("email")
    return value.strip().lower()[:320] if isinstance(value, str) and value.strip() else None


class _EventRow(TypedDict):
    provider_event_id: str
    type: str
    email: str | None
    issue_id: int | None
    subscriber_id: int | None
    payload: EventBody
    occurred_at: datetime | None
    received_at: datetime


def store_events(session: Session, events: list[EventBody], *, now: datetime) -> EventReport:
    """Insert the batch (duplicates skipped), then apply the status changes of the new events."""
    report = EventReport(received=len(events))
    emails = {e for e in map(_email, events) if e}
    subscriber_ids: dict[str, int] = {}
    for chunk in _chunks(sorted(emails), CHUNK):
        query = select(Subscriber.email, Subscriber.id).where(Subscriber.email.in_(chunk))
        subscriber_ids.update((email, id_) for email, id_ in session.execute(query))
    wanted_issues = {i for i in (_row_id(e.get("issue_id")) for e in events) if i}
    known_issues = set(session.scalars(select(Issue.id).where(Issue.id.in_(wanted_issues)))) if wanted_issues else set()

    rows: list[_EventRow] = []
    seen: set[str] = set()
    for event in events:
        event_id = event_key(event)
        if event_id in seen:
            continue
        seen.add(event_id)
        email = _email(event)
        issue_id = _row_id(event.get("issue_id"))
        rows.append(
            {
                "provider_event_id": event_id,
                "type": str(event.get("event") or "unknown")[:50],
                "email": email,
                "issue_id": issue_id if issue_id in known_issues else None,
                "subscriber_id": subscriber_ids.get(email) if email else None,
                "payload": event,
                "occurred_at": _occurred_at(event.get("timestamp")),
                "received_at": now,
            }
        )

    new_ids = set(_insert_events(session, rows))
    report.stored = len(new_ids)
    report.duplicates = report.received - report.stored

    acting = [
        (row, status)
        for row in rows
        if row["email"] is not None
        and (status := effect(row["payload"])) is not None
        # A retry of an event already acted on does nothing more.
        and row["provider_event_id"] in new_ids
    ]
    strangers = {
        email: f"sendgrid {row['type']}"
        for row, _ in acting
        if row["subscriber_id"] is None and (email := row["email"]) is not None
    }
    if strangers:
        suppressions = [
            {"email_hash": store.email_hash(a), "reason": r[:50], "created_at": now} for a, r in strangers.items()
        ]
        _insert_suppressions(session, suppressions)
    ids = sorted({row["subscriber_id"] for row, _ in acting if row["subscriber_id"] is not None})
    subscribers = {s.id: s for s in session.scalars(select(Subscriber).where(Subscriber.id.in_(ids)))} if ids else {}
    for row, new_status in acting:
        known = row["subscriber_id"]
        subscriber = subscribers.get(known) if known is not None else None
        if subscriber is not None and _apply(session, subscriber, row, new_status, now):
            report.status_changes += 1
    return report


def _apply(session: Session, subscriber: Subscriber, row: _EventRow, new_status: str, now: datetime) -> bool:
    if _RANK[new_status] <= _RANK[subscriber.status]:
        return False
    event = row["payload"]
    detail = event.get("reason") or event.get("type") or ""
    cause = f"sendgrid {event.get('event')}" + (f": {str(detail)[:200]}" if detail else "")
    if row["provider_event_id"] and not row["provider_event_id"].startswith("sha256:"):
        cause += f" (event {row['provider_event_id']})"
    return store.set_status(session, subscriber, new_status, cause, now)


# PostgreSQL: the whole batch as one JSON parameter, unpacked by the server. A multi-row VALUES list
# of 8,000 placeholders, or text arrays of JSON, cost psycopg more to build than the server takes to insert.
_PG_EVENTS = """
INSERT INTO events (provider_event_id, type, email, issue_id, subscriber_id, payload, occurred_at, received_at)
SELECT provider_event_id, type, email, issue_id, subscriber_id, payload, occurred_at, received_at
FROM json_to_recordset(%(rows)s::json) AS r(provider_event_id text, type text, email text, issue_id int,
     subscriber_id int, payload json, occurred_at timestamp, received_at timestamp)
ON CONFLICT DO NOTHING
RETURNING provider_event_id
"""
_PG_SUPPRESSIONS = """
INSERT INTO suppressions (email_hash, reason, created_at)
SELECT email_hash, reason, created_at
FROM json_to_recordset(%(rows)s::json) AS r(email_hash text, reason text, created_at timestamp)
ON CONFLICT DO NOTHING
"""


def _as_json_rows(rows: Sequence[Mapping[str, object]]) -> str:
    def plain(value: object) -> object:
        # Naive UTC, as the store keeps every time (see digest.store.models.UTCDateTime).
        return value.astimezone(UTC).replace(tzinfo=None).isoformat() if isinstance(value, datetime) else value

    return json.dumps([{k: plain(v) for k, v in row.items()} for row in rows])


def _insert_events(session: Session, rows: list[_EventRow]) -> list[str]:
    """Insert, skipping duplicate sg_event_ids; returns the provider ids of the rows inserted."""
    if not rows:
        return []
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        return list(connection.exec_driver_sql(_PG_EVENTS, {"rows": _as_json_rows(rows)}).scalars())
    # SQLite: an executemany, which SQLAlchemy sends as multi-row INSERTs from one cached statement.
    statement = store.insert_ignoring_duplicates(session, _EVENTS).returning(_EVENTS.c.provider_event_id)
    return list(connection.execute(statement, rows).scalars())


def _insert_suppressions(session: Session, rows: list[dict[str, object]]) -> None:
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(_PG_SUPPRESSIONS, {"rows": _as_json_rows(rows)})
        return
    connection.execute(store.insert_ignoring_duplicates(session, _SUPPRESSIONS), rows)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
