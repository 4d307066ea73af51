"""Bad input: every case ends in a clear per-source error or a best-effort parse, never a crash or a
hang past the deadline, and one bad source never stops the others. Real HTTP on loopback."""

from __future__ import annotations

import resource
import time

import pytest
from sqlalchemy import select

from digest.gather import gather_sources
from digest.gather.feeds import parse_document
from digest.gather.normalize import NotAFeed
from digest.store.models import Article, Source
from tests.fakes.feed_server import FeedServer, Reply
from tests.gather_helpers import LONG_BODY, core_for, newsletter, rss

GOOD = rss(
    [
        {"title": "Talks resume", "link": "https://news.example.org/talks", "guid": "g1",
         "date": "Mon, 23 Nov 2026 10:00:00 +0000", "content": LONG_BODY},
    ]
)  # fmt: skip

BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY lol "lol">\n'
    + b"".join(
        b'<!ENTITY lol%d "%s">\n' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10) for i in range(1, 10)
    )
    + b']>\n<rss version="2.0"><channel><title>&lol9;</title><item><title>&lol9;</title>'
    b"<link>https://a.example/1</link></item></channel></rss>"
)
# No nesting, so each declaration looks harmless; used 200,000 times it expands to 2 GB.
QUADRATIC = (
    b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a "' + b"A" * 4000 + b'">\n]>\n'
    b'<rss version="2.0"><channel><title>t</title><item><title>x</title><link>https://a.example/1</link>'
    b"<description>" + b"&a;" * 200_000 + b"</description></item></channel></rss>"
)
HOMEPAGE = (
    b"<!DOCTYPE html><html><head><title>News home</title>"
    b'<link rel="alternate" type="application/rss+xml" href="/feed.xml"></head>'
    b"<body><h1>Latest</h1><ul><li><a href='/a'>A story</a></li></ul></body></html>"
)
LATIN1_NO_DECLARATION = (
    '<rss version="2.0"><channel><title>Caf\xe9</title><item><title>Caf\xe9 cr\xe8me prices rise</title>'
    "<link>https://a.example/cafe</link></item></channel></rss>"
).encode("latin-1")
UNDEFINED_ENTITIES = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><item>'
    b"<title>Ceasefire&nbsp;holds &mdash; for now</title><link>https://a.example/ceasefire</link>"
    b"</item></channel></rss>"
)
TRUNCATED = GOOD[: GOOD.index(b"<item>")] + (
    b"<item><title>First</title><link>https://a.example/first</link></item>"
    b"<item><title>Second</title><link>https://a.example/second</link></item><item><title>Thi"
)


def bad_routes() -> dict[str, Reply]:
    return {
        "/good": Reply(body=GOOD, headers={"Content-Type": "application/rss+xml"}),
        "/billion-laughs": Reply(body=BILLION_LAUGHS),
        "/quadratic": Reply(body=QUADRATIC),
        "/undefined-entities": Reply(body=UNDEFINED_ENTITIES),
        "/truncated": Reply(body=TRUNCATED),
        "/latin1": Reply(body=LATIN1_NO_DECLARATION, headers={"Content-Type": "text/xml"}),
        "/mislabeled": Reply(
            body=LATIN1_NO_DECLARATION, headers={"Content-Type": "application/rss+xml; charset=utf-8"}
        ),
        "/homepage": Reply(body=HOMEPAGE, headers={"Content-Type": "application/rss+xml"}),
        "/empty": Reply(body=b""),
        "/huge": Reply(body=b"<rss>" + b" " * (50 * 1024 * 1024)),
        "/huge-chunked": Reply(body=b"<rss>" + b" " * (50 * 1024 * 1024), content_length=False),
        "/endless": Reply(endless=True),
        "/trickle": Reply(body=GOOD, trickle=1.0),
        "/loop-a": Reply(302, headers={"Location": "/loop-b"}),
        "/loop-b": Reply(302, headers={"Location": "/loop-a"}),
        "/missing": Reply(404, b"gone"),
        "/server-error": Reply(500, b"oops"),
        "/json-not-feed": Reply(body=b'{"hello": "world"}'),
    }


EXPECTED_ERRORS = {
    "billion-laughs": "entity-expansion bomb",
    "quadratic": "entity-expansion bomb",
    "homepage": "not a feed: an HTML page",
    "empty": "not a feed: the response is empty",
    "huge": "larger than 10 MB",
    "huge-chunked": "larger than 10 MB",
    "endless": "larger than 10 MB",
    "trickle": "no complete response within 1.5 s",
    "loop-a": "too many redirects",
    "missing": "HTTP 404",
    "server-error": "HTTP 500",
    "json-not-feed": "not a JSON Feed",
}
BEST_EFFORT = {
    "good": ["Talks resume"],
    "undefined-entities": ["Ceasefire holds — for now"],  # &nbsp; read as a space
    "truncated": ["First", "Second"],
    "latin1": ["Café crème prices rise"],
    "mislabeled": ["Café crème prices rise"],
}


@pytest.fixture
def server():
    with FeedServer(bad_routes()) as running:
        yield running


def test_every_bad_source_gets_its_own_error_and_the_good_ones_are_stored(settings, server):
    names = [*EXPECTED_ERRORS, *BEST_EFFORT]
    config = newsletter([(name, server.url(f"/{name}")) for name in names], total_timeout=1.5, read_timeout=5)
    core = core_for(settings, config)
    try:
        started = time.monotonic()
        report = gather_sources(core.sessions, core.config)
        elapsed = time.monotonic() - started
        by_name = {r.name: r for r in report.sources}
        for name, expected in EXPECTED_ERRORS.items():
            assert not by_name[name].ok, name
            assert expected in by_name[name].error, (name, by_name[name].error)
            assert "\n" not in by_name[name].error
        for name in BEST_EFFORT:
            assert by_name[name].ok, (name, by_name[name].error)
        assert by_name["truncated"].warning and "malformed" in by_name["truncated"].warning
        # The trickling body would take half an hour (a byte a second); cut off at its 1.5 s deadline,
        # the gather ends within a minute even on a loaded machine (the bound is loose on purpose).
        assert elapsed < 60, elapsed
        with core.sessions() as session:
            titles = {a.title for a in session.scalars(select(Article))}
            sources = {s.name: s for s in session.scalars(select(Source))}
        for expected_titles in BEST_EFFORT.values():
            assert set(expected_titles) <= titles
        for name, expected in EXPECTED_ERRORS.items():
            assert expected in sources[name].last_error
            assert sources[name].last_error_at is not None and sources[name].last_success_at is None
        assert sources["good"].last_error is None and sources["good"].last_success_at is not None
    finally:
        core.close()


def test_an_entity_bomb_is_refused_before_it_can_use_memory():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for body in (BILLION_LAUGHS, QUADRATIC):
        with pytest.raises(NotAFeed, match="entity-expansion bomb"):
            parse_document(body, url="https://a.example/feed")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100


def test_an_external_entity_is_refused():
    body = (
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b'<rss version="2.0"><channel><title>&xxe;</title></channel></rss>'
    )
    with pytest.raises(NotAFeed, match="external entity"):
        parse_document(body, url="https://a.example/feed")


def test_ordinary_declared_entities_still_parse():
    body = (
        b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY copy "&#169;">\n<!ENTITY org "Meridian">\n]>\n'
        b'<rss version="2.0"><channel><title>&org;</title><item><title>&copy; &org; review</title>'
        b"<link>https://a.example/1</link></item></channel></rss>"
    )
    feed = parse_document(body, url="https://a.example/feed")
    assert [a.title for a in feed.articles] == ["© Meridian review"]


def test_a_source_that_fails_keeps_its_articles_and_records_the_error(settings):
    routes = {"/feed": Reply(body=GOOD)}
    with FeedServer(routes) as server:
        core = core_for(settings, newsletter([("flaky", server.url("/feed"))]))
        try:
            first = gather_sources(core.sessions, core.config)
            assert first.new == 1
            server.routes["/feed"] = Reply(503, b"down for maintenance")
            second = gather_sources(core.sessions, core.config)
            assert second.failed == 1 and "HTTP 503" in second.sources[0].error
            with core.sessions() as session:
                source = session.scalars(select(Source)).one()
                assert session.scalars(select(Article)).one().title == "Talks resume"
            assert "HTTP 503" in source.last_error
            assert source.last_error_at >= source.last_success_at
        finally:
            core.close()
