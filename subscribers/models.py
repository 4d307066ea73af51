"""Subscriber tables: the subscriber, the append-only history of status changes, suppressions."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import Mapped, mapped_column

from digest.store.models import Base, utcnow


def new_link_key() -> str:
    """128 random bits: what signed links carry instead of the id (see subscribers.tokens)."""
    return secrets.token_urlsafe(16)


def first_name(name: str | None) -> str | None:
    """The first word of a name, what `%%first_name%%` and the confirmation mail greet with."""
    return name.split()[0] if name and name.strip() else None


def email_hash(address: str) -> str:
    """SHA-256 of the trimmed, lower-cased address: how suppressions name an address, and what
    `Subscriber.email_hash` stores so that the suppression filter joins on an index, not a hash per row."""
    return hashlib.sha256(address.strip().lower().encode("utf-8")).hexdigest()


def _hash_of_email(context: DefaultExecutionContext) -> str:
    # Every ORM or Core insert that gives `email` gets its hash; SQL written by hand must set it itself.
    parameters: dict[str, str] = context.get_current_parameters()  # type: ignore[no-untyped-call]
    return email_hash(parameters["email"])


STATUSES = ("pending", "active", "unsubscribed", "bounced", "complained")
# Statuses a person (or their mailbox) chose; an import must never turn them back into active.
FINAL_STATUSES = frozenset({"unsubscribed", "bounced", "complained"})


class Subscriber(Base):
    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # normalized, lower-cased
    # email_hash(email), kept with the address (addresses never change; an erase deletes the row).
    email_hash: Mapped[str] = mapped_column(String(64), index=True, default=_hash_of_email)
    name: Mapped[str | None] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    consent_source: Mapped[str | None] = mapped_column(String(20))  # form, api, import
    consent_at: Mapped[datetime | None]
    consent_ip: Mapped[str | None] = mapped_column(String(64))
    consent_user_agent: Mapped[str | None] = mapped_column(Text)
    confirmed_at: Mapped[datetime | None]
    # {"exclude_sections": ["Opinion", ...]}: the sections this subscriber left out (the key is stored data).
    preferences: Mapped[dict[str, Any]] = mapped_column(default=dict)
    link_key: Mapped[str] = mapped_column(String(32), unique=True, default=new_link_key)
    # The reader's IANA zone (checked against zoneinfo where it enters); None: the newsletter's zone applies.
    timezone: Mapped[str | None] = mapped_column(String(64))
    confirmation_sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def left_out_sections(self) -> list[str]:
        return list((self.preferences or {}).get("exclude_sections", []))

    @property
    def first_name(self) -> str | None:
        return first_name(self.name)


class SubscriberChange(Base):
    """One status change and its cause; rows are only ever added."""

    __tablename__ = "subscriber_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    cause: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Suppression(Base):
    """An address that must never be mailed again, kept as a hash so erased people stay erased."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


CONFIRMATION_STATES = ("pending", "sending", "sent", "failed", "skipped", "unknown")


class ConfirmationMail(Base):
    """One confirmation mail to send: the queue between a sign-up and the provider (subscribers.confirmation).

    pending (due at `due_at`) -> sending (claimed by one sender) -> sent | pending again (a provider
    error, with a later `due_at`) | failed (out of attempts) | skipped (confirmed, left or erased
    before it went). A row left in `sending` by a sender that died is of unknown fate: marked `unknown`
    and never sent again by itself (the reader may sign up again).
    """

    __tablename__ = "confirmation_queue"
    # The senders look for due rows by status and time; nothing else reads this table in bulk.
    __table_args__ = (Index("ix_confirmation_queue_status_due_at", "status", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime]
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
