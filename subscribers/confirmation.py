"""The double opt-in mail: one message with the confirm link, sent through the configured provider."""

from __future__ import annotations

import logging
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import TYPE_CHECKING

import jinja2

from digest.email.message import MAIL_POLICY
from digest.errors import DeliveryError, ProviderError
from subscribers.models import Subscriber
from subscribers.store import InvalidName, clean_name

if TYPE_CHECKING:
    from digest.core import Digest

log = logging.getLogger(__name__)


def template_environment(core: Digest, *, autoescape: bool) -> jinja2.Environment:
    """Templates from the newsletter's own folder first, then the packaged ones (templates/)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in core.config.template_dirs()]),
        autoescape=autoescape,  # noqa: S701 (off only for the plain-text part)
        undefined=jinja2.StrictUndefined,
    )


def confirmation_message(core: Digest, subscriber: Subscriber) -> EmailMessage:
    config = core.config
    values = {
        "name": subscriber.first_name,
        "newsletter": config.name,
        "confirm_url": core.confirm_url(subscriber),
        "postal_address": config.postal_address,
        "language": config.language,
    }
    text = template_environment(core, autoescape=False).get_template("email/confirm.txt.j2").render(values)
    html = template_environment(core, autoescape=True).get_template("email/confirm.html.j2").render(values)
    message = EmailMessage(policy=MAIL_POLICY)
    message["From"] = formataddr((config.from_name, config.from_email)) if config.from_name else config.from_email
    # Names are cleaned where they enter; cleaned again here for rows stored before that rule.
    name = _header_name(subscriber.name)
    message["To"] = formataddr((name, subscriber.email)) if name else subscriber.email
    if config.reply_to:
        message["Reply-To"] = config.reply_to
    message["Subject"] = f"Confirm your subscription to {config.name}"
    message["Date"] = format_datetime(core.now())
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


def send_confirmation(core: Digest, subscriber: Subscriber) -> str | None:
    """Send the confirm link; a provider failure becomes a DeliveryError the web layer turns into 503."""
    message = confirmation_message(core, subscriber)
    try:
        return core.provider.send_transactional(message)
    except ProviderError as exc:  # the caller releases the claim so a retry can send
        log.warning("confirmation mail to subscriber %s failed: %s", subscriber.id, exc)
        raise DeliveryError(f"the confirmation mail could not be sent ({exc}); try again in a few minutes") from exc
