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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from math import isfinite
from typing import Any, NoReturn, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key
from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from digest.errors import UsageError
from subscribers import store
from subscribers.models import Subscriber

MAX_AGE_SECONDS = 600
_RANK = {"pending": 0, "active": 0, "unsubscribed": 1, "bounced": 2, "complained": 3}
# One event as SendGrid posts it: JSON, whatever its fields hold.
EventBody = dict[str, Any]


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


def _number(text: str) -> float | str:
    # 1e400 is JSON but no finite number: kept as its text, since the store's JSON takes no Infinity.
    value = float(text)
    return value if isfinite(value) else text


def parse(body: bytes) -> list[EventBody]:
    try:
        events = json.loads(body, parse_constant=_no_constants, parse_float=_number)
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


def _text(value: str) -> str:
    """A string the store's text columns take: no NUL, no lone surrogate (JSON allows both, text does not)."""
    if value.isascii() and "\x00" not in value:
        return value
    return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _stored_time(value: datetime | None) -> str | None:
    # The text SQLAlchemy keeps a DateTime as on SQLite, which PostgreSQL reads as a timestamp too.
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


@dataclass
class _New:
    """An event of the batch, as stored: its key and the columns the effects and counts need."""

    key: str
    kind: str
    email: str | None
    payload: EventBody
    issue_id: int | None = None
    subscriber_id: int | None = None
    new: bool = False  # inserted by this request (not a duplicate)


def store_events(session: Session, events: list[EventBody], *, now: datetime) -> EventReport:
    """Insert the batch in one statement (duplicates skipped), count the new events for their issue's
    figures, then apply the status changes of the new events."""
    report = EventReport(received=len(events))
    batch: dict[str, _New] = {}
    rows: list[dict[str, object]] = []
    times: dict[object, str | None] = {}
    for event in events:
        key = _text(event_key(event))
        if key in batch:
            continue
        email = _email(event)
        email = _text(email) if email else None
        kind = _text(str(event.get("event") or "unknown")[:50])
        batch[key] = _New(key, kind, email, event)
        stamp = event.get("timestamp")
        # A batch's events come from a few seconds: each second is turned into the store's text once.
        if not isinstance(stamp, str | int | float):
            occurred = None
        elif (occurred := times.get(stamp, "")) == "":
            occurred = times[stamp] = _stored_time(_occurred_at(stamp))
        rows.append({"k": key, "t": kind, "e": email, "i": _row_id(event.get("issue_id")), "o": occurred, "p": event})
    connection = session.connection()
    inserted = _insert_events(connection, rows, now)
    report.stored = len(inserted)
    report.duplicates = report.received - report.stored

    for key, issue_id, subscriber_id in inserted:
        row = batch[key]
        row.issue_id, row.subscriber_id, row.new = issue_id, subscriber_id, True
    new = [row for row in batch.values() if row.new]  # in the batch's order, as SendGrid sent them

    # Only new events act: a retry of an event already acted on does nothing more.
    acting = [(row, status) for row in new if row.email is not None and (status := effect(row.payload)) is not None]
    strangers = {row.email: f"sendgrid {row.kind}" for row, _ in acting if row.subscriber_id is None and row.email}
    if strangers:
        suppressions = sorted([store.email_hash(a), r[:50], _stored_time(now)] for a, r in strangers.items())
        _run(connection, _SUPPRESSIONS, suppressions)
    report.status_changes = _apply_statuses(session, acting, now)
    # Last: every request for an issue updates the same few count rows, and holds them until it commits.
    count_events(connection, [(r.issue_id, r.kind, r.email, r.subscriber_id, r.payload) for r in new if r.issue_id])
    return report


def _apply_statuses(session: Session, acting: list[tuple[_New, str]], now: datetime) -> int:
    """Move the known subscribers the new events act on, all at once: their statuses read (and locked,
    on PostgreSQL) in id order, each event judged in turn against the status so far, then one UPDATE
    and one INSERT of the history. Returns the number of changes."""
    ids = sorted({row.subscriber_id for row, _ in acting if row.subscriber_id is not None})
    if not ids:
        return 0
    # In id order, so that two requests changing the same people at once wait for each other, never deadlock.
    query = select(Subscriber.id, Subscriber.status).where(Subscriber.id.in_(ids)).order_by(Subscriber.id)
    # FOR NO KEY UPDATE: the events just inserted hold KEY SHARE locks on their subscribers (their foreign
    # key), which FOR UPDATE would wait on across requests.
    status: dict[int, str] = dict(session.execute(query.with_for_update(key_share=True)).all())
    changes: list[list[object]] = []
    at = _stored_time(now)
    for row, new_status in acting:
        known = row.subscriber_id
        if known is None or known not in status or _RANK[new_status] <= _RANK[status[known]]:
            continue
        changes.append([known, status[known], new_status, _text(_cause(row)), at])
        status[known] = new_status
    if changes:
        moved = sorted({cast(int, change[0]) for change in changes})
        connection = session.connection()
        _run(connection, _STATUSES, [[id_, status[id_], at] for id_ in moved])
        _run(connection, _CHANGES, changes)
    return len(changes)


def _cause(row: _New) -> str:
    event = row.payload
    detail = event.get("reason") or event.get("type") or ""
    cause = f"sendgrid {event.get('event')}" + (f": {str(detail)[:200]}" if detail else "")
    if row.key and not row.key.startswith("sha256:"):
        cause += f" (event {row.key})"
    return cause


# --- the figures' running counts ---------------------------------------------------------------------

# Event types whose distinct people an issue's figures show (delivered, opened, clicked).
PEOPLE_COUNTED = frozenset({"delivered", "open", "click"})
# One event as counted: issue id, type, address, subscriber id (as stored), payload.
CountedEvent = tuple[int, str, str | None, int | None, EventBody]


def without_utm(url: str) -> str:
    """A clicked URL as an article's link is matched: utm_* parameters, fragment and letter case of the
    host taken off, since the issue's links carry them (`digest.email.render.with_utm`)."""
    parts = urlsplit(url.strip())
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not k.lower().startswith("utm_")]
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, urlencode(query), ""))


def link_key(url: object) -> int:
    """The `link` a click on `url` is counted under: a hash of the cleaned URL; 0 for no URL."""
    cleaned = without_utm(url) if isinstance(url, str) else ""
    return store.hash62(cleaned) if cleaned else 0


def status_kind(status: str) -> str:
    return f"status:{status}"


person_key = store.person_key


def status_person(subscriber_id: int | None, email: str) -> int:
    """One person an event acted on: the subscriber's id when known (positive), else the address's hash
    (negative), so that the figures can join them with the subscribers' own history."""
    return subscriber_id if subscriber_id is not None else -1 - store.hash62(email)


def count_events(connection: Connection, events: Sequence[CountedEvent]) -> None:
    """Add new events (each stored just now, once) to their issues' counts, in the caller's transaction.

    A person is counted once per issue and kind (and link): the first-seen row in event_people is the
    proof, so a second open adds to the events but not to the people. Clicks are counted per cleaned
    URL too, for the articles' rows. Rows are written in key order, so concurrent webhooks wait for each
    other on a shared row rather than deadlock."""
    if not events:
        return
    counts: dict[tuple[int, str, int], list[int]] = {}
    people: set[tuple[int, str, int, int]] = set()
    links: dict[object, int] = {}
    for issue_id, kind, email, subscriber_id, payload in events:
        counts.setdefault((issue_id, kind, 0), [0, 0])[0] += 1
        if kind in PEOPLE_COUNTED:
            # A click without an address still is someone: the figures always counted it as one.
            person = person_key(email or "") if (email or kind == "click") else None
            if person is not None:
                people.add((issue_id, kind, 0, person))
            if kind == "click":
                url = payload.get("url")
                key = url if isinstance(url, str) else None
                if (link := links.get(key)) is None:
                    link = links[key] = link_key(url)
                if link:
                    counts.setdefault((issue_id, kind, link), [0, 0])[0] += 1
                    if person is not None:
                        people.add((issue_id, kind, link, person))
        status = effect(payload)
        if status and email:
            kind_of_status = status_kind(status)
            counts.setdefault((issue_id, kind_of_status, 0), [0, 0])[0] += 1
            people.add((issue_id, kind_of_status, 0, status_person(subscriber_id, email)))
    if people:
        for issue_id, kind, link in _run(connection, _PEOPLE, sorted(people), returning=True):
            counts[(issue_id, kind, link)][1] += 1
    _run(connection, _COUNTS, sorted([*key, *value] for key, value in counts.items()))


# --- the statements ----------------------------------------------------------------------------------
# Each takes the whole batch as one JSON parameter that the store unpacks (json_array_elements on
# PostgreSQL, json_each on SQLite): one statement and one round trip per batch, and a parameter the
# JSON encoder builds in C. Rows are [column, ...] lists; $N / ->N pick the columns.


@dataclass(frozen=True)
class _Statement:
    postgresql: str
    sqlite: str


# The subscriber and the issue are joined by the store, not looked up first; ORDER BY keeps the rows in
# key order (see count_events) whatever join the planner picks.
_EVENTS = _Statement(
    # json_to_recordset reads each row once; ->> on a json value would parse the row again per column.
    postgresql="""
INSERT INTO events (provider_event_id, type, email, issue_id, subscriber_id, payload, occurred_at, received_at)
SELECT r.k, r.t, r.e, i.id, s.id, r.p, r.o, %(now)s::timestamp
FROM json_to_recordset(%(rows)s::json) AS r(k text, t text, e text, i int, o timestamp, p json)
LEFT JOIN issues AS i ON i.id = r.i
LEFT JOIN subscribers AS s ON s.email = r.e
ORDER BY r.k
ON CONFLICT DO NOTHING RETURNING provider_event_id, issue_id, subscriber_id""",
    sqlite="""
INSERT INTO events (provider_event_id, type, email, issue_id, subscriber_id, payload, occurred_at, received_at)
SELECT json_extract(r.value, '$.k'), json_extract(r.value, '$.t'), json_extract(r.value, '$.e'), i.id, s.id,
       json_extract(r.value, '$.p'), json_extract(r.value, '$.o'), :now
FROM json_each(:rows) AS r
LEFT JOIN issues AS i ON i.id = json_extract(r.value, '$.i')
LEFT JOIN subscribers AS s ON s.email = json_extract(r.value, '$.e')
WHERE true
ON CONFLICT DO NOTHING RETURNING provider_event_id, issue_id, subscriber_id""",
)
_SUPPRESSIONS = _Statement(
    postgresql="""
INSERT INTO suppressions (email_hash, reason, created_at)
SELECT r.v->>0, r.v->>1, (r.v->>2)::timestamp FROM json_array_elements(%(rows)s::json) AS r(v)
ON CONFLICT DO NOTHING""",
    sqlite="""
INSERT INTO suppressions (email_hash, reason, created_at)
SELECT json_extract(r.value, '$[0]'), json_extract(r.value, '$[1]'), json_extract(r.value, '$[2]')
FROM json_each(:rows) AS r WHERE true
ON CONFLICT DO NOTHING""",
)
_PEOPLE = _Statement(
    postgresql="""
INSERT INTO event_people (issue_id, kind, link, person)
SELECT (r.v->>0)::int, r.v->>1, (r.v->>2)::bigint, (r.v->>3)::bigint FROM json_array_elements(%(rows)s::json) AS r(v)
ON CONFLICT DO NOTHING RETURNING issue_id, kind, link""",
    sqlite="""
INSERT INTO event_people (issue_id, kind, link, person)
SELECT json_extract(r.value, '$[0]'), json_extract(r.value, '$[1]'), json_extract(r.value, '$[2]'),
       json_extract(r.value, '$[3]')
FROM json_each(:rows) AS r WHERE true
ON CONFLICT DO NOTHING RETURNING issue_id, kind, link""",
)
_COUNTS = _Statement(
    postgresql="""
INSERT INTO event_counts (issue_id, kind, link, events, people)
SELECT (r.v->>0)::int, r.v->>1, (r.v->>2)::bigint, (r.v->>3)::bigint, (r.v->>4)::bigint
FROM json_array_elements(%(rows)s::json) AS r(v)
ON CONFLICT (issue_id, kind, link) DO UPDATE
SET events = event_counts.events + excluded.events, people = event_counts.people + excluded.people""",
    sqlite="""
INSERT INTO event_counts (issue_id, kind, link, events, people)
SELECT json_extract(r.value, '$[0]'), json_extract(r.value, '$[1]'), json_extract(r.value, '$[2]'),
       json_extract(r.value, '$[3]'), json_extract(r.value, '$[4]')
FROM json_each(:rows) AS r WHERE true
ON CONFLICT (issue_id, kind, link) DO UPDATE
SET events = event_counts.events + excluded.events, people = event_counts.people + excluded.people""",
)


_STATUSES = _Statement(
    postgresql="""
UPDATE subscribers SET status = r.v->>1, updated_at = (r.v->>2)::timestamp
FROM json_array_elements(%(rows)s::json) AS r(v) WHERE subscribers.id = (r.v->>0)::int""",
    sqlite="""
UPDATE subscribers SET status = json_extract(r.value, '$[1]'), updated_at = json_extract(r.value, '$[2]')
FROM json_each(:rows) AS r WHERE subscribers.id = json_extract(r.value, '$[0]')""",
)
_CHANGES = _Statement(
    postgresql="""
INSERT INTO subscriber_changes (subscriber_id, from_status, to_status, cause, at)
SELECT (r.v->>0)::int, r.v->>1, r.v->>2, r.v->>3, (r.v->>4)::timestamp
FROM json_array_elements(%(rows)s::json) AS r(v)""",
    sqlite="""
INSERT INTO subscriber_changes (subscriber_id, from_status, to_status, cause, at)
SELECT json_extract(r.value, '$[0]'), json_extract(r.value, '$[1]'), json_extract(r.value, '$[2]'),
       json_extract(r.value, '$[3]'), json_extract(r.value, '$[4]')
FROM json_each(:rows) AS r""",
)


def _json(rows: object) -> str:
    """The batch as the one JSON parameter of a statement. orjson writes a batch of 1,000 events in a tenth
    of the standard library's time; what it refuses (a lone surrogate the parse let through, an integer
    beyond 64 bits) goes through the standard library as before. The payloads hold no NaN or infinity
    (`parse` refuses the one and keeps the other as text), which orjson would write as null."""
    try:
        written = orjson.dumps(rows)
        if b"\\u0000" not in written:
            return written.decode()
    except TypeError:  # orjson.JSONEncodeError
        pass
    # A lone surrogate (JSON lets "\ud800" through) or a NUL is no text PostgreSQL takes: it would refuse
    # the whole post, and SendGrid would retry it for a day. Such strings are stored without the NUL and
    # with "?" for the surrogate, as the event's own columns are (`_text`).
    return json.dumps(_valid_text(rows), separators=(",", ":"), allow_nan=False)


def _valid_text(value: object) -> object:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        return {_valid_text(k): _valid_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_valid_text(v) for v in value]
    return value


def _run(
    connection: Connection, statement: _Statement, rows: Sequence[Sequence[object]], *, returning: bool = False
) -> list[Any]:
    if not rows:
        return []
    # Lists keep their order in JSON: rows go in as sorted, and the store's json functions keep it.
    payload = _json(rows)
    if connection.dialect.name == "postgresql":
        result = connection.exec_driver_sql(statement.postgresql, {"rows": payload})
    else:
        result = connection.exec_driver_sql(statement.sqlite, {"rows": payload})
    # fetchall: one call into the driver for the rows, not one per row through the result's iterator.
    return [tuple(row) for row in result.fetchall()] if returning else []


def _insert_events(
    connection: Connection, rows: list[dict[str, object]], now: datetime
) -> list[tuple[str, int | None, int | None]]:
    """Insert, skipping duplicate keys; returns (key, issue id, subscriber id) of the rows inserted."""
    if not rows:
        return []
    payload = _json(rows)
    if connection.dialect.name == "postgresql":
        params = {"rows": payload, "now": _stored_time(now)}
        result = connection.exec_driver_sql(_EVENTS.postgresql, params)
    else:
        result = connection.exec_driver_sql(_EVENTS.sqlite, {"rows": payload, "now": _stored_time(now)})
    return [(key, issue_id, subscriber_id) for key, issue_id, subscriber_id in result.fetchall()]
