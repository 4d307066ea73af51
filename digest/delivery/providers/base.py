"""What every provider is given and must do: send one batch of one rendered issue, or one
transactional message (a confirmation mail), and say clearly how a failure should be handled.

A provider never retries by itself and never touches the store: it makes one attempt and raises a
`ProviderError` whose `kind` tells the sender what to do next (see `FailureKind`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import EmailMessage
from enum import Enum
from typing import Protocol

from digest.errors import DigestError


@dataclass(frozen=True)
class OutgoingIssue:
    issue_id: int
    slug: str
    subject: str
    html: str  # with placeholders, rendered once
    text: str
    from_email: str
    from_name: str
    reply_to: str | None
    unsubscribe_mailto: str | None = None  # an extra List-Unsubscribe target, when configured


@dataclass(frozen=True)
class Recipient:
    delivery_id: int
    email: str
    name: str | None
    values: dict[str, str]  # placeholder name -> this recipient's value
    unsubscribe_url: str


@dataclass
class BatchResult:
    """What became of a batch that was not refused as a whole: each recipient is in one of the two."""

    sent: dict[int, str | None] = field(default_factory=dict)  # delivery id -> the provider's message id
    refused: dict[int, str] = field(default_factory=dict)  # delivery id -> why this one recipient was not sent


def unbuildable(exc: Exception) -> str:
    """The reason recorded for a recipient whose message could not be built."""
    return f"the message could not be built: {type(exc).__name__}: {exc}"[:500]


class FailureKind(Enum):
    """How the sender treats a failed attempt."""

    TRANSIENT = "transient"  # 5xx, refused connection: back off and try again, a bounded number of times
    # The request may have reached the provider and been accepted (a timeout or a broken connection after it
    # was sent): never retried by itself; the batch stays `submitting` until events or an operator settle it.
    UNKNOWN = "unknown"
    RATE_LIMITED = "rate_limited"  # 429: wait `retry_after` seconds, then try again
    REFUSED = "refused"  # 400, 403, 413, ...: this batch cannot go as it is; fail it and go on
    STOP = "stop"  # 401, a wrong SMTP password: no batch can go; stop the whole send


class ProviderError(DigestError):
    """One attempt failed. `sent` holds the recipients that did go out before the failure (SMTP, outbox),
    `refused` those refused one by one before it (with the reason)."""

    http_status = 502

    def __init__(
        self,
        message: str,
        *,
        kind: FailureKind = FailureKind.REFUSED,
        retry_after: float | None = None,
        sent: dict[int, str | None] | None = None,
        refused: dict[int, str] | None = None,
    ):
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after
        self.sent: dict[int, str | None] = sent or {}
        self.refused: dict[int, str] = refused or {}


class Provider(Protocol):
    name: str
    max_batch_size: int

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

    def close(self) -> None:
        """Let go of connections held between batches."""
        ...
