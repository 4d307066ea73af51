"""The double opt-in mail: one message with the confirm link, sent through the configured provider."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from digest.config import NewsletterConfig
from digest.email.message import MAIL_POLICY
from digest.email.templates import template_environment
from digest.errors import DeliveryError, ProviderError
from digest.locale import language
from subscribers.models import Subscriber
from subscribers.store import InvalidName, clean_name
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
