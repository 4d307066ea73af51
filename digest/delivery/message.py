"""Build one recipient's RFC 5322 message: multipart/alternative, text first, then HTML."""

from __future__ import annotations

from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid

from digest import placeholders
from digest.delivery.providers.base import OutgoingIssue, Recipient

# Long header lines are allowed up to 998 characters; folding List-Unsubscribe into encoded words
# would hide its URL from the mail clients that act on it.
MAIL_POLICY = policy.default.clone(max_line_length=998)


def list_unsubscribe(issue: OutgoingIssue, recipient: Recipient) -> str:
    """The https one-click URL first (the one RFC 8058 clients POST to), then the mailto when configured."""
    targets = [f"<{recipient.unsubscribe_url}>"]
    if issue.unsubscribe_mailto:
        targets.append(f"<mailto:{issue.unsubscribe_mailto}?subject=unsubscribe>")
    return ", ".join(targets)


def ensure_message_id(message: EmailMessage) -> str:
    """A transactional message keeps its own Message-ID, or gets one in the sender's domain."""
    if message["Message-ID"] is None:
        sender = message["From"]
        domain = sender.addresses[0].domain if getattr(sender, "addresses", None) else None
        message["Message-ID"] = make_msgid(domain=domain or None)
    return str(message["Message-ID"])


def build_message(issue: OutgoingIssue, recipient: Recipient, *, now: datetime) -> EmailMessage:
    message = EmailMessage(policy=MAIL_POLICY)
    message["From"] = formataddr((issue.from_name, issue.from_email)) if issue.from_name else issue.from_email
    message["To"] = formataddr((recipient.name, recipient.email)) if recipient.name else recipient.email
    if issue.reply_to:
        message["Reply-To"] = issue.reply_to
    message["Subject"] = issue.subject
    message["Date"] = format_datetime(now)
    domain = Address(addr_spec=issue.from_email).domain
    message["Message-ID"] = make_msgid(idstring=f"{issue.slug}.{recipient.delivery_id}", domain=domain)
    # RFC 8058 one-click: mail clients POST "List-Unsubscribe=One-Click" to this URL.
    message["List-Unsubscribe"] = list_unsubscribe(issue, recipient)
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    text = placeholders.fill(issue.text, recipient.values, html_part=False)
    html = placeholders.fill(issue.html, recipient.values, html_part=True)
    message.set_content(text, subtype="plain", charset="utf-8")
    message.add_alternative(html, subtype="html", charset="utf-8")
    return message
