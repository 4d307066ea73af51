"""The outbox provider: one .eml file per recipient in a folder, for the demo, tests and staging."""

from __future__ import annotations

import os
from email.message import EmailMessage
from pathlib import Path

from digest.delivery.message import build_message
from digest.delivery.providers.base import OutgoingIssue, ProviderError, Recipient
from digest.models import utcnow


class OutboxProvider:
    name = "outbox"
    max_batch_size = 1000

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def folder(self, issue: OutgoingIssue) -> Path:
        return self.directory / issue.slug

    def send_batch(self, issue: OutgoingIssue, recipients: list[Recipient], *, batch_id: int) -> dict[int, str | None]:
        folder = self.folder(issue)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ProviderError(f"cannot create the outbox folder {folder}: {exc.strerror or exc}") from None
        sent: dict[int, str | None] = {}
        for recipient in recipients:
            message = build_message(issue, recipient, now=utcnow())
            path = folder / f"{recipient.delivery_id:08d}.eml"
            tmp = path.with_suffix(".eml.tmp")
            # Written whole or not at all: a reader never sees half a message.
            with open(tmp, "wb") as handle:
                handle.write(message.as_bytes())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
            sent[recipient.delivery_id] = message["Message-ID"]
        return sent

    def send_transactional(self, message: EmailMessage) -> str | None:
        """One message to one person (a sign-up confirmation): written under transactional/."""
        folder = self.directory / "transactional"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ProviderError(f"cannot create the outbox folder {folder}: {exc.strerror or exc}") from None
        stamp = utcnow().strftime("%Y%m%dT%H%M%S%f")
        path = folder / f"{stamp}-{os.getpid()}-{id(message):x}.eml"
        tmp = path.with_suffix(".eml.tmp")
        with open(tmp, "wb") as handle:
            handle.write(message.as_bytes())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        return message["Message-ID"]
