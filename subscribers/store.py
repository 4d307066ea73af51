"""The audience in the store: sign-up with consent, confirm, unsubscribe, preferences, import, export, erase.

Every status change goes through `set_status`, which appends a row to the history with its cause.
Unsubscribes win: nothing here turns an unsubscribed, bounced or complained subscriber back into an
active one without a fresh act of consent by that person (a confirm link, the resubscribe button)
or an operator's explicit `force_consent`.
"""

from __future__ import annotations

import base64
import csv
import functools
import hashlib
import json
import queue
import re
import secrets
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, NamedTuple, cast

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import (
    Table,
    Text,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import BindParameter

from digest.errors import UsageError
from digest.store.db import rowcount
from digest.store.models import Base, Delivery, Event, EventPerson, Issue, UTCDateTime
from subscribers.models import (
    FINAL_STATUSES,
    STATUSES,
    ConfirmationMail,
    Subscriber,
    SubscriberChange,
    Suppression,
    new_link_key,
)
from subscribers.models import email_hash as email_hash  # where the rest of the project finds it
from subscribers.zones import known_zones

CONSENT_SOURCES = ("form", "api", "import")
# A second sign-up of a pending address re-sends the confirmation mail, but not more often than this.
CONFIRMATION_RESEND_AFTER = timedelta(minutes=1)
# A claim to send the confirmation that was never marked sent (the process died in between) stops
# other sign-ups of the address for this long only, not for the whole CONFIRMATION_RESEND_AFTER.
CONFIRMATION_CLAIM = timedelta(seconds=10)


NAME_MAX = 300  # the column's length
# Bidirectional overrides and isolates can make a name read differently from what it holds; a byte
# order mark is invisible. Joiners (U+200C, U+200D) stay: some scripts and emoji need them.
_INVISIBLE = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff")


class InvalidInput(UsageError, ValueError):
    """A field from outside that we refuse; the message says what is wrong and what to do."""

    http_status = 422


class InvalidAddress(InvalidInput):
    pass


class InvalidName(InvalidInput):
    pass


class InvalidTimezone(InvalidInput):
    pass


def normalize_email(address: str) -> str:
    """Validated (syntax only, no DNS) and lower-cased, so one person is one row.

    A line break or control character anywhere is refused, not stripped: an address is never guessed.
    An internationalized domain is kept in its ASCII (IDNA) form, so every provider can carry it; a
    non-ASCII part before the @ needs SMTPUTF8, which our providers do not offer, and is refused.
    """
    if not isinstance(address, str) or not address.strip():
        raise InvalidAddress("an e-mail address is required")
    if (plain := _plain_email(address)) is not None:
        return plain
    if bad := next((c for c in address if _is_control(c)), None):
        raise InvalidAddress(
            f"the address contains a line break or control character (U+{ord(bad):04X}); type it on one line"
        )
    try:
        result = validate_email(address.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        ascii_only = "before the @-sign are not" in str(exc)
        hint = "; use an address with only ASCII letters before the @" if ascii_only else ""
        raise InvalidAddress(f"{exc}{hint}") from None
    # Without SMTPUTF8 every valid address has an ASCII form.
    return (result.ascii_email or result.normalized).lower()


# A plain ASCII dot-atom before the @ (a subset of what email-validator accepts, which it keeps as given):
# the usual address takes this path, with its domain checked once per domain rather than once per row.
_PLAIN_LOCAL = re.compile(r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*")
_LOCAL_MAX, _ADDRESS_MAX = 64, 254  # email-validator's limits (RFC 5321)


def _plain_email(address: str) -> str | None:
    """normalize_email's result for a plain address, without email-validator's full parse; None for any
    other, which takes the full path (and gets its error message)."""
    local, at, domain = address.strip().rpartition("@")
    if not at or len(local) > _LOCAL_MAX or not _PLAIN_LOCAL.fullmatch(local):
        return None
    if not (domain.isascii() and domain.isprintable()):  # the full path names a control character
        return None
    ascii_domain = _checked_domain(domain)
    if ascii_domain is None or len(local) + 1 + len(ascii_domain) > _ADDRESS_MAX:
        return None
    return f"{local}@{ascii_domain}".lower()


@functools.lru_cache(maxsize=4096)
def _checked_domain(domain: str) -> str | None:
    """The domain as email-validator normalizes it (its ASCII form), or None when it refuses it."""
    try:
        return validate_email(f"a@{domain}", check_deliverability=False, allow_smtputf8=False).ascii_domain
    except EmailNotValidError:
        return None


def _is_control(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cs") or char in _INVISIBLE or char in "\u2028\u2029"


def clean_name(name: str | None) -> str | None:
    """A person's name as every entry point stores it (form, API, CSV import, `subscribers add`).

    Names end up in mail headers and pages, so nothing in them may break a line or hide text: line
    breaks and tabs become spaces, other control characters, lone surrogates and bidi overrides are
    dropped, runs of spaces become one. Friendlier than refusing: "Ann\\r\\nLee" is stored "Ann Lee".
    Raises InvalidName beyond NAME_MAX characters; an empty result is None (no name).
    """
    if name is None:
        return None
    if not isinstance(name, str):
        raise InvalidName("the name must be text")
    if name.isascii() and name.isprintable():  # the usual name: no control character, NFC already
        name = " ".join(name.split())
        if len(name) > NAME_MAX:
            raise InvalidName(f"the name is {len(name)} characters long; give at most {NAME_MAX}")
        return name or None
    name = unicodedata.normalize("NFC", "".join(" " if c in "\r\n\t\v\f\x85\u2028\u2029" else c for c in name))
    name = " ".join("".join(c for c in name if not _is_control(c)).split())
    if len(name) > NAME_MAX:
        raise InvalidName(f"the name is {len(name)} characters long; give at most {NAME_MAX}")
    return name or None


def clean_timezone(zone: str | None) -> str | None:
    """A reader's IANA zone as every entry point stores it; empty is None (the newsletter's zone applies).

    Checked against the zoneinfo database this process reads (`known_zones`), so a zone that is stored is
    one the plan can compute a local time for. Raises InvalidTimezone otherwise."""
    if zone is None:
        return None
    if not isinstance(zone, str):
        raise InvalidTimezone("the timezone must be text")
    zone = zone.strip()
    if not zone:
        return None
    if zone not in known_zones():
        shown = zone if len(zone) <= 64 and zone.isprintable() else zone[:64].encode("unicode_escape").decode()
        raise InvalidTimezone(
            f"{shown!r} is not a timezone of the zoneinfo database; use an IANA name such as Europe/Lisbon"
        )
    return zone


def hash62(text: str) -> int:
    """A 62-bit hash of a text (an address, a link), positive in a BIGINT on every store."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") & ((1 << 62) - 1)


def person_key(address: str) -> int:
    """One reader among an issue's people in the figures' running counts (event_people): a hash of
    the address, never the address."""
    return hash62(address)


def insert_ignoring_duplicates(session: Session, model: type[Base] | Table) -> postgresql.Insert | sqlite.Insert:
    """INSERT … ON CONFLICT DO NOTHING on either store, so racing writers never fail on a unique key."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model).on_conflict_do_nothing()
    return sqlite.insert(model).on_conflict_do_nothing()


def set_status(session: Session, subscriber: Subscriber, status: str, cause: str, now: datetime) -> bool:
    """Move to `status` and append the change to the history; False when it was already there."""
    if status not in STATUSES:
        raise ValueError(f"unknown subscriber status {status!r}")
    if subscriber.status == status:
        return False
    session.add(
        SubscriberChange(
            subscriber_id=subscriber.id, from_status=subscriber.status, to_status=status, cause=cause, at=now
        )
    )
    subscriber.status = status
    subscriber.updated_at = now
    return True


def is_suppressed(session: Session, address: str) -> bool:
    return session.scalar(select(Suppression.id).where(Suppression.email_hash == email_hash(address))) is not None


def suppress(session: Session, address: str, reason: str, now: datetime) -> None:
    session.execute(
        insert_ignoring_duplicates(session, Suppression).values(
            email_hash=email_hash(address), reason=reason[:50], created_at=now
        )
    )


def lift_suppression(session: Session, address: str) -> None:
    session.execute(delete(Suppression).where(Suppression.email_hash == email_hash(address)))


def find(session: Session, address: str) -> Subscriber | None:
    return session.scalars(select(Subscriber).where(Subscriber.email == normalize_email(address))).first()


def find_by_link_key(session: Session, link_key: str) -> Subscriber | None:
    return session.scalars(select(Subscriber).where(Subscriber.link_key == link_key)).first()


# --- sign-up, confirmation, unsubscribe --------------------------------------------------------------


@dataclass(frozen=True)
class Consent:
    """How someone asked to be on the list: the consent record kept on the subscriber."""

    source: str  # form, api, import
    ip: str | None = None
    user_agent: str | None = None


@dataclass
class SignUpResult:
    subscriber: Subscriber
    created: bool
    send_confirmation: bool  # this request claimed the (re)sending of the confirmation mail


def sign_up(
    session: Session,
    address: str,
    name: str | None,
    consent: Consent,
    *,
    now: datetime,
    double_opt_in: bool,
    timezone: str | None = None,
) -> SignUpResult:
    """Add a sign-up, or renew the consent of someone already there. Safe under concurrent calls.

    Someone who once unsubscribed, bounced or complained always goes through confirmation, even with
    single opt-in: otherwise anyone could put them back on the list by typing their address.
    """
    address = normalize_email(address)
    name = clean_name(name)
    timezone = clean_timezone(timezone)
    user_agent = (consent.user_agent or "")[:1000] or None
    status = "pending" if double_opt_in else "active"
    # The insert comes first, so that SQLite takes its write lock at once (no read-then-upgrade race),
    # and two racing sign-ups of one address make one row: the loser's insert does nothing.
    inserted = session.execute(
        insert_ignoring_duplicates(session, Subscriber)
        .values(
            email=address,
            name=name,
            status=status,
            consent_source=consent.source,
            consent_at=now,
            consent_ip=consent.ip,
            consent_user_agent=user_agent,
            confirmed_at=None if double_opt_in else now,
            confirmation_sent_at=_claim_stamp(now) if double_opt_in else None,
            preferences={},
            link_key=new_link_key(),
            timezone=timezone,
            created_at=now,
            updated_at=now,
        )
        .returning(Subscriber.id)
    ).scalar()
    if inserted is not None:
        session.add(
            SubscriberChange(
                subscriber_id=inserted,
                from_status=None,
                to_status=status,
                cause=f"sign-up via {consent.source}",
                at=now,
            )
        )
        if not double_opt_in:
            lift_suppression(session, address)
        subscriber = session.get_one(Subscriber, inserted)
        return SignUpResult(subscriber, created=True, send_confirmation=double_opt_in)

    subscriber = session.scalars(select(Subscriber).where(Subscriber.email == address)).one()
    if subscriber.status == "active":
        # Anyone can type someone else's address into the form: only the API, which holds a token,
        # may fill in an active subscriber's missing name; a visitor changes nothing of theirs.
        if name and not subscriber.name and consent.source == "api":
            subscriber.name, subscriber.updated_at = name, now
        if timezone and consent.source == "api" and subscriber.timezone != timezone:
            subscriber.timezone, subscriber.updated_at = timezone, now
        return SignUpResult(subscriber, created=False, send_confirmation=False)
    # Pending, or back after leaving: a fresh consent record, and confirmation before any issue is sent.
    subscriber.consent_source, subscriber.consent_at = consent.source, now
    subscriber.consent_ip, subscriber.consent_user_agent = consent.ip, user_agent
    if name:
        subscriber.name = name
    if timezone:
        subscriber.timezone = timezone
    subscriber.updated_at = now
    set_status(session, subscriber, "pending", f"sign-up again via {consent.source}", now)
    session.flush()
    return SignUpResult(subscriber, created=False, send_confirmation=claim_confirmation(session, subscriber, now))


_NEW_SUBSCRIBER_COLUMNS = (
    "email",
    "email_hash",
    "name",
    "status",
    "consent_source",
    "consent_at",
    "consent_ip",
    "consent_user_agent",
    "confirmed_at",
    "confirmation_sent_at",
    "preferences",
    "link_key",
    "timezone",
    "created_at",
    "updated_at",
)


@functools.cache
def _sign_up_statements(dialect_name: str, double_opt_in: bool) -> tuple[Executable, ...]:
    """sign_up_new's statements, built once per process with every value bound by name (`new_<column>`,
    `change_status`, `change_cause`, `now`, and on SQLite `new_id`): a statement object used again keeps its cache key,
    which SQLAlchemy would otherwise work out anew, over every value, at each sign-up.

    PostgreSQL: one statement, the insert a CTE that the history row and the queued mail (or the lifted
    suppression) read their id from. SQLite: the insert, then the others with the id it returned.
    ON CONFLICT DO NOTHING: of two racing sign-ups of one address, the loser inserts nothing, and so
    neither history nor mail."""
    table = cast(Table, Subscriber.__table__)
    # The columns sign_up_new gives values for; any other takes its server default (or NULL).
    columns = list(_NEW_SUBSCRIBER_COLUMNS)
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    inserted = (
        dialect.insert(table)
        .values({c: bindparam(f"new_{c}", type_=table.c[c].type) for c in columns})
        .on_conflict_do_nothing()
        .returning(table.c.id)
    )
    now = bindparam("now", type_=UTCDateTime())
    status, cause = bindparam("change_status", type_=Text()), bindparam("change_cause", type_=Text())
    history_columns = ["subscriber_id", "from_status", "to_status", "cause", "at"]
    queue_columns = ["subscriber_id", "status", "attempts", "due_at", "created_at"]
    address_hash = bindparam("new_email_hash", type_=table.c.email_hash.type)
    if dialect_name != "postgresql":
        new_id: BindParameter[int] = bindparam("new_id")
        history = insert(SubscriberChange).values(
            dict(zip(history_columns, (new_id, None, status, cause, now), strict=True))
        )
        follow_up: Executable = (
            insert(ConfirmationMail).values(dict(zip(queue_columns, (new_id, "pending", 0, now, now), strict=True)))
            if double_opt_in
            else delete(Suppression).where(Suppression.email_hash == address_hash)
        )
        return inserted, history, follow_up
    new = inserted.cte("new")
    history_rows = insert(SubscriberChange).from_select(history_columns, select(new.c.id, null(), status, cause, now))
    follow_up = (
        insert(ConfirmationMail).from_select(queue_columns, select(new.c.id, literal("pending"), literal(0), now, now))
        if double_opt_in
        else delete(Suppression).where(Suppression.email_hash == address_hash, exists(select(new.c.id)))
    )
    return (select(new.c.id).add_cte(history_rows.cte("history"), follow_up.cte("follow_up")),)


def sign_up_new(
    connection: Connection,
    address: str,
    name: str | None,
    consent: Consent,
    *,
    now: datetime,
    double_opt_in: bool,
    timezone: str | None = None,
) -> SignUpResult | None:
    """`sign_up` of an address the store does not hold yet, in as few statements as the store allows
    (what a busy sign-up form costs); None, with nothing changed, when the address is there already:
    the caller then runs `sign_up`, which renews the consent of a known address.

    The new subscriber, its history row and, with double opt-in, its confirmation mail in the queue
    (subscribers.confirmation) marked as sent now (the throttle starts at once), or, with single
    opt-in, the lifting of a suppression of the address. On PostgreSQL that is one statement, atomic
    by itself: run it in autocommit (one round trip). On SQLite, call it inside a transaction."""
    address = normalize_email(address)
    name = clean_name(name)
    timezone = clean_timezone(timezone)
    status = "pending" if double_opt_in else "active"
    cause = f"sign-up via {consent.source}"
    row: dict[str, Any] = {
        "email": address,
        "email_hash": email_hash(address),
        "name": name,
        "status": status,
        "consent_source": consent.source,
        "consent_at": now,
        "consent_ip": consent.ip,
        "consent_user_agent": (consent.user_agent or "")[:1000] or None,
        "confirmed_at": None if double_opt_in else now,
        "confirmation_sent_at": now if double_opt_in else None,
        "preferences": {},
        "link_key": new_link_key(),
        "timezone": timezone,
        "created_at": now,
        "updated_at": now,
    }
    statements = _sign_up_statements(connection.dialect.name, double_opt_in)
    values = {f"new_{key}": row[key] for key in _NEW_SUBSCRIBER_COLUMNS}
    values.update(change_status=status, change_cause=cause, now=now)
    subscriber_id = connection.execute(statements[0], values).scalar()
    if subscriber_id is not None and len(statements) > 1:  # SQLite: the rows that go with it
        values["new_id"] = subscriber_id
        for statement in statements[1:]:
            connection.execute(statement, values)
    if subscriber_id is None:
        return None
    # Not attached to any session: what the caller reads of it (the API's answer) is all here.
    return SignUpResult(Subscriber(id=subscriber_id, **row), created=True, send_confirmation=double_opt_in)


def _claim_stamp(now: datetime) -> datetime:
    # Backdated so that the claim lapses CONFIRMATION_CLAIM from now unless mark_confirmation_sent
    # moves it to the time the mail went out: one column serves as both claim and throttle.
    return now - CONFIRMATION_RESEND_AFTER + CONFIRMATION_CLAIM


def claim_confirmation(session: Session, subscriber: Subscriber, now: datetime) -> bool:
    """Compare-and-set on confirmation_sent_at: of many racing requests, one sends the mail.

    The claim is provisional until mark_confirmation_sent: if the sender dies before the mail goes
    out, the next sign-up of the address may claim again after CONFIRMATION_CLAIM.
    """
    stamp = _claim_stamp(now)
    result = session.execute(
        update(Subscriber)
        .where(
            Subscriber.id == subscriber.id,
            or_(
                Subscriber.confirmation_sent_at.is_(None),
                Subscriber.confirmation_sent_at < now - CONFIRMATION_RESEND_AFTER,
            ),
        )
        .values(confirmation_sent_at=stamp)
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) == 1:
        subscriber.confirmation_sent_at = stamp
        return True
    return False


def mark_confirmation_sent(session: Session, subscriber_id: int, now: datetime) -> None:
    """The mail went out: no other confirmation for this address before CONFIRMATION_RESEND_AFTER."""
    session.execute(update(Subscriber).where(Subscriber.id == subscriber_id).values(confirmation_sent_at=now))


def release_confirmation(session: Session, subscriber_id: int) -> None:
    """The mail could not be sent: let the next sign-up try again at once."""
    session.execute(update(Subscriber).where(Subscriber.id == subscriber_id).values(confirmation_sent_at=None))


def confirm(session: Session, subscriber: Subscriber, *, now: datetime) -> bool:
    """Pending → active. An old confirm link never undoes a later unsubscribe."""
    if subscriber.status != "pending":
        return False
    subscriber.confirmed_at = now
    set_status(session, subscriber, "active", "confirmed by link", now)
    # Erased earlier and back of their own accord: the suppression would keep them from every issue.
    lift_suppression(session, subscriber.email)
    return True


def unsubscribe(session: Session, subscriber: Subscriber, cause: str, *, now: datetime) -> bool:
    """Idempotent. Bounced and complained stay as they are: they are out already, for a stronger reason."""
    if subscriber.status in ("unsubscribed", "bounced", "complained"):
        return False
    return set_status(session, subscriber, "unsubscribed", cause, now)


@dataclass(frozen=True)
class Unsubscribed:
    """What the page after an unsubscribe shows: the address and its status now."""

    email: str
    status: str
    changed: bool  # False: it was out already (unsubscribed, bounced or complained)


# PostgreSQL: the lock, the change and its history row in one statement, so one round trip in
# autocommit. FOR UPDATE makes a second click that raced this one wait and then see "unsubscribed".
_UNSUBSCRIBE_PG = text(
    """
    WITH target AS (
        SELECT id, email, status FROM subscribers WHERE link_key = :link_key FOR UPDATE
    ), changed AS (
        UPDATE subscribers SET status = 'unsubscribed', updated_at = :now
        FROM target WHERE subscribers.id = target.id AND target.status NOT IN ('unsubscribed', 'bounced', 'complained')
        RETURNING subscribers.id, target.status AS from_status
    ), logged AS (
        INSERT INTO subscriber_changes (subscriber_id, from_status, to_status, cause, at)
        SELECT id, from_status, 'unsubscribed', :cause, :now FROM changed
    )
    SELECT target.email, target.status, changed.id IS NOT NULL FROM target LEFT JOIN changed ON changed.id = target.id
    """
).bindparams(bindparam("now", type_=UTCDateTime()))
# SQLite has no data-changing CTE: the history row is written first, from the row as it is, which
# takes the write lock at once (no reader can turn writer halfway), then the change, then the row.
_UNSUBSCRIBE_SQLITE_LOG = text(
    """
    INSERT INTO subscriber_changes (subscriber_id, from_status, to_status, cause, at)
    SELECT id, status, 'unsubscribed', :cause, :now FROM subscribers
    WHERE link_key = :link_key AND status NOT IN ('unsubscribed', 'bounced', 'complained')
    """
).bindparams(bindparam("now", type_=UTCDateTime()))
_UNSUBSCRIBE_SQLITE_SET = text(
    "UPDATE subscribers SET status = 'unsubscribed', updated_at = :now "
    "WHERE link_key = :link_key AND status NOT IN ('unsubscribed', 'bounced', 'complained')"
).bindparams(bindparam("now", type_=UTCDateTime()))
_BY_LINK_KEY = text("SELECT email, status FROM subscribers WHERE link_key = :link_key")


def unsubscribe_by_link_key(connection: Connection, link_key: str, cause: str, *, now: datetime) -> Unsubscribed | None:
    """`unsubscribe` for the holder of a signed link, in as few statements as the store allows: what one
    click from a mail client costs. The same rules: bounced and complained stay as they are, a second
    click changes nothing, and the change gets its history row. None when no subscriber has the key.

    On PostgreSQL it is one statement, atomic by itself: run it in autocommit (one round trip). On
    SQLite, call it inside a transaction (three statements, one commit)."""
    values = {"link_key": link_key, "cause": cause, "now": now}
    if connection.dialect.name == "postgresql":
        row = connection.execute(_UNSUBSCRIBE_PG, values).first()
        if row is None:
            return None
        email, status, changed = row
        return Unsubscribed(email, "unsubscribed" if changed else status, bool(changed))
    changed = rowcount(connection.execute(_UNSUBSCRIBE_SQLITE_LOG, values)) > 0
    if changed:
        connection.execute(_UNSUBSCRIBE_SQLITE_SET, values)
    row = connection.execute(_BY_LINK_KEY, {"link_key": link_key}).first()
    return Unsubscribed(row[0], row[1], changed) if row is not None else None


def resubscribe(session: Session, subscriber: Subscriber, *, now: datetime) -> str:
    """The resubscribe button: back to active if they had confirmed before; otherwise to confirmation.

    Returns the status after. Bounced and complained addresses cannot come back this way: a mailbox
    that bounced or reported spam needs a fresh sign-up and confirmation.
    """
    if subscriber.status == "unsubscribed" and subscriber.confirmed_at is not None:
        set_status(session, subscriber, "active", "resubscribed from the unsubscribe page", now)
    elif subscriber.status == "unsubscribed":
        set_status(session, subscriber, "pending", "resubscribed from the unsubscribe page, not yet confirmed", now)
    return subscriber.status


def set_left_out_sections(
    session: Session, subscriber: Subscriber, left_out: Iterable[str], known: list[str], *, now: datetime
) -> list[str]:
    """Store the sections left out, in the newsletter's order; unknown names are dropped."""
    wanted = set(left_out)
    kept = [s for s in known if s in wanted]
    subscriber.preferences = {**(subscriber.preferences or {}), "exclude_sections": kept}
    subscriber.updated_at = now
    return kept


def set_timezone(session: Session, subscriber: Subscriber, zone: str | None, *, now: datetime) -> str | None:
    """The reader's own choice of zone (None: the newsletter's). An issue already planned keeps the wave
    they were planned in; the zone applies from the next issue."""
    zone = clean_timezone(zone)
    if subscriber.timezone != zone:
        subscriber.timezone, subscriber.updated_at = zone, now
    return zone


# --- the operator's commands ----------------------------------------------------------------------


def add(
    session: Session,
    address: str,
    name: str | None,
    *,
    now: datetime,
    force_consent: bool = False,
    cause: str,
    timezone: str | None = None,
) -> tuple[Subscriber | None, str]:
    """Add (or update) one subscriber as active on the operator's word. Returns (subscriber, outcome).

    outcome is one of added, updated, unchanged, reactivated, kept_out. A `timezone` given replaces the
    stored one; none given keeps it.
    """
    address = normalize_email(address)
    name = clean_name(name)
    timezone = clean_timezone(timezone)
    # Locked until the caller commits (PostgreSQL), so a concurrent unsubscribe is never overwritten.
    subscriber = session.scalars(select(Subscriber).where(Subscriber.email == address).with_for_update()).first()
    if subscriber is None:
        if is_suppressed(session, address):
            if not force_consent:
                return None, "kept_out"
            lift_suppression(session, address)
        subscriber = Subscriber(
            email=address,
            name=name,
            status="active",
            consent_source="import",
            consent_at=now,
            confirmed_at=now,
            preferences={},
            timezone=timezone,
            created_at=now,
            updated_at=now,
        )
        session.add(subscriber)
        session.flush()
        session.add(
            SubscriberChange(subscriber_id=subscriber.id, from_status=None, to_status="active", cause=cause, at=now)
        )
        return subscriber, "added"
    outcome = "unchanged"
    if subscriber.status in FINAL_STATUSES:
        if not force_consent:
            return subscriber, "kept_out"
        subscriber.consent_source, subscriber.consent_at, subscriber.confirmed_at = "import", now, now
        set_status(session, subscriber, "active", f"{cause} (--force-consent)", now)
        outcome = "reactivated"
    elif subscriber.status == "pending":
        # The operator vouches for the consent the confirmation would have given.
        subscriber.consent_source, subscriber.consent_at, subscriber.confirmed_at = "import", now, now
        set_status(session, subscriber, "active", cause, now)
        outcome = "updated"
    if name and subscriber.name != name:
        subscriber.name, subscriber.updated_at = name, now
        outcome = "updated" if outcome == "unchanged" else outcome
    if timezone and subscriber.timezone != timezone:
        subscriber.timezone, subscriber.updated_at = timezone, now
        outcome = "updated" if outcome == "unchanged" else outcome
    return subscriber, outcome


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
    reactivated: int = 0  # only with force_consent
    kept_out: int = 0  # unsubscribed, bounced, complained or suppressed: never reactivated by an import
    rejected: list[Rejected] = field(default_factory=list)


def read_csv(handle: IO[str], name: str) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows with their line numbers, one at a time; the header must name an `email` column."""
    reader = csv.DictReader(handle)
    try:
        fields = [f.strip().lower() for f in reader.fieldnames or []]
    except csv.Error as exc:
        raise UsageError(f"{name}: line 1: not CSV: {exc}") from None
    if "email" not in fields:
        raise UsageError(f"{name}: line 1: the header needs an 'email' column (found {fields or 'nothing'})")
    reader.fieldnames = fields
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise UsageError(f"{name}: line {reader.line_num}: not CSV: {exc}") from None
        yield reader.line_num, {k: (v or "").strip() for k, v in row.items() if k and isinstance(v, str)}


# An import writes in short transactions: a writer holds SQLite's one write lock (PostgreSQL's row locks)
# until it commits, and a sign-up or one-click unsubscribe from the web must not wait for a whole file.
# Rows are checked in Python first, outside any transaction; then each chunk is merged by a few
# set-wise statements (PostgreSQL: COPY into a temporary table, one INSERT ... SELECT) and committed.
IMPORT_BATCH_ROWS = 10_000  # SQLite: one chunk holds the write lock for 0.1 s (a new store) to 0.5 s (a million)
IMPORT_BATCH_ROWS_POSTGRESQL = 10_000  # row locks only: a web write waits only on the rows it touches
# Between two chunks on SQLite the import leaves the lock free at least this long (checking the next chunk
# counts): a writer waiting for the lock retries every 100 ms at most (SQLite's busy handler).
IMPORT_PAUSE_SECONDS = 0.12
# SQLite, on the import's own connection only, restored after it:
# - a page cache that holds the indexes of a large list: each chunk adds to every index at random places;
# - no checkpoint at each commit: the import checkpoints the log itself every IMPORT_CHECKPOINT_CHUNKS chunks,
#   during its pause (the lock is free then): with every chunk touching most index pages again, one checkpoint
#   writes each page once for several chunks instead of once per chunk; the log file is cut back to 64 MB;
# - the log synced at checkpoints only (safe in WAL mode: a power cut can lose the last chunks, never the
#   store's consistency; the last chunk syncs everything, so what the report says is on disk).
_SQLITE_IMPORT_PRAGMAS = {
    "cache_size": -131_072,  # KiB
    "wal_autocheckpoint": 0,
    "journal_size_limit": 1 << 26,
    "synchronous": 1,  # NORMAL
}
IMPORT_CHECKPOINT_CHUNKS = 8


def count_csv_rows(path: Path) -> int:
    """The data rows of a CSV file (a quoted field may span lines), for a progress bar's total; 0 when unreadable."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return max(sum(1 for _ in csv.reader(handle)) - 1, 0)
    except (OSError, UnicodeDecodeError, csv.Error):
        return 0  # the import itself says what is wrong


class _Row(NamedTuple):
    """One checked CSV row: the values `add` would store (a tuple: a million of them are built per file)."""

    line: int
    email: str
    name: str | None
    timezone: str | None


def _columns(handle: IO[str], name: str) -> tuple[Any, int, int | None, int | None]:
    """A csv reader past the header, and the positions of the email, name and timezone columns, as
    read_csv names them (stripped, lower-cased; a name given twice means its last column)."""
    reader = csv.reader(handle)
    try:
        header = next(reader, [])
    except csv.Error as exc:
        raise UsageError(f"{name}: line 1: not CSV: {exc}") from None
    fields = [f.strip().lower() for f in header]
    if "email" not in fields:
        raise UsageError(f"{name}: line 1: the header needs an 'email' column (found {fields or 'nothing'})")
    where = {f: i for i, f in enumerate(fields)}
    return reader, where["email"], where.get("name"), where.get("timezone")


def _checked_rows(handle: IO[str], name: str, report: ImportReport, counted: list[int]) -> Iterator[_Row]:
    """Every row as read_csv and `add` would see it, checked; a bad row goes to `report.rejected`.
    `counted[0]` is the number of rows read so far (rejected ones included).

    The usual row (a plain ASCII address, an ASCII name, no timezone) is checked inline: at a million
    rows per file, the calls of normalize_email and clean_name per row were a third of the import."""
    reader, at_email, at_name, at_zone = _columns(handle, name)
    domains: dict[str, str | None] = {}
    plain = _PLAIN_ADDRESS.fullmatch
    rows = 0
    while True:
        try:
            values = next(reader)
        except StopIteration:
            counted[0] = rows
            return
        except csv.Error as exc:
            raise UsageError(f"{name}: line {reader.line_num}: not CSV: {exc}") from None
        if not values:  # a blank line: csv.DictReader (read_csv) skips it too
            continue
        rows += 1
        counted[0] = rows
        width = len(values)
        raw = values[at_email].strip() if at_email < width else ""
        person = values[at_name].strip() if at_name is not None and at_name < width else ""
        zone = values[at_zone].strip() if at_zone is not None and at_zone < width else ""
        try:
            email = None
            if (match := plain(raw)) is not None:
                local, domain = match.groups()
                if domain in domains:
                    checked = domains[domain]
                else:
                    checked = domains[domain] = _checked_domain(domain)
                if checked is not None and len(local) + 1 + len(checked) <= _ADDRESS_MAX:
                    email = f"{local}@{checked}".lower()
            if email is None:
                email = normalize_email(raw)
            cleaned: str | None
            if person.isascii() and person.isprintable():
                cleaned = " ".join(person.split())
                if len(cleaned) > NAME_MAX:
                    cleaned = clean_name(cleaned)  # raises InvalidName with its message
            else:
                cleaned = clean_name(person)
            yield _Row(reader.line_num, email, cleaned or None, clean_timezone(zone) if zone else None)
        except InvalidInput as exc:
            report.rejected.append(Rejected(reader.line_num, raw, str(exc)))


# The plain address of _plain_email as one pattern: a dot-atom of at most 64 characters before the last @
# (the local part cannot hold an @), then printable ASCII without spaces for email-validator to check.
_PLAIN_ADDRESS = re.compile(r"((?=[^@]{1,64}@)[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*)@([!-?A-~]*)")


def _link_keys(count: int) -> list[str]:
    """`count` fresh link keys, each what new_link_key gives (16 random bytes, URL-safe base64 without
    padding), from one read of the system's random source and one encoding instead of one per row:
    16 random bytes and 2 zero bytes encode to 24 characters whose first 22 are the key."""
    randomness = secrets.token_bytes(16 * count)
    padded = bytearray(18 * count)
    for k in range(16):
        padded[k::18] = randomness[k::16]
    encoded = base64.urlsafe_b64encode(padded).decode("ascii")
    return [encoded[i : i + 22] for i in range(0, 24 * count, 24)]


class _Merge:
    """Writes checked rows chunk by chunk, each chunk in a transaction of its own, with the outcome `add`
    would give each row one at a time (a chunk never holds one address twice; see import_csv)."""

    def __init__(self, session: Session, *, now: datetime, force_consent: bool, file: str, report: ImportReport):
        self.session, self.now, self.force, self.file, self.report = session, now, force_consent, file, report
        self.postgres = session.get_bind().dialect.name == "postgresql"
        self.rows = IMPORT_BATCH_ROWS_POSTGRESQL if self.postgres else IMPORT_BATCH_ROWS
        self.committed = 0.0
        self.chunks = 0
        self.restore: dict[str, Any] = {}
        if not self.postgres:
            driver = session.connection().connection.driver_connection
            self.restore = {p: driver.execute(f"PRAGMA {p}").fetchone()[0] for p in _SQLITE_IMPORT_PRAGMAS}  # type: ignore[union-attr]
            session.commit()
            for pragma, value in _SQLITE_IMPORT_PRAGMAS.items():
                driver.execute(f"PRAGMA {pragma}={value}")  # type: ignore[union-attr]

    def close(self) -> None:
        """The connection goes back to the pool as it came: the import's pragmas are its own."""
        if self.restore:
            self.session.rollback()
            driver = self.session.connection().connection.driver_connection
            for pragma, value in self.restore.items():
                driver.execute(f"PRAGMA {pragma}={int(value)}")  # type: ignore[union-attr]
            self.session.commit()
            # Also after an interrupted import: what it committed reaches the store file, the log stays short.
            driver.execute("PRAGMA wal_checkpoint(PASSIVE)")  # type: ignore[union-attr]

    def write(self, rows: list[_Row], *, last: bool = False) -> None:
        if not rows:
            return
        if self.postgres:
            pending = rows
            while pending:  # a sign-up of the same address committed meanwhile is merged next time
                pending = self._merge(pending, self._stage(pending))
            self.session.commit()
            return
        # The chunk is staged (a temporary table: no write lock on the store) while other writers get their
        # turn; then it takes the write lock before its first read, so an unsubscribe can never slip in
        # between what the chunk reads and what it writes.
        staged = self._stage(rows)
        self.session.commit()
        time.sleep(max(0.0, self.committed + IMPORT_PAUSE_SECONDS - time.monotonic()))
        driver = self.session.connection().connection.driver_connection
        if last:  # the report printed at the end is durable: this commit syncs the log with every chunk before
            driver.execute("PRAGMA synchronous=FULL")  # type: ignore[union-attr]
        self.session.execute(text("BEGIN IMMEDIATE"))
        pending = self._merge(rows, staged)
        while pending:  # never with the write lock held from the first read; kept as on PostgreSQL all the same
            pending = self._merge(pending, self._stage(pending))
        self.session.commit()
        self.committed = time.monotonic()
        self.chunks += 1
        if last or self.chunks % IMPORT_CHECKPOINT_CHUNKS == 0:
            driver.execute("PRAGMA wal_checkpoint(PASSIVE)")  # type: ignore[union-attr]

    def _cause(self, row: _Row) -> str:
        return f"import {self.file}:{row.line}"

    def _merge(self, rows: list[_Row], hashes: dict[str, str]) -> list[_Row]:
        session, now, report = self.session, self.now, self.report
        # Locked until the commit on PostgreSQL (SQLite: the chunk holds the write lock), so a concurrent
        # unsubscribe is never overwritten. PostgreSQL gets the addresses as one array: the unique index finds
        # them whatever its statistics say (a join with the fresh temporary table may scan the whole list). The
        # array travels as one text split by the server: a list of 10,000 texts cost more to send than to use.
        columns = "SELECT s.id, s.email, s.status, s.name, s.timezone, s.consent_source, s.consent_at, s.confirmed_at"
        if self.postgres:
            sql = f"{columns} FROM subscribers s WHERE s.email = ANY(string_to_array(:emails, E'\\n')) FOR UPDATE OF s"
        else:
            sql = f"{columns} FROM subscribers s JOIN import_rows r ON s.email = r.email"
        found = session.execute(
            text(sql).columns(consent_at=UTCDateTime, confirmed_at=UTCDateTime),
            # One text: no address holds a line break.
            {"emails": "\n".join(r.email for r in rows)} if self.postgres else {},
        )
        existing = {e.email: e for e in found}
        if self.postgres:
            query = text("SELECT email_hash FROM suppressions WHERE email_hash = ANY(string_to_array(:hashes, ' '))")
            found_hashes = session.scalars(query, {"hashes": " ".join(hashes)})
        else:
            query = text("SELECT x.email_hash FROM suppressions x JOIN import_rows r ON x.email_hash = r.hash")
            found_hashes = session.scalars(query)
        suppressed = {hashes[h] for h in found_hashes} - existing.keys()
        new: list[_Row] = []
        updates: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        for row in rows:
            known = existing.get(row.email)
            if known is None:
                if row.email in suppressed and not self.force:
                    report.kept_out += 1
                else:
                    new.append(row)
                continue
            if known.status in FINAL_STATUSES and not self.force:
                report.kept_out += 1
                continue
            values = {
                "b_id": known.id,
                "status": known.status,
                "name": known.name,
                "timezone": known.timezone,
                "consent_source": known.consent_source,
                "consent_at": known.consent_at,
                "confirmed_at": known.confirmed_at,
            }
            outcome = "unchanged"
            if known.status in FINAL_STATUSES or known.status == "pending":
                # Pending: the operator vouches for the consent the confirmation would have given.
                forced = known.status in FINAL_STATUSES
                values.update(status="active", consent_source="import", consent_at=now, confirmed_at=now)
                cause = f"{self._cause(row)} (--force-consent)" if forced else self._cause(row)
                changes.append(
                    {
                        "subscriber_id": known.id,
                        "from_status": known.status,
                        "to_status": "active",
                        "cause": cause,
                        "at": now,
                    }
                )
                outcome = "reactivated" if forced else "updated"
            if row.name and known.name != row.name:
                values["name"] = row.name
                outcome = "updated" if outcome == "unchanged" else outcome
            if row.timezone and known.timezone != row.timezone:
                values["timezone"] = row.timezone
                outcome = "updated" if outcome == "unchanged" else outcome
            setattr(report, outcome, getattr(report, outcome) + 1)
            if outcome != "unchanged":
                updates.append(values)
        lifts = [h for h, email in hashes.items() if email in suppressed] if self.force else []
        if lifts:  # the operator vouches for their new consent
            session.execute(delete(Suppression).where(Suppression.email_hash.in_(lifts)))
        if updates:
            session.execute(
                update(_SUBSCRIBERS)
                .where(_SUBSCRIBERS.c.id == bindparam("b_id"))
                .values(
                    status=bindparam("status"), name=bindparam("name"), timezone=bindparam("timezone"),
                    consent_source=bindparam("consent_source"), consent_at=bindparam("consent_at"),
                    confirmed_at=bindparam("confirmed_at"), updated_at=now,
                ),
                updates,
            )  # fmt: skip
        if changes:
            session.execute(insert(SubscriberChange), changes)
        if not new:
            return []
        added = self._insert()
        report.added += len(added)
        return [r for r in new if r.email not in added]

    def _stage(self, rows: list[_Row]) -> dict[str, str]:
        """The chunk into a temporary table (PostgreSQL: by COPY), with each address's hash and the link key
        it gets if it is new; returns hash -> address."""
        session = self.session
        driver = session.connection().connection.driver_connection
        session.execute(text(f"CREATE TEMPORARY TABLE IF NOT EXISTS import_rows {_STAGING_COLUMNS}"))
        # TRUNCATE: deleted rows would stay in the temporary table (no autovacuum there), each chunk's scans longer
        session.execute(text("TRUNCATE import_rows" if self.postgres else "DELETE FROM import_rows"))
        emails = [r.email for r in rows]
        # email_hash of an address normalize_email gave: already trimmed and lower-case.
        hashes = [hashlib.sha256(e.encode("utf-8")).hexdigest() for e in emails]
        staged = list(zip(emails, hashes, [r.name for r in rows], [r.timezone for r in rows], _link_keys(len(rows)),
                          [r.line for r in rows], strict=True))  # fmt: skip
        if self.postgres:
            with driver.cursor().copy(f"COPY import_rows ({_STAGED}) FROM STDIN") as copy:  # type: ignore[union-attr]
                for values in staged:
                    copy.write_row(values)
        else:
            driver.executemany(f"INSERT INTO temp.import_rows ({_STAGED}) VALUES (?, ?, ?, ?, ?, ?)", staged)  # type: ignore[union-attr]  # noqa: S608
        return dict(zip(hashes, emails, strict=True))

    def _insert(self) -> set[str]:
        """The staged rows that are neither on the list nor suppressed, by one INSERT ... SELECT, and their
        history by another. Returns the addresses inserted: a sign-up or a suppression of an address
        committed meanwhile (PostgreSQL) leaves its row out, for the caller to merge again."""
        now = bindparam("now", self.now, type_=UTCDateTime)
        cause = {"cause": f"import {self.file}:"}
        insert_new = (  # fixed fragments only; every value is a bound parameter
            "INSERT INTO subscribers (email, email_hash, name, status, consent_source, consent_at, confirmed_at,"
            " preferences, link_key, timezone, created_at, updated_at)"
            " SELECT email, hash, name, 'active', 'import', :now, :now, {empty}, link_key, timezone, :now, :now"
            " FROM import_rows r"
            " WHERE NOT EXISTS (SELECT 1 FROM suppressions x WHERE x.email_hash = r.hash) ORDER BY line"
            " ON CONFLICT (email) DO NOTHING RETURNING {returned}"
        )
        history = "INSERT INTO subscriber_changes (subscriber_id, from_status, to_status, cause, at)"
        if self.postgres:  # one statement: the history rows come from the ids the insert returns
            added = insert_new.format(empty="CAST('{}' AS json)", returned="id, email")
            sql = (
                f"WITH added AS ({added}), history AS ({history}"  # noqa: S608
                " SELECT added.id, NULL, 'active', :cause || r.line, :now FROM added JOIN import_rows r USING (email))"
                " SELECT email FROM added"
            )
            return set(self.session.scalars(text(sql).bindparams(now), cause))
        inserted = self.session.scalars(text(insert_new.format(empty="'{}'", returned="email")).bindparams(now)).all()
        if inserted:
            self.session.execute(
                text(
                    f"{history} SELECT s.id, NULL, 'active', :cause || r.line, :now"  # noqa: S608
                    " FROM import_rows r JOIN subscribers s ON s.email = r.email AND s.link_key = r.link_key"
                    " ORDER BY r.line"
                ).bindparams(now),
                cause,
            )
        return set(inserted)


_SUBSCRIBERS = cast(Table, Subscriber.__table__)  # plain UPDATE ... WHERE id = :b_id, many rows at once
_STAGED = "email, hash, name, timezone, link_key, line"
_STAGING_COLUMNS = "(email text, hash text, name text, timezone text, link_key text, line integer)"


def import_csv(
    session: Session,
    path: Path,
    *,
    now: datetime,
    force_consent: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Add or update every row as `add` would, one after another; bad rows are reported, not imported.
    `progress`, when given, is called with (rows read, rows in the file) after each chunk.

    Writes in short transactions of its own on the session's store (see IMPORT_BATCH_ROWS), not in the
    caller's: rows imported before an interruption stay, and running the same file again is safe
    (those rows come out unchanged). The given session itself is left untouched.
    """
    total = count_csv_rows(path) if progress else 0
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    report = ImportReport()
    # One connection for the whole import: the staged chunk (a temporary table) and the SQLite pragmas are
    # the connection's, and a pool may hand out another one after each commit.
    engine = session.get_bind().engine
    with handle, engine.connect() as connection, Session(connection, expire_on_commit=False) as session:
        merge = _Merge(session, now=now, force_consent=force_consent, file=path.name, report=report)
        done = 0
        try:
            with _ReadAhead(_chunks(handle, str(path), report, merge.rows)) as chunks:
                for rows, done, last in chunks:
                    merge.write(rows, last=last)
                    if progress and not last:
                        progress(done, max(total, done))
        except UnicodeDecodeError as exc:
            raise UsageError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
        finally:
            merge.close()
        if progress:
            progress(done, max(total, done))
    return report


def _chunks(handle: IO[str], name: str, report: ImportReport, size: int) -> Iterator[tuple[list[_Row], int, bool]]:
    """The checked rows in chunks of at most `size`, each with the number of rows read before the row that
    follows it, and whether it is the last. A chunk never holds one address twice: the first is written
    before the second is compared with it."""
    counted = [0]
    chunk: dict[str, _Row] = {}
    for checked in _checked_rows(handle, name, report, counted):
        if checked.email in chunk or len(chunk) >= size:
            yield list(chunk.values()), counted[0] - 1, False
            chunk = {}
        chunk[checked.email] = checked
    yield list(chunk.values()), counted[0], True


class _ReadAhead:
    """Items of an iterator made on a thread of their own, a few ahead of their use: the next chunk is read
    and checked in Python while the store merges this one (the drivers let go of the GIL while they wait).
    Whatever the iterator raises is raised where its items are used."""

    def __init__(self, items: Iterator[Any], depth: int = 2):
        self.items, self.queue = items, queue.Queue[tuple[str, Any]](maxsize=depth)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._make, name="import-read-ahead", daemon=True)

    def _put(self, kind: str, value: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _make(self) -> None:
        try:
            for item in self.items:
                if not self._put("item", item):
                    return
            self._put("end", None)
        except BaseException as exc:  # noqa: BLE001 - handed over to the reader
            self._put("error", exc)

    def __enter__(self) -> Iterator[Any]:
        self.thread.start()
        return self._read()

    def _read(self) -> Iterator[Any]:
        while True:
            kind, value = self.queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


EXPORT_CHUNK = 5_000
EXPORT_COLUMNS = (
    "email",
    "name",
    "status",
    "consent_source",
    "consent_at",
    "consent_ip",
    "confirmed_at",
    "exclude_sections",
    "timezone",
    "created_at",
    "updated_at",
)


def export_csv(
    session: Session,
    handle: IO[str],
    status: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Stream every subscriber (or one status) to CSV; returns the number of rows. `progress`, when
    given, is called with (rows written, rows to write) every EXPORT_CHUNK rows and at the end.

    The store writes each row's fields as the CSV shows them (times in ISO 8601 with their UTC offset, the
    left-out sections joined by ";", an empty field for none), so no value is converted in Python:
    PostgreSQL streams the CSV itself (COPY ... TO STDOUT), SQLite's rows go to csv.writer EXPORT_CHUNK at a
    time. Never ORM objects, never the whole list: memory stays flat however long the list."""
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    total = 0
    if progress:
        counted = select(func.count()).select_from(Subscriber)
        total = session.scalar(counted.where(Subscriber.status == status) if status else counted) or 0
    driver = session.connection().connection.driver_connection
    if session.get_bind().dialect.name == "postgresql":
        count = _export_postgresql(driver, handle, status, progress, total)
    else:
        count = _export_sqlite(driver, writer, status, progress, total)
    if progress:
        progress(count, count)
    return count


def _export_sqlite(
    driver: Any, writer: Any, status: str | None, progress: Callable[[int, int], None] | None, total: int
) -> int:
    # SQLAlchemy stores a time as "YYYY-MM-DD HH:MM:SS.ffffff" (naive UTC); datetime.isoformat() leaves
    # out a zero fraction. json_each lists the left-out sections in their stored order.
    def iso(column: str) -> str:
        whole = f"CASE WHEN substr({column}, 20) = '.000000' THEN substr({column}, 1, 19) ELSE {column} END"
        return f"replace({whole}, ' ', 'T') || '+00:00'"

    left_out = (
        "CASE WHEN preferences = '{}' THEN NULL"
        " ELSE (SELECT group_concat(value, ';') FROM json_each(preferences, '$.exclude_sections')) END"
    )
    # Fixed fragments only; the status is a bound parameter.
    fields = f"email, name, status, consent_source, {iso('consent_at')}, consent_ip, {iso('confirmed_at')}, {left_out}"
    fields += f", timezone, {iso('created_at')}, {iso('updated_at')}"
    where = " WHERE status = ?" if status else ""
    sql = f"SELECT {fields} FROM subscribers{where} ORDER BY id"  # noqa: S608
    cursor = driver.execute(sql, (status,) if status else ())
    count = 0
    try:
        while rows := cursor.fetchmany(EXPORT_CHUNK):
            writer.writerows(rows)  # a None (NULL) is written as an empty field
            count += len(rows)
            if progress:
                progress(count, max(total, count))
    finally:
        cursor.close()
    return count


def _export_postgresql(
    driver: Any, handle: IO[str], status: str | None, progress: Callable[[int, int], None] | None, total: int
) -> int:
    from psycopg import sql

    # COPY's CSV writes NULL as an empty field and an empty text as "", csv.writer both as an empty field:
    # every optional text is NULLIF'd. Times as datetime.isoformat() gives them (no zero fraction).
    def iso(column: str) -> str:
        return (
            f"CASE WHEN to_char({column}, 'US') = '000000' THEN to_char({column}, 'YYYY-MM-DD\"T\"HH24:MI:SS')"
            f" ELSE to_char({column}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US') END || '+00:00'"
        )

    left_out = (
        "NULLIF(array_to_string(ARRAY(SELECT e FROM json_array_elements_text(preferences -> 'exclude_sections')"
        " WITH ORDINALITY AS t(e, n) ORDER BY n), ';'), '')"
    )
    query = sql.SQL(
        "COPY (SELECT email, NULLIF(name, ''), status, NULLIF(consent_source, ''), {consent_at},"
        " NULLIF(consent_ip, ''), {confirmed_at}, {left_out}, NULLIF(timezone, ''), {created_at}, {updated_at}"
        " FROM subscribers {where} ORDER BY id) TO STDOUT WITH (FORMAT csv)"
    ).format(
        consent_at=sql.SQL(iso("consent_at")), confirmed_at=sql.SQL(iso("confirmed_at")),
        left_out=sql.SQL(left_out), created_at=sql.SQL(iso("created_at")), updated_at=sql.SQL(iso("updated_at")),
        where=sql.SQL("WHERE status = {}").format(sql.Literal(status)) if status else sql.SQL(""),
    )  # fmt: skip
    encoding = driver.info.encoding
    count = 0
    with driver.cursor() as cursor, cursor.copy(query) as copy:
        rows: list[Any] = []
        # The server sends each row of a COPY TO as one message of its own: a read is a row.
        for row in copy:
            rows.append(row)
            if len(rows) == EXPORT_CHUNK:
                handle.write(b"".join(rows).decode(encoding))
                count += len(rows)
                rows = []
                if progress:
                    progress(count, max(total, count))
        if rows:
            handle.write(b"".join(rows).decode(encoding))
            count += len(rows)
    return count


def _left_out(preferences: str | None) -> str:
    if not preferences or preferences == "{}":
        return ""
    return ";".join(json.loads(preferences).get("exclude_sections", ()))


def erase(session: Session, address: str, *, now: datetime) -> bool:
    """Delete the person's data and keep only a hash of the address, so no import can add it back.

    Their deliveries are deleted, and their history goes with the row (ON DELETE CASCADE); provider events
    keep their type and time for the issue's statistics but lose the address and payload. The figures' counts
    stay, but the rows that knew this person among an issue's people (a hash of the address, or their
    id for a change of status) go: a hash of an address is as guessable as the address.
    """
    address = normalize_email(address)
    subscriber = session.scalars(select(Subscriber).where(Subscriber.email == address)).first()
    session.execute(
        update(Event)
        .where(or_(Event.email == address, Event.subscriber_id == (subscriber.id if subscriber else -1)))
        .values(email=None, payload={}, subscriber_id=None)
    )
    known_as = [person_key(address), -1 - person_key(address)]
    session.execute(delete(EventPerson).where(EventPerson.person.in_(known_as)))
    if subscriber is not None:
        session.execute(
            delete(EventPerson).where(EventPerson.person == subscriber.id, EventPerson.kind.startswith("status:"))
        )
    suppress(session, address, "erased", now)
    if subscriber is None:
        return False
    # Deliveries keep no foreign key to the person (migration 0020): their rows go here, found issue by
    # issue through the unique (issue_id, subscriber_id) key, the only index that holds the person (0021).
    issues = session.scalars(select(Issue.id)).all()
    if issues:
        session.execute(delete(Delivery).where(Delivery.issue_id.in_(issues), Delivery.subscriber_id == subscriber.id))
    session.delete(subscriber)
    return True


def list_subscribers(session: Session, status: str | None = None, limit: int | None = None) -> list[Subscriber]:
    query = select(Subscriber).order_by(Subscriber.id)
    if status:
        query = query.where(Subscriber.status == status)
    if limit:
        query = query.limit(limit)
    return list(session.scalars(query))


def count_by_status(session: Session) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for status, n in session.execute(select(Subscriber.status, func.count()).group_by(Subscriber.status)):
        counts[status] = n
    return counts


def history(session: Session, subscriber: Subscriber) -> list[SubscriberChange]:
    return list(
        session.scalars(
            select(SubscriberChange)
            .where(SubscriberChange.subscriber_id == subscriber.id)
            .order_by(SubscriberChange.at, SubscriberChange.id)
        )
    )
