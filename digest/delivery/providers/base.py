"""What every provider is given and must do: send one batch of one rendered issue."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class Recipient:
    delivery_id: int
    email: str
    name: str | None
    values: dict[str, str]  # placeholder name -> this recipient's value
    unsubscribe_url: str


class ProviderError(Exception):
    """The provider refused or failed the batch; `retry` says whether trying again may help."""

    def __init__(self, message: str, *, retry: bool = False):
        super().__init__(message)
        self.retry = retry


class Provider(Protocol):
    name: str
    max_batch_size: int

    def send_batch(self, issue: OutgoingIssue, recipients: list[Recipient], *, batch_id: int) -> dict[int, str | None]:
        """Send to every recipient; return each delivery id's provider message id."""
        ...
