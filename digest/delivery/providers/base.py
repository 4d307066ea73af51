"""What every provider is given and must do: send one batch of one rendered issue, or one
transactional message (a confirmation mail), and say clearly how a failure should be handled.

A provider never retries by itself and never touches the store: it makes one attempt and raises a
`ProviderError` whose `kind` tells the sender what to do next (see `FailureKind`).
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from enum import Enum
from typing import Protocol


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


class FailureKind(Enum):
    """How the sender treats a failed attempt."""

    TRANSIENT = "transient"  # 5xx, refused connection: back off and try again, a bounded number of times
    # The request may have reached the provider and been accepted (a timeout or a broken connection after it
    # was sent): never retried by itself; the batch stays `submitting` until events or an operator settle it.
    UNKNOWN = "unknown"
    RATE_LIMITED = "rate_limited"  # 429: wait `retry_after` seconds, then try again
    REFUSED = "refused"  # 400, 403, 413, ...: this batch cannot go as it is; fail it and go on
    STOP = "stop"  # 401, a wrong SMTP password: no batch can go; stop the whole send


class ProviderError(Exception):
    """One attempt failed. `sent` holds the recipients that did go out before the failure (SMTP, outbox)."""

    def __init__(
        self,
        message: str,
        *,
        kind: FailureKind = FailureKind.REFUSED,
        retry_after: float | None = None,
        sent: dict[int, str | None] | None = None,
        retry: bool | None = None,
    ):
        super().__init__(message)
        if retry is not None:  # the foundation's spelling: retry=True means transient
            kind = FailureKind.TRANSIENT if retry else kind
        self.kind = kind
        self.retry_after = retry_after
        self.sent: dict[int, str | None] = sent or {}

    @property
    def retry(self) -> bool:
        return self.kind in (FailureKind.TRANSIENT, FailureKind.RATE_LIMITED)


class Provider(Protocol):
    name: str
    max_batch_size: int

    def send_batch(self, issue: OutgoingIssue, recipients: list[Recipient], *, batch_id: int) -> dict[int, str | None]:
        """Send to every recipient; return each delivery id's provider message id.

        Recipients the provider refused one by one (an SMTP server rejecting one address) are left out
        of the result; an error for the whole batch raises ProviderError."""
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
