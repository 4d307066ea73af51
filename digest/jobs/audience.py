"""What is done with the audience: the web's sign-up, confirm, unsubscribe, resubscribe and preferences
pages, the API, the provider's events, and the operator's `digest subscribers` commands. Each runs in
one transaction and returns what the page or command shows.

A signed link identifies its subscriber: `core.tokens.read` raises BadToken for a link we did not sign;
a valid link whose subscriber was erased finds None, which every page answers as "not on our list".
The web app retries the whole of a use case when the store is busy (digest.web.busy), so each is one
transaction, safe to run again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal, Self

from sqlalchemy.orm import Session

from digest.core import Digest
from digest.delivery.sender import settle_from_events
from digest.errors import UsageError
from subscribers import confirmation, events, signup, store
from subscribers.models import Subscriber, SubscriberChange

log = logging.getLogger(__name__)

LinkPurpose = Literal["confirm", "unsubscribe", "preferences"]


@dataclass(frozen=True)
class Resubscribed:
    subscriber: Subscriber
    status: str  # active, or pending when the address must be confirmed again (the mail is queued)


@dataclass(frozen=True)
class PreferencesSaved:
    subscriber: Subscriber
    left_out: list[str]  # the sections left out now
    unsubscribe_token: str | None  # set when the reader unsubscribed from the page instead


@dataclass(frozen=True)
class AddressUnsubscribed:
    email: str
    status: str  # the subscriber's status, or "suppressed" for an address that is not ours
    subscriber: bool


@dataclass(frozen=True)
class ProviderEvents:
    report: events.EventReport
    settled: list[tuple[int, int]]  # (issue id, number) of batches of unknown fate the events proved submitted


def _by_link(session: Session, core: Digest, purpose: LinkPurpose, token: str) -> Subscriber | None:
    return store.find_by_link_key(session, core.tokens.read(purpose, token))


def sign_up(
    core: Digest, address: str, name: str | None, consent: store.Consent, timezone: str | None = None
) -> store.SignUpResult:
    """Store the consent and queue the confirm mail (double opt-in); the mail goes from the queue."""
    return signup.sign_up(core.opt_in(), address, name, consent, timezone=timezone)


def subscriber_by_link(core: Digest, purpose: LinkPurpose, token: str) -> Subscriber | None:
    """The link's subscriber, changing nothing (opening a link is no answer to it)."""
    with core.sessions() as session:
        return _by_link(session, core, purpose, token)


def confirm_by_link(core: Digest, token: str) -> Subscriber | None:
    with core.sessions.begin() as session:
        subscriber = _by_link(session, core, "confirm", token)
        if subscriber is not None:
            store.confirm(session, subscriber, now=core.now())
        return subscriber


def unsubscribe_by_link(core: Digest, token: str, cause: str) -> Subscriber | None:
    with core.sessions.begin() as session:
        subscriber = _by_link(session, core, "unsubscribe", token)
        if subscriber is not None:
            store.unsubscribe(session, subscriber, cause, now=core.now())
        return subscriber


def resubscribe_by_link(core: Digest, token: str) -> Resubscribed | None:
    """Back on the list; an address that must be confirmed again gets the confirm mail queued."""
    with core.sessions.begin() as session:
        subscriber = _by_link(session, core, "unsubscribe", token)
        if subscriber is None:
            return None
        status = store.resubscribe(session, subscriber, now=core.now())
        if status == "pending":
            confirmation.queue_confirmation(session, subscriber.id, core.now())
    return Resubscribed(subscriber, status)


def send_confirmations(core: Digest, limit: int = confirmation.CLAIM_AT_ONCE) -> confirmation.QueueRun:
    """Send the confirmation mail that is due (up to `limit`); every serve process runs this in the background."""
    return confirmation.send_due(core.opt_in(), limit)


def save_preferences(
    core: Digest,
    token: str,
    received: list[str],
    action: Literal["save", "unsubscribe"],
    timezone: str | None = None,
) -> PreferencesSaved | None:
    """Keep the sections ticked (`received`) and leave out the rest, and the zone chosen (None: the
    newsletter's), or unsubscribe."""
    with core.sessions.begin() as session:
        subscriber = _by_link(session, core, "preferences", token)
        if subscriber is None:
            return None
        if action == "unsubscribe":
            store.unsubscribe(session, subscriber, "preferences page", now=core.now())
            return PreferencesSaved(
                subscriber, subscriber.left_out_sections, core.tokens.make("unsubscribe", subscriber)
            )
        sections = core.config.sections
        store.set_timezone(session, subscriber, timezone, now=core.now())
        left_out = store.set_left_out_sections(
            session, subscriber, [s for s in sections if s not in received], sections, now=core.now()
        )
        return PreferencesSaved(subscriber, left_out, None)


def unsubscribe_address(core: Digest, address: str) -> AddressUnsubscribed:
    """The API's unsubscribe: an address that is not ours is remembered, so no later import adds it."""
    with core.sessions.begin() as session:
        subscriber = store.find(session, address)
        if subscriber is None:
            store.suppress(session, address, "unsubscribed via api", core.now())
            return AddressUnsubscribed(address, "suppressed", subscriber=False)
        store.unsubscribe(session, subscriber, "unsubscribed via api", now=core.now())
        return AddressUnsubscribed(address, subscriber.status, subscriber=True)


def store_provider_events(core: Digest, batch: list[dict[str, Any]]) -> ProviderEvents:
    """Store the events and act on them, in one transaction: one event naming a batch proves all of it went out."""
    with core.sessions.begin() as session:
        report = events.store_events(session, batch, now=core.now())
        settled = settle_from_events(session, core.audience, events.batch_claims(batch), now=core.now())
    for number in settled:
        log.warning("batch %s of unknown fate settled as submitted by SendGrid's events", number)
    return ProviderEvents(report, list(settled))


# --- the operator's commands (`digest subscribers ...`) -------------------------------------------


@dataclass(frozen=True)
class Added:
    address: str
    outcome: str  # added, updated, unchanged, reactivated, kept_out (subscribers.store.add)
    status: str  # the subscriber's status now; "erased" for an address kept out by its suppression


@dataclass(frozen=True)
class SubscriberRecord:
    subscriber: Subscriber
    history: list[SubscriberChange]  # oldest first


@dataclass(frozen=True)
class Removed:
    address: str
    status: str  # unsubscribed (or the final status they had), or "erased"
    found: bool  # False: erased an address that was never a subscriber (its suppression stays)


def add_subscriber(
    core: Digest, address: str, name: str | None, *, force_consent: bool = False, timezone: str | None = None
) -> Added:
    """One subscriber, active at once on the operator's word (with their zone, when given)."""
    with core.sessions.begin() as session:
        subscriber, outcome = store.add(
            session,
            address,
            name,
            now=core.now(),
            force_consent=force_consent,
            cause="added with digest subscribers add",
            timezone=timezone,
        )
        return Added(address, outcome, subscriber.status if subscriber else "erased")


def import_subscribers(
    core: Digest, path: Path, *, force_consent: bool = False, progress: Callable[[int, int], None] | None = None
) -> store.ImportReport:
    """Import a CSV file; `progress` gets (rows read, rows in the file) as it goes."""
    with core.sessions.begin() as session:
        return store.import_csv(session, path, now=core.now(), force_consent=force_consent, progress=progress)


def export_subscribers(
    core: Digest, handle: IO[str], status: str | None = None, progress: Callable[[int, int], None] | None = None
) -> int:
    """Stream the subscribers (or one status) as CSV to `handle`; returns how many. `progress` gets
    (rows written, rows to write) as it goes."""
    with core.sessions() as session:
        return store.export_csv(session, handle, status, progress=progress)


def count_subscribers(core: Digest) -> dict[str, int]:
    with core.sessions() as session:
        return store.count_by_status(session)


def list_subscribers(core: Digest, status: str | None = None, limit: int | None = None) -> list[Subscriber]:
    with core.sessions() as session:
        return store.list_subscribers(session, status, limit)


def show_subscriber(core: Digest, address: str) -> SubscriberRecord | None:
    with core.sessions() as session:
        subscriber = store.find(session, address)
        if subscriber is None:
            return None
        return SubscriberRecord(subscriber, store.history(session, subscriber))


def remove_subscriber(core: Digest, address: str, *, erase: bool = False) -> Removed:
    """Unsubscribe someone (kept with their history), or erase their data for good (a hash stays)."""
    with core.sessions.begin() as session:
        if erase:
            found = store.erase(session, address, now=core.now())
            return Removed(address, "erased", found)
        subscriber = store.find(session, address)
        if subscriber is None:
            raise UsageError(f"no subscriber {address}; use --erase to suppress an address we never had")
        store.unsubscribe(session, subscriber, "removed with digest subscribers remove", now=core.now())
        return Removed(address, subscriber.status, found=True)


# The records `digest subscribers list` and `show` print (a dataclass's fields are its --json keys).


@dataclass(frozen=True)
class SubscriberLine:
    """A subscriber with their consent record and preferences: one line of `subscribers list --json`."""

    id: int
    email: str
    name: str | None
    status: str
    consent_source: str | None
    consent_at: datetime | None
    consent_ip: str | None
    consent_user_agent: str | None
    confirmed_at: datetime | None
    exclude_sections: list[str]
    timezone: str | None  # None: the newsletter's zone applies
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, s: Subscriber) -> Self:
        return cls(
            s.id,
            s.email,
            s.name,
            s.status,
            s.consent_source,
            s.consent_at,
            s.consent_ip,
            s.consent_user_agent,
            s.confirmed_at,
            s.left_out_sections,
            s.timezone,
            s.created_at,
            s.updated_at,
        )


@dataclass(frozen=True)
class StatusChange:
    at: datetime
    from_status: str | None = field(metadata={"json": "from"})
    to_status: str = field(metadata={"json": "to"})
    cause: str

    @classmethod
    def of(cls, c: SubscriberChange) -> StatusChange:
        return cls(c.at, c.from_status, c.to_status, c.cause)


@dataclass(frozen=True)
class SubscriberShown(SubscriberLine):
    """What `subscribers show` prints: the subscriber and every change of their status, oldest first."""

    history: list[StatusChange] = field(default_factory=list)


def subscriber_lines(core: Digest, status: str | None, limit: int | None) -> list[SubscriberLine]:

    return [SubscriberLine.of(s) for s in list_subscribers(core, status, limit)]


def subscriber_shown(core: Digest, address: str) -> SubscriberShown | None:

    record = show_subscriber(core, address)
    if record is None:
        return None
    history = [StatusChange.of(c) for c in record.history]
    return replace(SubscriberShown.of(record.subscriber), history=history)
