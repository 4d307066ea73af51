"""The outbox provider: one .eml file per recipient in a folder, for the demo, tests and staging.

Issues go to DIGEST_OUTBOX_DIR/<issue slug>/<subscriber id>.eml; transactional mail (confirmations) to
DIGEST_OUTBOX_DIR/transactional/.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

from digest.delivery.providers.base import BatchResult
from digest.delivery.providers.estimate import estimated_payload
from digest.email.message import OutgoingIssue, Recipient, ensure_message_id, prepare, unbuildable
from digest.errors import FailureKind, ProviderError
from digest.store.models import utcnow


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
    schedules_ahead = timedelta(0)  # a batch is taken only when it is due

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

    def send_batch(self, issue: OutgoingIssue, recipients: list[Recipient], *, batch_id: int) -> BatchResult:
        folder = self.folder(issue)
        self._make_folder(folder)
        result = BatchResult()
        for recipient in recipients:
            try:
                prepared = prepare(issue, recipient, now=utcnow())
                data = prepared.data()
            except Exception as exc:  # whatever one recipient's data does, the others still go
                result.refused[recipient.person_id] = unbuildable(exc)
                continue
            path = folder / f"{recipient.person_id:08d}.eml"
            try:
                write_atomically(path, data)
            except OSError as exc:
                raise ProviderError(
                    f"cannot write {path}: {exc.strerror or exc}",
                    kind=FailureKind.REFUSED,
                    sent=result.sent,
                    refused=result.refused,
                ) from None
            result.sent[recipient.person_id] = prepared.message["Message-ID"]
        return result

    def payload_size(self, issue: OutgoingIssue, recipients: list[Recipient], *, batch_id: int) -> int:
        now = utcnow()
        return estimated_payload(recipients, lambda recipient: len(prepare(issue, recipient, now=now).data()))

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

    def new_schedule_id(self) -> str:
        raise ProviderError(f"{self.name} does not schedule sends ahead", kind=FailureKind.REFUSED)

    def cancel_scheduled(self, schedule_id: str) -> None:
        raise ProviderError(f"{self.name} does not schedule sends ahead", kind=FailureKind.REFUSED)

    def close(self) -> None:
        pass
