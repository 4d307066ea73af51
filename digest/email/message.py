"""Build one recipient's RFC 5322 message: multipart/alternative, text first, then HTML.

Whatever the store holds, a header gets no line break from it: display names lose their control
characters here (defence in depth: they are also checked where they enter). Addresses are written
for the wire: the domain as IDNA (ASCII), and a non-ASCII local part only in a message serialized for
SMTPUTF8 (RFC 6531/6532), which `Prepared.smtputf8` tells the provider it needs.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import idna

from digest.email import placeholders

# Long header lines are allowed up to 998 characters; folding List-Unsubscribe into encoded words
# would hide its URL from the mail clients that act on it.
MAIL_POLICY = policy.default.clone(max_line_length=998)
UTF8_POLICY = MAIL_POLICY.clone(utf8=True)
_SPACES = re.compile(r"\s+")
# RFC 5322 specials: a phrase holding one is written as a quoted string.
_SPECIALS = frozenset('()<>[]:;@\\,."')


@dataclass(frozen=True)
class OutgoingIssue:
    """One rendering of an issue, ready for a provider: the same for every recipient of a batch."""

    issue_id: int
    slug: str
    subject: str
    html: str  # with placeholders, rendered once
    text: str
    from_email: str
    from_name: str
    reply_to: str | None
    unsubscribe_mailto: str | None = None  # an extra List-Unsubscribe target, when configured
    list_id: str | None = None  # the List-Id header's value (`list_id_header`)
    feedback_id: str | None = None  # the Feedback-ID header's value (`feedback_id`)
    # Local-time delivery through a provider that schedules (SendGrid): the instant this batch is to be
    # delivered, and the provider's id grouping the issue's scheduled sends (to cancel them). None: now.
    send_at: datetime | None = None
    schedule_id: str | None = None


@dataclass(frozen=True)
class Recipient:
    """One person a message goes to, with the values of their placeholders (made by the audience)."""

    # The subscriber's id. A person is mailed at most once an issue, so it keys the provider's answer for
    # them (`BatchResult`) and makes their Message-ID unique; a test send uses 0.
    person_id: int
    email: str
    name: str | None
    values: dict[str, str]  # placeholder name -> this recipient's value
    unsubscribe_url: str


def unbuildable(exc: Exception) -> str:
    """The reason recorded for a recipient whose message could not be built."""
    return f"the message could not be built: {type(exc).__name__}: {exc}"[:500]


class UnsendableAddress(ValueError):
    """An address that cannot be put in a message (the reason says why)."""


def safe_display_name(name: str | None) -> str:
    """The name with CR, LF and every other control or line-separator character folded to one space."""
    if not name:
        return ""
    kept = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in name)
    return _SPACES.sub(" ", kept).strip()


@dataclass(frozen=True)
class WireAddress:
    local: str
    domain: str  # ASCII (IDNA A-labels)

    @property
    def addr_spec(self) -> str:
        return f"{self.local}@{self.domain}"

    @property
    def smtputf8(self) -> bool:
        return not self.local.isascii()


def wire_address(address: str) -> WireAddress:
    """The address as it goes on the wire, or UnsendableAddress saying why it cannot."""
    local, at, domain = address.strip().rpartition("@")
    if not at or not local or not domain:
        raise UnsendableAddress(f"{address!r} is not an address (local@domain)")
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") or c.isspace() for c in address.strip()):
        raise UnsendableAddress("the address holds a space or control character")
    if not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise UnsendableAddress(f"the domain {domain!r} has no IDNA form: {exc}") from None
    return WireAddress(local, domain)


def _address_header(name: str | None, address: WireAddress) -> Address:
    return Address(display_name=safe_display_name(name), username=address.local, domain=address.domain)


def list_headers(issue: OutgoingIssue) -> dict[str, str]:
    """The headers that name the list and the issue, the same for every recipient (List-Id, Feedback-ID)."""
    headers = {}
    if issue.list_id:
        headers["List-Id"] = issue.list_id
    if issue.feedback_id:
        headers["Feedback-ID"] = issue.feedback_id
    return headers


def list_unsubscribe(issue: OutgoingIssue, recipient: Recipient) -> str:
    """The https one-click URL first (the one RFC 8058 clients POST to), then the mailto when configured."""
    targets = [f"<{recipient.unsubscribe_url}>"]
    if issue.unsubscribe_mailto:
        targets.append(f"<mailto:{issue.unsubscribe_mailto}?subject=unsubscribe>")
    return ", ".join(targets)


def list_id_header(name: str, list_id: str) -> str:
    """RFC 2919's List-Id: the newsletter's name as a phrase (quoted when it holds a special), then the id."""
    phrase = safe_display_name(name)
    if not phrase.isascii():
        # Non-ASCII goes out as encoded words, which a quoted string may not hold: specials become spaces.
        phrase = " ".join("".join(" " if c in _SPECIALS else c for c in phrase).split())
    elif any(c in _SPECIALS for c in phrase):
        phrase = '"' + phrase.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{phrase} <{list_id}>" if phrase else f"<{list_id}>"


def feedback_id(campaign: str, newsletter: str, sender: str) -> str:
    """Gmail's Feedback-ID (Postmaster Tools' feedback loop): campaign:newsletter:mail type:sender, no colon in any."""
    fields = (campaign, newsletter, "newsletter", sender)
    return ":".join(re.sub(r"[:\s]+", "-", field) for field in fields)


def ensure_message_id(message: EmailMessage) -> str:
    """A transactional message keeps its own Message-ID, or gets one in the sender's domain."""
    if message["Message-ID"] is None:
        sender = message["From"]
        domain = sender.addresses[0].domain if getattr(sender, "addresses", None) else None
        message["Message-ID"] = make_msgid(domain=domain or None)
    return str(message["Message-ID"])


@dataclass(frozen=True)
class Prepared:
    """One recipient's message, serialized, with what the SMTP envelope needs."""

    message: EmailMessage
    envelope_from: str
    envelope_to: str
    smtputf8: bool  # the envelope or headers hold a non-ASCII address: only an SMTPUTF8 server takes it

    def data(self, linesep: str = "\n") -> bytes:
        chosen = UTF8_POLICY if self.smtputf8 else MAIL_POLICY
        return self.message.as_bytes(policy=chosen.clone(linesep=linesep))


def build_message(issue: OutgoingIssue, recipient: Recipient, *, now: datetime) -> EmailMessage:
    return prepare(issue, recipient, now=now).message


def prepare(issue: OutgoingIssue, recipient: Recipient, *, now: datetime) -> Prepared:
    """Build the message. Any exception here or from `Prepared.data` means this one recipient cannot be
    mailed (providers record the reason and go on)."""
    sender, to = wire_address(issue.from_email), wire_address(recipient.email)
    message = EmailMessage(policy=MAIL_POLICY)
    message["From"] = _address_header(issue.from_name, sender)
    message["To"] = _address_header(recipient.name, to)
    if issue.reply_to:
        message["Reply-To"] = issue.reply_to
    # The subject may be made from a headline: content, never a header break.
    message["Subject"] = safe_display_name(placeholders.neutralize_text(issue.subject))
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(idstring=f"{issue.slug}.{recipient.person_id}", domain=sender.domain)
    # RFC 8058 one-click: mail clients POST "List-Unsubscribe=One-Click" to this URL.
    message["List-Unsubscribe"] = list_unsubscribe(issue, recipient)
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    for header, value in list_headers(issue).items():
        message[header] = value
    text = placeholders.fill(issue.text, recipient.values, html_part=False)
    html = placeholders.fill(issue.html, recipient.values, html_part=True)
    message.set_content(text, subtype="plain", charset="utf-8")
    message.add_alternative(html, subtype="html", charset="utf-8")
    return Prepared(message, sender.addr_spec, to.addr_spec, sender.smtputf8 or to.smtputf8)
