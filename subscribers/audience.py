"""The audience as delivery meets it (the `digest.delivery.audience.Audience` interface): who is mailed,
and with which per-recipient values and links.

Delivery never reads these tables itself. It gets the people to mail as SQL that it wraps in its own
INSERT ... SELECT, so a plan of a million recipients never passes through Python; then, one batch at a
time, their `Recipient`s, with whoever left or was suppressed since the plan set apart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from digest.email.message import Recipient, unbuildable
from digest.store.db import TextSelect
from subscribers.models import Subscriber, Suppression, first_name, new_link_key
from subscribers.store import normalize_email
from subscribers.tokens import SignedLinks

_ELIGIBLE = "FROM subscribers s WHERE s.status = 'active' AND s.confirmed_at IS NOT NULL"


@dataclass(frozen=True)
class Person:
    """The columns of a subscriber that a recipient is made from (lighter than an ORM object)."""

    id: int
    email: str
    name: str | None
    link_key: str


def _suppression_filter(session: Session) -> str:
    """SQL that keeps suppressed addresses out, or nothing when there are no suppressions."""
    suppressed = _suppressed_sql(session)
    return f" AND NOT {suppressed}" if suppressed else ""


def _suppressed_sql(session: Session) -> str | None:
    """SQL true for a subscriber `s` whose address is suppressed, or None when there are no suppressions.

    Suppressions are stored as the address's hash, which each subscriber row keeps beside the address
    (indexed on both), so the filter is a join on the hash, not a hash computed per row."""
    if session.scalar(select(Suppression.id).limit(1)) is None:
        return None
    return _SUPPRESSED


_SUPPRESSED = "EXISTS (SELECT 1 FROM suppressions x WHERE x.email_hash = s.email_hash)"


def _mask_sql(dialect: str, sections: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """SQL for each subscriber's segment as a bit mask over the issue's sections (bit i: left out
    sections[i]), and its parameters. Computed in the one statement that freezes the recipients, so a
    preference saved while the plan is made is either wholly in it or wholly not."""
    if not sections:
        return "0", {}
    params = {f"section_{i}": name for i, name in enumerate(sections)}
    if dialect == "postgresql":
        listed = "(s.preferences -> 'exclude_sections')"
        has_any = f"json_typeof({listed}) = 'array' AND json_array_length({listed}) > 0"
        leaves = f"CAST({listed} AS jsonb) @> jsonb_build_array(CAST(:{{p}} AS text))"
    else:
        has_any = "json_array_length(s.preferences, '$.exclude_sections') > 0"
        leaves = "EXISTS (SELECT 1 FROM json_each(s.preferences, '$.exclude_sections') j WHERE j.value = :{p})"
    bits = " + ".join(f"CASE WHEN {leaves.format(p=p)} THEN {1 << i} ELSE 0 END" for i, p in enumerate(params))
    # Most subscribers leave nothing out: they skip the per-section tests.
    return f"CASE WHEN {has_any} THEN {bits} ELSE 0 END", params


class StoredAudience:
    """The subscribers in the store, as delivery's Audience. `values` is the one place a recipient's
    placeholder values are made (a test may replace it on the instance to make one of them fail)."""

    def __init__(self, links: SignedLinks, first_name_fallback: str):
        self.links = links
        self.first_name_fallback = first_name_fallback

    def values(self, person: Person) -> dict[str, str]:
        unsubscribe_url, preferences_url = self.links.managing(person)  # one HMAC for both
        return {
            "unsubscribe_url": unsubscribe_url,
            "preferences_url": preferences_url,
            "first_name": first_name(person.name) or self.first_name_fallback,
        }

    def recipient(self, person: Person) -> Recipient:
        values = self.values(person)
        return Recipient(person.id, person.email, person.name, values, values["unsubscribe_url"])

    def eligible(self, session: Session, sections: Sequence[str]) -> TextSelect:
        """Active, confirmed subscribers whose address is not suppressed: `id`, the mask `m` of the
        `sections` they left out, and their zone `z` (fixed fragments; every value is a parameter)."""
        mask, params = _mask_sql(session.connection().dialect.name, sections)
        where = f"{_ELIGIBLE}{_suppression_filter(session)}"
        return TextSelect(f"SELECT s.id AS id, {mask} AS m, s.timezone AS z {where}", params)  # noqa: S608

    def present(self, people: TextSelect) -> TextSelect:
        """The rows of `people` (column `id`) whose subscriber row is still there (not erased)."""
        return TextSelect(
            f"SELECT p.* FROM ({people.sql}) p WHERE EXISTS (SELECT 1 FROM subscribers s WHERE s.id = p.id)",  # noqa: S608
            dict(people.params),
        )

    def recipients(self, session: Session, people: Sequence[int]) -> tuple[list[Recipient], list[int], dict[int, str]]:
        """For these subscriber ids, in that order: the recipients to mail now; the ids of those who left
        (unsubscribed, bounced, complained, suppressed) since the plan; and the ids whose values could not
        be made, with the reason (see `_sort_out`)."""
        rows = session.execute(
            select(
                Subscriber.id,
                Subscriber.email,
                Subscriber.name,
                Subscriber.status,
                Subscriber.link_key,
                Subscriber.email_hash,
            ).where(Subscriber.id.in_(set(people)))
        ).all()
        found = {row.id: row[:5] for row in rows}
        hashes = {row.email_hash: row.id for row in rows}  # stored beside the address, as the plan's filter joins it
        suppressed: set[int] = set()
        if hashes:
            listed = session.scalars(select(Suppression.email_hash).where(Suppression.email_hash.in_(hashes)))
            suppressed = {hashes[h] for h in listed}
        staying, left = self._sort_out(
            (person, *found.get(person, (None,) * 5), person in suppressed) for person in people
        )
        recipients, unbuilt = self.recipients_of(staying)
        return recipients, left, unbuilt

    def batch_people(self, session: Session, people: TextSelect) -> tuple[list[Person], list[int]]:
        """The people a SELECT names (column `id`: a batch's frozen members) who are to be mailed now, and
        the ids of those who left since the plan, in id order. The audience runs the SELECT inside its own
        query: one plain query joins them to their subscribers and suppressions, with no list of ids going
        back and forth and no ORM object made (a send asks a thousand times a million)."""
        # The suppressions are joined even when there are none: one probe of their index per person costs
        # the server less than asking first costs a round trip, a thousand times a send.
        rows = session.execute(
            text(
                f"SELECT p.id, s.id, s.email, s.name, s.status, s.link_key, {_SUPPRESSED} AS x "  # noqa: S608
                f"FROM ({people.sql}) p LEFT JOIN subscribers s ON s.id = p.id ORDER BY p.id"
            ),
            dict(people.params),
        )
        return self._sort_out(rows)

    def recipients_of(self, people: Sequence[Person]) -> tuple[list[Recipient], dict[int, str]]:
        """Their recipients, and the ids of those whose values or links could not be made, with the reason.
        Needs no store: the sender's request process calls it (the audience goes there pickled)."""
        recipients: list[Recipient] = []
        unbuilt: dict[int, str] = {}
        recipient = self.recipient
        for person in people:
            try:
                recipients.append(recipient(person))
            except Exception as exc:  # one subscriber's stored data never stops the batch
                unbuilt[person.id] = unbuildable(exc)
        return recipients, unbuilt

    def _sort_out(self, rows: Iterable[Sequence[Any]]) -> tuple[list[Person], list[int]]:
        """(person id, subscriber id, email, name, status, link key, suppressed) rows, the subscriber's
        columns None when they were erased: the people to mail and the ids of those who left. Someone
        erased is in neither: nothing may be written of them."""
        staying: list[Person] = []
        left: list[int] = []
        for person, subscriber_id, email, name, status, link_key, suppressed in rows:
            if subscriber_id is None:
                continue
            # Unsubscribes win: someone who left after the plan was made is not mailed.
            if status != "active" or suppressed:
                left.append(person)
            else:
                staying.append(Person(subscriber_id, email or "", name, link_key or ""))
        return staying, left

    def test_recipient(self, session: Session, address: str) -> tuple[Recipient, list[str]]:
        """The recipient of a test send to `address`, and the sections they left out (none for someone not
        on the list, who gets well-formed links that lead nowhere: a random key no subscriber has).
        Raises InvalidAddress for what is not an address."""
        email = normalize_email(address)
        known = session.scalars(select(Subscriber).where(Subscriber.email == email)).first()
        if known is None:
            return self.recipient(Person(0, email, None, new_link_key())), []
        # Numbered 0 as any test send: it is no delivery of the issue.
        tested = dataclasses.replace(self.recipient(Person(known.id, email, known.name, known.link_key)), person_id=0)
        return tested, known.left_out_sections

    def addresses(self, session: Session, ids: Collection[int]) -> dict[int, str]:
        """Subscriber id -> address, for those still in the store."""
        if not ids:
            return {}
        query = select(Subscriber.id, Subscriber.email).where(Subscriber.id.in_(ids))
        return dict(session.execute(query).all())
