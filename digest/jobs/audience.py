"""What the audience's web pages and API do: sign up, confirm, unsubscribe, resubscribe, preferences, and
the provider's events. Each runs in one transaction and returns what the page shows.

A signed link identifies its subscriber: `core.tokens.read` raises BadToken for a link we did not sign;
a valid link whose subscriber was erased finds None, which every page answers as "not on our list".
The web app retries the whole of a use case when the store is busy (digest.web.busy), so each is one
transaction, safe to run again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.orm import Session

from digest.core import Digest
from digest.delivery.sender import settle_from_events
from subscribers import events, signup, store
from subscribers.models import Subscriber

log = logging.getLogger(__name__)

LinkPurpose = Literal["confirm", "unsubscribe", "preferences"]


@dataclass(frozen=True)
class Resubscribed:
    subscriber: Subscriber
    status: str  # active, or pending when the address must be confirmed again (the mail is sent)


@dataclass(frozen=True)
class PreferencesSaved:
    subscriber: Subscriber
    excluded: list[str]  # the sections left out now
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


def sign_up(core: Digest, address: str, name: str | None, consent: store.Consent) -> store.SignUpResult:
    """Store the consent, then mail the confirm link (double opt-in)."""
    return signup.sign_up(core, address, name, consent)


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
    """Back on the list; an address that must be confirmed again gets the confirm mail now."""
    with core.sessions.begin() as session:
        subscriber = _by_link(session, core, "unsubscribe", token)
        if subscriber is None:
            return None
        status = store.resubscribe(session, subscriber, now=core.now())
    if status == "pending":
        from subscribers.confirmation import send_confirmation

        send_confirmation(core, subscriber)
    return Resubscribed(subscriber, status)


def save_preferences(
    core: Digest, token: str, received: list[str], action: Literal["save", "unsubscribe"]
) -> PreferencesSaved | None:
    """Keep the sections ticked (`received`) and leave out the rest, or unsubscribe."""
    with core.sessions.begin() as session:
        subscriber = _by_link(session, core, "preferences", token)
        if subscriber is None:
            return None
        if action == "unsubscribe":
            store.unsubscribe(session, subscriber, "preferences page", now=core.now())
            return PreferencesSaved(
                subscriber, subscriber.excluded_sections, core.tokens.make("unsubscribe", subscriber)
            )
        sections = core.config.sections
        excluded = store.set_excluded_sections(
            session, subscriber, [s for s in sections if s not in received], sections, now=core.now()
        )
        return PreferencesSaved(subscriber, excluded, None)


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
        settled = settle_from_events(session, events.batch_claims(batch), now=core.now())
    for number in settled:
        log.warning("batch %s of unknown fate settled as submitted by SendGrid's events", number)
    return ProviderEvents(report, list(settled))
