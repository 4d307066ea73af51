"""The double opt-in mail: one message with the confirm link, queued by the sign-up and sent from the queue.

A sign-up request stores the subscriber and a `confirmation_queue` row in one transaction and answers;
it never waits for the provider, so a slow or failing provider holds no request. Each `digest serve`
process runs a sender (digest.web.confirmations) that calls `send_due`: it claims due rows (pending ->
sending, one UPDATE over rows picked with FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite's single writer
makes the same UPDATE a compare-and-set), sends each, and marks it sent. A provider error puts the row
back with a later `due_at` (backoff) until MAX_ATTEMPTS; an answer that may have been accepted
(FailureKind.UNKNOWN), or a row left in `sending` by a sender that died, is never sent again by
itself: a mail is sent at most once, and the reader who got none may sign up again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Protocol

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session, sessionmaker

from digest.config import NewsletterConfig
from digest.email.message import MAIL_POLICY
from digest.email.templates import template_environment
from digest.errors import DeliveryError, FailureKind, ProviderError
from digest.locale import language
from digest.store.db import rowcount
from subscribers.models import ConfirmationMail, Subscriber
from subscribers.store import InvalidName, clean_name, mark_confirmation_sent
from subscribers.tokens import SignedLinks

log = logging.getLogger(__name__)


class TransactionalSender(Protocol):
    """The one thing the audience asks of a provider (digest.delivery.providers meets it)."""

    def send_transactional(self, message: EmailMessage) -> str | None: ...


@dataclass(frozen=True)
class OptIn:
    """What sign-up and the double opt-in mail are made with; built by digest.core.Digest.opt_in."""

    sessions: sessionmaker[Session]
    config: NewsletterConfig  # the newsletter's name, sender, postal address and templates
    links: SignedLinks
    provider: TransactionalSender
    double_opt_in: bool
    now: Callable[[], datetime]


def confirmation_message(opt_in: OptIn, subscriber: Subscriber) -> EmailMessage:
    config = opt_in.config
    values = {
        "name": subscriber.first_name,
        "newsletter": config.name,
        "confirm_url": opt_in.links.confirm(subscriber),
        "postal_address": config.postal_address,
        "language": config.language,
    }
    templates = template_environment(config.template_dirs(), config.language)
    text = templates.get_template("email/confirm.txt.j2").render(values)
    html = templates.get_template("email/confirm.html.j2").render(values)
    message = EmailMessage(policy=MAIL_POLICY)
    message["From"] = formataddr((config.from_name, config.from_email)) if config.from_name else config.from_email
    # Names are cleaned where they enter; cleaned again here for rows stored before that rule.
    name = _header_name(subscriber.name)
    message["To"] = formataddr((name, subscriber.email)) if name else subscriber.email
    if config.reply_to:
        message["Reply-To"] = config.reply_to
    message["Subject"] = language(config.language).gettext("Confirm your subscription to %(newsletter)s") % {
        "newsletter": config.name
    }
    message["Date"] = format_datetime(opt_in.now())
    message["Message-ID"] = make_msgid(idstring="confirm", domain=config.from_email.rpartition("@")[2])
    # Transactional, not bulk: it goes to one person who just asked for it, and has no List-Unsubscribe.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text, subtype="plain", charset="utf-8")
    message.add_alternative(html, subtype="html", charset="utf-8")
    return message


def _header_name(name: str | None) -> str | None:
    try:
        return clean_name(name)
    except InvalidName:
        return None


def send_confirmation(opt_in: OptIn, subscriber: Subscriber) -> str | None:
    """Send the confirm link; a provider failure becomes a DeliveryError the web layer turns into 503."""
    message = confirmation_message(opt_in, subscriber)
    try:
        return opt_in.provider.send_transactional(message)
    except ProviderError as exc:  # the caller releases the claim so a retry can send
        log.warning("confirmation mail to subscriber %s failed: %s", subscriber.id, exc)
        raise DeliveryError(f"the confirmation mail could not be sent ({exc}); try again in a few minutes") from exc


# --- the queue ---------------------------------------------------------------------------------------

MAX_ATTEMPTS = 8
FIRST_RETRY = timedelta(seconds=30)
LAST_RETRY = timedelta(hours=1)
# A row claimed this long ago and still `sending`: its sender died mid-send, and the mail may be out.
SENDING_LEASE = timedelta(minutes=10)
CLAIM_AT_ONCE = 20


def queue_confirmation(session: Session, subscriber_id: int, now: datetime) -> bool:
    """Queue the confirm mail, in the sign-up's own transaction; False when one is queued already."""
    waiting = select(ConfirmationMail.id).where(
        ConfirmationMail.subscriber_id == subscriber_id, ConfirmationMail.status.in_(("pending", "sending"))
    )
    if session.scalar(select(exists(waiting))):
        return False
    session.add(ConfirmationMail(subscriber_id=subscriber_id, status="pending", attempts=0, due_at=now, created_at=now))
    return True


def retry_delay(attempts: int, retry_after: float | None = None) -> timedelta:
    """30 s, 1 min, 2 min, ... up to an hour; longer when the provider said when to come back."""
    delay = min(FIRST_RETRY * (1 << min(max(0, attempts - 1), 16)), LAST_RETRY)
    return max(delay, timedelta(seconds=retry_after or 0))


def claim_due(session: Session, now: datetime, limit: int = CLAIM_AT_ONCE) -> list[int]:
    """Claim up to `limit` due rows for this sender: pending -> sending, in one UPDATE. Rows another
    sender holds are skipped (PostgreSQL), or already `sending` when the UPDATE gets its turn (SQLite)."""
    due = (
        select(ConfirmationMail.id)
        .where(ConfirmationMail.status == "pending", ConfirmationMail.due_at <= now)
        .order_by(ConfirmationMail.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = session.execute(
        update(ConfirmationMail)
        .where(ConfirmationMail.id.in_(due), ConfirmationMail.status == "pending")
        .values(status="sending", claimed_at=now, attempts=ConfirmationMail.attempts + 1)
        .returning(ConfirmationMail.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(claimed.scalars().all())


def give_up_abandoned(session: Session, now: datetime) -> int:
    """Rows whose sender died while sending: of unknown fate, so never sent again by themselves."""
    result = session.execute(
        update(ConfirmationMail)
        .where(ConfirmationMail.status == "sending", ConfirmationMail.claimed_at < now - SENDING_LEASE)
        .values(status="unknown", error="the sender stopped while sending; it may or may not have gone out")
        .execution_options(synchronize_session=False)
    )
    return rowcount(result)


def _settle(session: Session, row_id: int, **values: object) -> None:
    # Only the sender holding the claim settles the row: `sending` is its compare-and-set.
    session.execute(
        update(ConfirmationMail)
        .where(ConfirmationMail.id == row_id, ConfirmationMail.status == "sending")
        .values(**values)
        .execution_options(synchronize_session=False)
    )


@dataclass
class QueueRun:
    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0  # failed for good, skipped, or of unknown fate
    abandoned: int = 0


def send_due(opt_in: OptIn, limit: int = CLAIM_AT_ONCE) -> QueueRun:
    """Send the confirmation mail that is due, up to `limit` of it; safe to run in many processes at once.

    The outcomes are recorded together, one transaction for several mails, at most SETTLE_EVERY apart:
    under a burst of sign-ups the sender spends its time on mail, not on commits; with a slow provider
    each mail is recorded as it goes, long before its claim's lease runs out."""
    run = QueueRun()
    now = opt_in.now()
    with opt_in.sessions.begin() as session:
        run.abandoned = give_up_abandoned(session, now)
        claimed = claim_due(session, now, limit)
        rows = _claimed_rows(session, claimed)
    run.claimed = len(claimed)
    outcomes: list[_Outcome] = []
    last_settled = time.monotonic()
    for row, subscriber in rows:
        outcome = _send_one(opt_in, row, subscriber)
        outcomes.append(outcome)
        setattr(run, outcome.counted_as, getattr(run, outcome.counted_as) + 1)
        if time.monotonic() - last_settled >= SETTLE_EVERY:
            _record(opt_in, outcomes)
            outcomes, last_settled = [], time.monotonic()
    _record(opt_in, outcomes)
    return run


SETTLE_EVERY = 1.0  # seconds


@dataclass(frozen=True)
class _Outcome:
    row_id: int
    values: dict[str, object]
    sent_to: int | None = None  # the subscriber whose resend throttle starts now

    @property
    def counted_as(self) -> str:
        status = self.values["status"]
        return "sent" if status == "sent" else "retrying" if status == "pending" else "failed"


def _claimed_rows(session: Session, ids: list[int]) -> list[tuple[ConfirmationMail, Subscriber | None]]:
    if not ids:
        return []
    found = session.execute(
        select(ConfirmationMail, Subscriber)
        .outerjoin(Subscriber, Subscriber.id == ConfirmationMail.subscriber_id)
        .where(ConfirmationMail.id.in_(ids))
        .order_by(ConfirmationMail.id)
    ).all()
    return [(row, subscriber) for row, subscriber in found]


def _record(opt_in: OptIn, outcomes: list[_Outcome]) -> None:
    if not outcomes:
        return
    with opt_in.sessions.begin() as session:
        for outcome in outcomes:
            _settle(session, outcome.row_id, **outcome.values)
            if outcome.sent_to is not None:
                mark_confirmation_sent(session, outcome.sent_to, outcome.values["sent_at"])  # type: ignore[arg-type]


def _send_one(opt_in: OptIn, row: ConfirmationMail, subscriber: Subscriber | None) -> _Outcome:
    if subscriber is None or subscriber.status != "pending":
        # Confirmed by an earlier mail, unsubscribed or erased since: nothing to confirm any more.
        return _Outcome(row.id, {"status": "skipped"})
    try:
        opt_in.provider.send_transactional(confirmation_message(opt_in, subscriber))
    except ProviderError as exc:
        return _failed(opt_in, row, exc)
    except Exception as exc:  # noqa: BLE001 - a bug or a broken template: the row must not stay claimed
        log.exception("confirmation mail to subscriber %s could not be made or sent", subscriber.id)
        return _failed(opt_in, row, ProviderError(str(exc), kind=FailureKind.TRANSIENT))
    return _Outcome(row.id, {"status": "sent", "sent_at": opt_in.now(), "error": None}, sent_to=subscriber.id)


def _failed(opt_in: OptIn, row: ConfirmationMail, exc: ProviderError) -> _Outcome:
    error = str(exc)[:1000]
    if exc.kind is FailureKind.UNKNOWN:
        status = "unknown"
    elif exc.kind is FailureKind.REFUSED or row.attempts >= MAX_ATTEMPTS:
        status = "failed"
    else:
        status = "pending"
    log.warning(
        "confirmation mail to subscriber %s (attempt %d) failed: %s; %s",
        row.subscriber_id,
        row.attempts,
        exc,
        "trying again later" if status == "pending" else f"not trying again ({status})",
    )
    if status == "pending":
        due = opt_in.now() + retry_delay(row.attempts, exc.retry_after)
        return _Outcome(row.id, {"status": "pending", "due_at": due, "error": error})
    return _Outcome(row.id, {"status": status, "error": error})
