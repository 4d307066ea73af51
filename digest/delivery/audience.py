"""What delivery needs from the people it mails, and nothing more: delivery knows batches and deliveries,
the audience (`subscribers.audience.StoredAudience`, wired in by digest.core) knows who they are.

A person is only ever an id here: delivery stores it in `deliveries.subscriber_id` and hands it back.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Protocol

from sqlalchemy.orm import Session

from digest.email.message import Recipient
from digest.store.db import TextSelect


class Audience(Protocol):
    def eligible(self, session: Session, sections: Sequence[str]) -> TextSelect:
        """A SELECT of everyone to mail now (active, confirmed, not suppressed) with three columns: `id`;
        `m`, the bit mask of the `sections` they left out (bit i: sections[i]); and `z`, their IANA zone
        (NULL: the newsletter's). The plan runs it inside its own INSERT ... SELECT."""
        ...

    def present(self, people: TextSelect) -> TextSelect:
        """The rows of `people` (a SELECT with a column `id`, a person id) whose person is still in the store:
        a claim makes deliveries rows only for them (someone erased since the plan has no row to refer to)."""
        ...

    def recipients(
        self, session: Session, deliveries: Mapping[int, int]
    ) -> tuple[list[Recipient], list[int], dict[int, str]]:
        """For delivery id -> person id (a batch's pending deliveries, in order): the recipients to mail
        now; the delivery ids of those who left since the plan (not to be mailed); and the delivery ids
        whose values or links could not be made, with the reason."""
        ...

    def batch_recipients(
        self, session: Session, pending: TextSelect
    ) -> tuple[list[Recipient], list[int], dict[int, str]]:
        """As `recipients`, for the deliveries a SELECT names (columns `delivery_id` and `subscriber_id`),
        which the audience runs inside its own query, in delivery id order (a claimed batch's)."""
        ...

    def test_recipient(self, session: Session, address: str) -> tuple[Recipient, list[str]]:
        """The recipient of a test send (delivery id 0) and the sections that person left out; raises a
        UsageError when `address` is not an address."""
        ...

    def addresses(self, session: Session, ids: Collection[int]) -> dict[int, str]:
        """Person id -> address, for a report."""
        ...
