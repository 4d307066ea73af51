"""Events whose payloads hold what JSON allows but the store's text does not (a lone surrogate, a NUL)
are stored like any other, on both stores, instead of failing the whole post; and the payloads come
back as they were posted otherwise (numbers beyond 64 bits, 1e400 kept as text, non-ASCII text)."""

from __future__ import annotations

from sqlalchemy import select

from digest.jobs.audience import store_provider_events
from digest.store.models import Event
from subscribers.events import parse

ODD = (
    b'[{"event":"open","email":"a@example.org","sg_event_id":"odd-1","x":"\\ud800 caf\\u00e9 \\u0000",'
    b'"big":100000000000000000000000000000,"f":1e400},'
    b'{"event":"open","email":"b@example.org","sg_event_id":"odd-2","note":"a literal \\\\u0000"},'
    b'{"event":"bounce","type":"bounce","email":"c@example.org","sg_event_id":"plain","e":"caf\\u00e9 \\u2603",'
    b'"n":[1.5,-0.0,true,null]}]'
)


def test_odd_payloads_are_stored_and_the_rest_of_the_post_with_them(core):
    stored = store_provider_events(core, parse(ODD))
    assert (stored.report.stored, stored.report.duplicates) == (3, 0)
    with core.sessions() as session:
        payloads = list(session.scalars(select(Event.payload).order_by(Event.provider_event_id)))
    odd, literal, plain = payloads
    assert odd["x"] == "? café " and odd["big"] == 10**29 and odd["f"] == "1e400"
    assert literal["note"] == "a literal \\u0000"  # the six characters, not a NUL
    assert plain["e"] == "café ☃" and plain["n"] == [1.5, -0.0, True, None]
    # A replay is a duplicate, odd or not.
    again = store_provider_events(core, parse(ODD))
    assert (again.report.stored, again.report.duplicates) == (0, 3)
