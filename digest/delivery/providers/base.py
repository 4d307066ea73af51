"""What every provider is given and must do: send one batch of one rendered issue, or one
transactional message (a confirmation mail), and say clearly how a failure should be handled.

A provider never retries by itself and never touches the store: it makes one attempt and raises a
`digest.errors.ProviderError` whose `kind` tells the sender what to do next (see `FailureKind`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from typing import Protocol

from digest.email.message import OutgoingIssue, Recipient


@dataclass
class BatchResult:
    """What became of a batch that was not refused as a whole: each recipient is in one of the two."""

    sent: dict[int, str | None] = field(default_factory=dict)  # person id -> the provider's message id
    refused: dict[int, str] = field(default_factory=dict)  # person id -> why this one recipient was not sent


class Provider(Protocol):
    name: str
    max_batch_size: int
    # How far ahead of its delivery time a batch may be handed over (`OutgoingIssue.send_at`): SendGrid
    # schedules up to 72 hours ahead; SMTP and the outbox take a batch only when it is due (zero).
    schedules_ahead: timedelta

    def send_batch(self, issue: OutgoingIssue, recipients: list[Recipient], *, batch_id: int) -> BatchResult:
        """Send to every recipient; each ends up in the result's `sent` (with the provider's message id)
        or `refused` (with the reason: a message that could not be built, an SMTP server rejecting one
        address). One recipient never fails the batch; an error for the whole batch raises ProviderError."""
        ...

    def payload_size(self, issue: OutgoingIssue, recipients: list[Recipient], *, batch_id: int) -> int:
        """Bytes a batch would put on the wire, for `digest send --dry-run`; sends nothing."""
        ...

    def send_transactional(self, message: EmailMessage) -> str | None:
        """Send one ready message (a double opt-in confirmation, say); return the provider's message id."""
        ...

    def new_schedule_id(self) -> str:
        """An id grouping the issue's scheduled sends at the provider, so they can be cancelled together.
        Only asked of a provider that schedules ahead."""
        ...

    def cancel_scheduled(self, schedule_id: str) -> None:
        """Cancel every scheduled send under `schedule_id` that has not gone yet (raises ProviderError)."""
        ...

    def close(self) -> None:
        """Let go of connections held between batches."""
        ...


class Preparing(Protocol):
    """A provider whose batch is made before anything is sent (SendGrid's request body), so that the
    sender can make the next batch's request while it records the last one's outcome. Optional: the
    sender calls `send_batch` of a provider without it."""

    def prepare_batch(
        self, issue: OutgoingIssue, recipients: list[Recipient], *, batch_id: int
    ) -> Callable[[], BatchResult]:
        """Everything `send_batch` does before anything leaves this process; the call it returns sends
        (once), with the result and the failures of `send_batch`."""
        ...


class Portable(Protocol):
    """A provider that can be made again in another process, where a large send makes and posts its
    requests (`digest.delivery.posting`). Optional: the others post from a thread of the sender."""

    def portable(self) -> Callable[[], Provider]:
        """A picklable call that makes an equivalent provider (its settings, none of its connections)."""
        ...
