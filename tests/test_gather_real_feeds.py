"""Feeds as real publishers write them (issue 16): relative links, items without links, items told
apart only by their #fragment, Atom wrapped in an XHTML page, and a feed of which nothing can be kept.

Every case is read both ways: by the fast path when it takes the document, and by feedparser alone
(the `reader` fixture turns the fast path off), since the fix must hold on both. Where the store's
identity of an article is at stake, the feed is gathered for real from the loopback feed server into
SQLite and PostgreSQL. The feeds are ours, in tests/data/feeds/ or below.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from digest.config import SourceConfig
from digest.gather import fastfeed, gather_sources
from digest.gather.feeds import parse_document
from digest.gather.normalize import NotAFeed, ParsedFeed
from digest.store.models import Article, Source
from tests.cli_helpers import run_cli
from tests.conftest import ROOT
from tests.fakes.feed_server import FeedServer, Reply
from tests.gather_helpers import core_for, newsletter, rss

FEEDS = ROOT / "tests" / "data" / "feeds"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["fast path", "feedparser"])
def reader(request, monkeypatch) -> str:
    """Which parser reads plain RSS and Atom: the fast path where it accepts them, or feedparser alone."""
    if request.param == "feedparser":
        monkeypatch.setattr(fastfeed, "read", lambda *args: None)
    return str(request.param)


def read(path: Path, url: str | None = None) -> ParsedFeed:
    return parse_document(path.read_bytes(), url=url or path.as_uri())


def urls(feed: ParsedFeed) -> list[str]:
    return [a.url for a in feed.articles]


def served(server: FeedServer, path: Path, host: str) -> bytes:
    """The feed with its links on the loopback server, so that gathering never leaves the machine."""
    return path.read_bytes().replace(host.encode(), server.url("").encode())


def gather_one(settings, server: FeedServer, name: str, route: str):
    """Gather one source (internal: its article pages are on loopback too); the report, articles and row."""
    source = SourceConfig(name=name, url=server.url(route), section="Reporting", internal=True)
    core = core_for(settings, newsletter([source]))
    try:
        report = gather_sources(core.sessions, core.config, now=NOW)
        again = gather_sources(core.sessions, core.config, now=NOW)
        with core.sessions() as session:
            stored = list(session.scalars(select(Article).order_by(Article.published_at.desc(), Article.id)))
            row = session.scalars(select(Source).where(Source.name == name)).one()
            session.expunge_all()
        return report, again, stored, row
    finally:
        core.close()


# --- Relative links --------------------------------------------------------------------------------


def test_relative_atom_links_resolve_against_xml_base_or_else_the_feeds_own_url(reader, settings):
    based = FEEDS / "atom-relative-links.atom"  # xml:base on the feed (relative) and on one entry
    # Read from disk: the feed's own URL is its rel="self" link (the old reading kept 1 of 3).
    assert urls(read(based)) == [
        "https://notes.example.org/journal/2026/11/harbour-cranes",
        "https://mirror.example.net/notes/ferry-timetable",
        "https://notes.example.org/about",
    ]
    # Fetched: the URL it was fetched from.
    assert urls(read(based, "https://cdn.example.com/feeds/notes.xml")) == [
        "https://cdn.example.com/journal/2026/11/harbour-cranes",
        "https://mirror.example.net/notes/ferry-timetable",
        "https://cdn.example.com/about",
    ]

    plain = FEEDS / "atom-relative-no-base.atom"  # no xml:base, no rel="self", a relative site link
    if reader == "fast path":
        assert fastfeed.read(plain.read_bytes(), None) is not None
    # From disk, with nothing better to go by, the file's own URL (the old reading kept none).
    assert urls(read(plain)) == [(FEEDS / "posts" / "first-note").as_uri(), "file:///posts/second-note"]

    with FeedServer() as server:
        server.routes["/feeds/plain.xml"] = Reply(
            body=plain.read_bytes(), headers={"Content-Type": "application/atom+xml"}
        )
        report, _, stored, _ = gather_one(settings, server, "notes", "/feeds/plain.xml")
    assert report.sources[0].ok and report.new == 2
    assert [a.url for a in stored] == [server.url("/feeds/posts/first-note"), server.url("/posts/second-note")]


# --- Items without a link --------------------------------------------------------------------------

STATUS = FEEDS / "rss-status-no-links.rss"


def test_rss_items_without_a_link_take_their_guid_url_or_the_channel_link_with_an_anchor(reader, settings, tmp_path):
    if reader == "fast path":
        assert fastfeed.read(STATUS.read_bytes(), None) is not None
    feed = read(STATUS)
    found = [(a.url, a.link_from) for a in feed.articles]
    assert found[:4] == [
        ("https://status.example.org/incidents/1042", "guid"),  # isPermaLink="false", but a URL
        ("https://status.example.org/maintenance/77", "guid"),
        ("https://status.example.org/#incident-1041", "channel"),
        ("https://status.example.org/#incident-1040", "channel"),
    ]
    # No GUID at all: an anchor made from the item's title and date, the same on every reading.
    assert found[4][1] == "channel" and found[4][0].startswith("https://status.example.org/#item-")
    assert urls(read(STATUS)) == urls(feed) and len(set(urls(feed))) == 5

    # inspect-feed says where each URL came from.
    result = run_cli(["inspect-feed", "--json", str(STATUS)], None, tmp_path)
    assert result.returncode == 0, result.stderr
    (inspected,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["link_from"] for a in inspected["articles"]] == ["guid", "guid", "channel", "channel", "channel"]
    assert [a["url"] for a in inspected["articles"]] == urls(feed)

    # Gathered twice: all five kept, each once.
    with FeedServer() as server:
        server.routes["/status.rss"] = Reply(body=served(server, STATUS, "https://status.example.org"))
        report, again, stored, _ = gather_one(settings, server, "status", "/status.rss")
    assert report.sources[0].ok and report.new == 5 and again.new == 0
    assert [a.url for a in stored][2:4] == [server.url("/#incident-1041"), server.url("/#incident-1040")]
    assert len({a.url for a in stored}) == 5


# --- Items told apart only by their fragment -------------------------------------------------------

COMMENTS = FEEDS / "comments-fragments.rss"


def test_items_that_only_their_fragment_tells_apart_keep_it_and_others_drop_it(reader, settings):
    if reader == "fast path":
        assert fastfeed.read(COMMENTS.read_bytes(), None) is not None
    assert urls(read(COMMENTS)) == [
        "https://quay.example.org/2026/harbour-cranes/#comment-12",
        "https://quay.example.org/2026/harbour-cranes/#comment-13",
        "https://quay.example.org/2026/ferry-timetable/",  # "#more": nothing else to tell apart from
    ]

    with FeedServer() as server:
        server.routes["/comments.rss"] = Reply(body=served(server, COMMENTS, "https://quay.example.org"))
        # The post's page names itself as canonical: fetched for a comment, it would merge them again.
        page = f'<html><head><link rel="canonical" href="{server.url("/2026/harbour-cranes/")}"></head></html>'
        server.routes["/2026/harbour-cranes/"] = Reply(body=page.encode(), headers={"Content-Type": "text/html"})
        report, again, stored, _ = gather_one(settings, server, "comments", "/comments.rss")
        asked = {r.path for r in server.requests}
    assert report.new == 3 and again.new == 0
    assert [a.title for a in stored] == [
        "Comment on Harbour cranes by Ben",
        "Comment on Harbour cranes by Ana",
        "Ferry timetable",
    ]
    assert [a.url for a in stored] == [
        server.url("/2026/harbour-cranes/#comment-13"),
        server.url("/2026/harbour-cranes/#comment-12"),
        server.url("/2026/ferry-timetable/"),
    ]
    assert "/2026/harbour-cranes/" not in asked


# --- Atom wrapped in an XHTML page ----------------------------------------------------------------

ENTRY = (
    "<{p}entry><{p}title>Lighthouse keeper retires</{p}title><{p}link href='https://wrapped.example.org/lighthouse'/>"
    "<{p}id>tag:wrapped.example.org,2026:1</{p}id><{p}updated>2026-11-26T10:00:00Z</{p}updated></{p}entry>"
)
WRAPPED = {
    # Not well-formed XML (an HTML entity, an unclosed <br>): the <feed> element is read on its own.
    "sloppy": "<!DOCTYPE html><html><head><title>Feed</title></head><body><p>Read&nbsp;below<br></p>"
    f"<feed xmlns='http://www.w3.org/2005/Atom'><title>Wrapped</title>{ENTRY.format(p='')}</feed></body></html>",
    # The Atom namespace declared on the page's root, with a prefix.
    "prefixed": "<html xmlns='http://www.w3.org/1999/xhtml' xmlns:a='http://www.w3.org/2005/Atom'><body>"
    f"<a:feed><a:title>Wrapped</a:title>{ENTRY.format(p='a:')}</a:feed></body></html>",
}


def test_an_atom_feed_wrapped_in_an_xhtml_page_is_read(reader):
    feed = read(FEEDS / "atom-in-xhtml.xhtml")
    assert (feed.format, feed.title) == ("atom10", "Wrapped Notes")
    assert [(a.title, a.url) for a in feed.articles] == [
        ("Lighthouse keeper retires", "https://wrapped.example.org/lighthouse"),
        ("New buoy in the channel", "https://wrapped.example.org/buoy"),
    ]
    for body in WRAPPED.values():
        feed = parse_document(body.encode(), url="https://wrapped.example.org/feed")
        assert (feed.format, urls(feed)) == ("atom10", ["https://wrapped.example.org/lighthouse"])
    # A page that merely names the Atom namespace is still a page, and not a feed.
    page = (
        b"<html><body><p>Our feed uses http://www.w3.org/2005/Atom; see <a href='/feed'>the feed</a>.</p></body></html>"
    )
    with pytest.raises(NotAFeed, match="an HTML page"):
        parse_document(page, url="https://wrapped.example.org/")


# --- Nothing kept is an error ----------------------------------------------------------------------


def test_a_feed_whose_items_are_all_dropped_is_an_error_for_its_source(reader, settings):
    unusable = rss(
        [
            {"title": "Script", "link": "javascript:alert(1)", "description": "x"},
            {"title": "A file here", "link": "file:///etc/passwd", "description": "y"},
        ]
    )
    with pytest.raises(NotAFeed, match="none of the feed's 2 items could be kept"):
        parse_document(unusable, url="https://news.example.org/feed")

    with FeedServer({"/feed": Reply(body=unusable)}) as server:
        report, _, stored, row = gather_one(settings, server, "unusable", "/feed")
    (source,) = report.sources
    assert not source.ok and source.error is not None and "none of the feed's 2 items" in source.error
    assert stored == []
    # On the source's row, where `digest sources` shows it as failing.
    assert row.last_error == source.error and row.last_error_at is not None and row.last_success_at is None

    # Some kept: the source is read, and the loss is a warning.
    with FeedServer() as server:
        server.routes["/feed"] = Reply(
            body=rss(
                [
                    {"title": "Good", "link": server.url("/good"), "description": "z"},
                    {"title": "Bad", "link": "javascript:alert(1)", "description": "w"},
                ]
            )
        )
        report, _, stored, row = gather_one(settings, server, "mixed", "/feed")
    (source,) = report.sources
    assert source.ok and [a.title for a in stored] == ["Good"]
    assert source.warning is not None and "1 of 2 items skipped" in source.warning

    # The same for a JSON Feed.
    json_feed = {"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "1", "url": "javascript:x"}]}
    with pytest.raises(NotAFeed, match="none of the feed's 1 items could be kept"):
        parse_document(json.dumps(json_feed).encode(), url="https://news.example.org/feed.json")
