"""What delivery needs from the people it mails, and nothing more: delivery knows batches and deliveries,
the audience (`subscribers.audience.StoredAudience`, wired in by digest.core) knows who they are.

A person is only ever an id here: delivery stores it in `deliveries.subscriber_id` and hands it back.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Protocol

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
        deliveries rows are written only for them (someone erased since the plan has no row to refer to)."""
        ...

    def recipients(self, session: Session, people: Sequence[int]) -> tuple[list[Recipient], list[int], dict[int, str]]:
        """For these person ids, in order: the recipients to mail now (`Recipient.person_id`); the ids of
        those who left since the plan (not to be mailed); and the ids whose values or links could not be
        made, with the reason."""
        ...

    def batch_people(self, session: Session, people: TextSelect) -> tuple[list[Any], list[int]]:
        """The people a SELECT names (column `id`: a batch's frozen members), which the audience runs inside
        its own query, in id order: those to mail now (opaque to delivery but for their `id`, to hand to
        `recipients_of`), and the ids of those who left since the plan. Someone erased is in neither."""
        ...

    def recipients_of(self, people: Sequence[Any]) -> tuple[list[Recipient], dict[int, str]]:
        """The recipients of people from `batch_people`, and the ids of those whose values or links could
        not be made, with the reason. Touches no store; the audience must pickle, as it goes to the
        sender's request process (`digest.delivery.posting`) to make them there."""
        ...

    def test_recipient(self, session: Session, address: str) -> tuple[Recipient, list[str]]:
        """The recipient of a test send (person id 0) and the sections that person left out; raises a
        UsageError when `address` is not an address."""
        ...

    def addresses(self, session: Session, ids: Collection[int]) -> dict[int, str]:
        """Person id -> address, for a report."""
        ...
