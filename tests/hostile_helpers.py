"""Shared pieces of the hostile-input tests: a newsletter file whose sources are feeds on loopback,
a mailbox on aiosmtpd, and the outgoing mail of each provider read back as (to, subject, text, html)."""

from __future__ import annotations

import email
import socket
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller

from tests.conftest import ROOT

# Every article of the sample week is dated inside it (2026-W48: Monday 23 to Monday 30 November, New York).
WEEK = "2026-W48"


def newsletter_file(tmp_path: Path, sources: list[tuple[str, str, str]]) -> Path:
    """examples/digest.toml with its sources replaced by (name, url, section)."""
    text = (ROOT / "examples" / "digest.toml").read_text()
    text = text[: text.index("[[sources]]")]
    for name, url, section in sources:
        text += f'\n[[sources]]\nname = "{name}"\nurl = "{url}"\nsection = "{section}"\n'
    path = tmp_path / "digest.toml"
    path.write_text(text)
    return path


def free_port() -> int:
    # aiosmtpd checks readiness by connecting to its port, so it cannot be given port 0.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=policy.default)


def utf8_header(value: str) -> str:
    """A header as an RFC 6532 reader sees it: the email package keeps raw UTF-8 bytes as surrogates."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8")


class Mailbox:
    """An aiosmtpd handler that keeps every message with its envelope recipients."""

    def __init__(self):
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((list(envelope.rcpt_tos), parse(envelope.content)))
        return "250 OK"


def smtp_server(*, smtputf8: bool = True) -> tuple[Controller, Mailbox]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(), enable_SMTPUTF8=smtputf8)
    controller.start()
    return controller, mailbox


@dataclass
class Mail:
    to: list[str]
    subject: str
    text: str
    html: str
    list_unsubscribe: str


def from_message(to: list[str], message: EmailMessage) -> Mail:
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    return Mail(to, utf8_header(str(message["Subject"])), text, html, str(message["List-Unsubscribe"]))


def outbox_mail(folder: Path) -> list[Mail]:
    mails = []
    for path in sorted(folder.glob("*.eml")):
        message = parse(path.read_bytes())
        mails.append(from_message([utf8_header(a.addr_spec) for a in message["To"].addresses], message))
    return mails


def smtp_mail(mailbox: Mailbox) -> list[Mail]:
    return [from_message(to, message) for to, message in mailbox.messages]


def sendgrid_mail(fake) -> list[Mail]:
    return [
        Mail(m["to"], m["subject"], m["text"], m["html"], m["headers"].get("List-Unsubscribe", ""))
        for m in fake.messages()
    ]
