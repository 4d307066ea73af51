"""The outbox provider: one .eml file per recipient in a folder, for the demo, tests and staging.

Issues go to DIGEST_OUTBOX_DIR/<issue slug>/<delivery id>.eml; transactional mail (confirmations) to
DIGEST_OUTBOX_DIR/transactional/.
"""

from __future__ import annotations

import os
import re
from email.message import EmailMessage
from pathlib import Path

from digest.delivery.message import build_message, ensure_message_id
from digest.delivery.providers.base import FailureKind, OutgoingIssue, ProviderError, Recipient
from digest.models import utcnow


def write_atomically(path: Path, data: bytes) -> None:
    """Written whole or not at all: a reader never sees half a message."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class OutboxProvider:
    name = "outbox"
    max_batch_size = 1000

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def folder(self, issue: OutgoingIssue) -> Path:
        return self.directory / issue.slug

    def _make_folder(self, folder: Path) -> None:
        try:
            # Messages hold readers' addresses and personal links: the owner's alone.
            for path in (self.directory, folder):
                path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ProviderError(f"cannot create the outbox folder {folder}: {exc.strerror or exc}") from None

    def send_batch(self, issue: OutgoingIssue, recipients: list[Recipient], *, batch_id: int) -> dict[int, str | None]:
        folder = self.folder(issue)
        self._make_folder(folder)
        sent: dict[int, str | None] = {}
        for recipient in recipients:
            message = build_message(issue, recipient, now=utcnow())
            path = folder / f"{recipient.delivery_id:08d}.eml"
            try:
                write_atomically(path, message.as_bytes())
            except OSError as exc:
                raise ProviderError(
                    f"cannot write {path}: {exc.strerror or exc}", kind=FailureKind.REFUSED, sent=sent
                ) from None
            sent[recipient.delivery_id] = message["Message-ID"]
        return sent

    def payload_size(self, issue: OutgoingIssue, recipients: list[Recipient], *, batch_id: int) -> int:
        return sum(len(build_message(issue, r, now=utcnow()).as_bytes()) for r in recipients)

    def send_transactional(self, message: EmailMessage) -> str | None:
        message_id = ensure_message_id(message)
        folder = self.directory / "transactional"
        self._make_folder(folder)
        stamp = utcnow().strftime("%Y%m%dT%H%M%S%f")
        safe_id = re.sub(r"[^A-Za-z0-9.@-]+", "_", message_id.strip("<>"))[:120]
        path = folder / f"{stamp}-{safe_id}.eml"
        try:
            write_atomically(path, message.as_bytes())
        except OSError as exc:
            raise ProviderError(f"cannot write {path}: {exc.strerror or exc}", kind=FailureKind.REFUSED) from None
        return message_id

    def close(self) -> None:
        pass
