"""Gathering into the store (SQLite and PostgreSQL): idempotent, updates in place, deduplicates across
sources, conditional requests, sections from categories, full text from article pages, limits."""

from __future__ import annotations

import asyncio
import gzip
import time
from datetime import UTC, datetime

from sqlalchemy import func, select

from digest.config import SourceConfig
from digest.gather import gather_sources
from digest.gather.fetch import USER_AGENT, Fetcher, FetchOptions
from digest.store.models import Article, Source
from tests.conftest import ROOT
from tests.fakes.feed_server import FeedServer, Reply
from tests.gather_helpers import LONG_BODY, core_for, newsletter, rss

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def item(n: int, **extra) -> dict:
    return {
        "title": f"Story {n}",
        "link": f"https://news.example.org/story-{n}?utm_source=rss",
        "guid": f"story-{n}",
        "date": "Tue, 24 Nov 2026 10:00:00 +0000",
        "content": LONG_BODY.replace("Paragraph", f"Story {n} paragraph"),
        **extra,
    }


def on_loopback(name: str, url: str, **options) -> SourceConfig:
    """A source whose article pages are served here on 127.0.0.1: marked internal, as an intranet feed."""
    return SourceConfig(name=name, url=url, section=options.pop("section", "Reporting"), internal=True, **options)


def gather(core, **kwargs):
    return gather_sources(core.sessions, core.config, **kwargs)


def articles(core) -> list[Article]:
    with core.sessions() as session:
        return list(session.scalars(select(Article).order_by(Article.id)))


def test_gathering_twice_stores_each_article_once(settings):
    with FeedServer({"/feed": Reply(body=rss([item(1), item(2)]))}) as server:
        core = core_for(settings, newsletter([("wire", server.url("/feed"))]))
        try:
            first = gather(core, now=NOW)
            second = gather(core)
            assert (first.new, first.updated) == (2, 0)
            assert (second.new, second.updated) == (0, 0)
            stored = articles(core)
            assert [a.url for a in stored] == ["https://news.example.org/story-1", "https://news.example.org/story-2"]
        finally:
            core.close()


def test_an_article_changed_upstream_is_updated_in_place_and_keeps_its_first_seen_time(settings):
    routes = {"/feed": Reply(body=rss([item(1)]))}
    with FeedServer(routes) as server:
        core = core_for(settings, newsletter([("wire", server.url("/feed"))]))
        try:
            gather(core, now=NOW)
            (before,) = articles(core)
            with core.sessions.begin() as session:
                session.get(Article, before.id).teaser_override = "An editor's teaser."
            changed = item(1, title="Story 1, updated", content=LONG_BODY.replace("Paragraph", "Revised paragraph"))
            server.routes["/feed"] = Reply(body=rss([changed]))
            report = gather(core, now=datetime(2026, 11, 26, tzinfo=UTC))
            assert (report.new, report.updated) == (0, 1)
            (after,) = articles(core)
            assert after.id == before.id and after.title == "Story 1, updated"
            assert after.first_seen_at == NOW and after.updated_at > NOW
            assert after.content_hash != before.content_hash and "Revised paragraph" in after.content_html
            assert after.teaser_override == "An editor's teaser."
        finally:
            core.close()


def test_an_article_that_moved_to_a_new_url_is_found_by_its_guid_and_updated(settings):
    moved = item(1, link="https://news.example.org/2026/story-1-renamed", title="Story 1, renamed")
    with FeedServer({"/feed": Reply(body=rss([item(1)]))}) as server:
        core = core_for(settings, newsletter([("wire", server.url("/feed"))]))
        try:
            gather(core)
            server.routes["/feed"] = Reply(body=rss([moved]))
            report = gather(core)
            assert (report.new, report.updated) == (0, 1)
            (article,) = articles(core)
            assert article.title == "Story 1, renamed" and article.url.endswith("story-1-renamed")
        finally:
            core.close()


def test_the_same_article_in_two_sources_is_stored_once_by_url_and_by_guid(settings):
    by_url = item(1, link="https://NEWS.example.org/story-1?fbclid=xyz", guid="other-feed-1")
    by_guid_a = item(2, guid="tag:news.example.org,2026:2", link="https://news.example.org/a/story-2")
    by_guid_b = item(2, guid="tag:news.example.org,2026:2", link="https://mirror.example.net/story-2")
    routes = {"/one": Reply(body=rss([item(1), by_guid_a])), "/two": Reply(body=rss([by_url, by_guid_b]))}
    with FeedServer(routes) as server:
        core = core_for(settings, newsletter([("one", server.url("/one")), ("two", server.url("/two"))]))
        try:
            report = gather(core)
            assert report.new == 2
            assert len(articles(core)) == 2
            # Short GUIDs are only unique within a feed: the same "story-1" elsewhere is another article.
            server.routes["/two"] = Reply(body=rss([item(9, guid="story-1")]))
            gather(core)
            assert len(articles(core)) == 3
        finally:
            core.close()


def test_conditional_requests_send_the_stored_etag_and_a_304_is_a_quiet_success(settings):
    body = rss([item(1)])

    def feed(request):
        if request.headers.get("if-none-match") == '"v1"':
            return Reply(304, headers={"ETag": '"v1"'})
        return Reply(body=body, headers={"ETag": '"v1"', "Last-Modified": "Tue, 24 Nov 2026 10:00:00 GMT"})

    with FeedServer({"/feed": feed}) as server:
        core = core_for(settings, newsletter([("wire", server.url("/feed"))]))
        try:
            gather(core)
            second = gather(core)
            assert second.sources[0].ok and second.sources[0].not_modified and second.new == 0
            first_request, second_request = server.requests
            assert "if-none-match" not in first_request.headers
            assert second_request.headers["if-none-match"] == '"v1"'
            assert second_request.headers["if-modified-since"] == "Tue, 24 Nov 2026 10:00:00 GMT"
            assert first_request.headers["user-agent"] == USER_AGENT and "https://" in USER_AGENT
            with core.sessions() as session:
                source = session.scalars(select(Source)).one()
            assert source.etag == '"v1"' and source.last_error is None
        finally:
            core.close()


def test_a_304_leaves_the_connection_open_for_the_next_request():
    def feed(request):
        if request.headers.get("if-none-match") == '"v1"':
            return Reply(304, headers={"ETag": '"v1"'})
        return Reply(body=rss([item(1)]), headers={"ETag": '"v1"'})

    async def fetch_three(url):
        async with Fetcher(FetchOptions()) as fetcher:
            return [await fetcher.fetch(url, etag=etag) for etag in ('"v1"', '"v1"', None)]

    with FeedServer({"/feed": feed}) as server:
        results = asyncio.run(fetch_three(server.url("/feed")))
        assert [r.not_modified for r in results] == [True, True, False]
        assert server.connections == 1, "each 304 cost a new connection"


def test_gzip_responses_are_decoded(settings):
    body = gzip.compress(rss([item(1)]))
    with FeedServer({"/feed": Reply(body=body, headers={"Content-Encoding": "gzip"})}) as server:
        core = core_for(settings, newsletter([("wire", server.url("/feed"))]))
        try:
            assert gather(core).new == 1
            assert "gzip" in server.requests[0].headers["accept-encoding"]
        finally:
            core.close()


def test_categories_map_articles_onto_sections(settings):
    feed = rss(
        [
            item(1, extra="<category>Op-Ed</category>"),
            item(2, extra="<category>explainer</category>"),
            item(3, extra="<category>World</category>"),
        ]
    )
    with FeedServer({"/feed": Reply(body=feed)}) as server:
        source = SourceConfig(
            name="wire", url=server.url("/feed"), section="Reporting",
            categories={"Op-Ed": "Opinion", "Explainer": "Analysis"},
        )  # fmt: skip
        core = core_for(settings, newsletter([source]))
        try:
            gather(core)
            assert [a.section for a in articles(core)] == ["Opinion", "Analysis", "Reporting"]
        finally:
            core.close()


def test_a_full_text_source_gives_a_short_item_the_text_image_caption_and_canonical_url_of_its_page(settings):
    page = (ROOT / "examples/pages/red-sea-war-risk-premiums.html").read_bytes()
    with FeedServer({"/page": Reply(body=page, headers={"Content-Type": "text/html"})}) as server:
        short = {"title": "Red Sea premiums", "link": server.url("/page"), "guid": "rs-1",
                 "description": "Underwriters price danger faster than diplomats."}  # fmt: skip
        server.routes["/feed"] = Reply(body=rss([short]))
        core = core_for(settings, newsletter([on_loopback("wire", server.url("/feed"), full_text=True)]))
        try:
            gather(core, now=NOW)
            (a,) = articles(core)
            assert a.url == "https://meridian-review.example.org/2026/11/red-sea-war-risk-premiums/"
            assert "When governments want to know" in a.content_html
            assert a.image_caption == "A container ship in the southern Red Sea."
            assert a.image_credit == "Yusuf Al-Amiri / Meridian Review"
            assert a.author == "Marcus Adeyemi"
            assert a.published_at == datetime(2026, 11, 21, 17, 0, tzinfo=UTC)  # the page's, as the feed had none
            assert a.dek == "Underwriters price danger faster than diplomats."
            # Unchanged next time: the page is not fetched again.
            gather(core)
            assert [r.path for r in server.requests].count("/page") == 1
        finally:
            core.close()


def test_a_missing_page_leaves_the_short_item_of_a_full_text_source_as_the_feed_gave_it(settings):
    with FeedServer({}) as server:
        short = {"title": "Gone", "link": server.url("/nowhere"), "description": "Only this."}
        server.routes["/feed"] = Reply(body=rss([short]))
        core = core_for(settings, newsletter([on_loopback("wire", server.url("/feed"), full_text=True)]))
        try:
            report = gather(core, now=NOW)
            assert report.sources[0].ok and "/nowhere" in [r.path for r in server.requests]
            (a,) = articles(core)
            assert a.content_html == "Only this." and a.published_at == NOW  # no date: the time first seen
        finally:
            core.close()


def test_local_paths_and_file_urls_are_sources_too(settings, tmp_path):
    path = tmp_path / "feed.xml"
    path.write_bytes(rss([item(1)]))
    other = tmp_path / "other.json"
    other.write_text('{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "x", "url": "https://j.example/x",'
                     ' "title": "JSON one", "content_text": "Text."}]}')  # fmt: skip
    core = core_for(settings, newsletter([("path", str(path)), ("file-url", other.as_uri())]))
    try:
        report = gather(core)
        assert [r.ok for r in report.sources] == [True, True] and report.new == 2
    finally:
        core.close()


def test_requests_stay_within_the_per_host_and_overall_limits(settings):
    routes = {f"/feed/{n}": Reply(body=rss([item(n)]), delay=0.2) for n in range(12)}
    with FeedServer(routes) as one, FeedServer(dict(routes), host="127.0.0.2") as two:
        sources = [(f"a{n}", one.url(f"/feed/{n}")) for n in range(12)]
        sources += [(f"b{n}", two.url(f"/feed/{n}")) for n in range(12)]
        core = core_for(settings, newsletter(sources, per_host=3, concurrency=5))
        try:
            report = gather(core)
            assert report.ok == 24
            assert one.max_in_flight <= 3 and two.max_in_flight <= 3
            assert one.max_in_flight + two.max_in_flight >= 4  # both hosts were busy at once
        finally:
            core.close()
        with core.sessions() as session:
            assert session.scalar(select(func.count()).select_from(Article)) == 12  # same links on both hosts


def test_a_full_text_source_fetches_the_page_even_for_long_items(settings):
    page = (ROOT / "examples/pages/restraint-is-not-retreat.html").read_bytes()
    with FeedServer({"/page": Reply(body=page)}) as server:
        server.routes["/feed"] = Reply(body=rss([item(1, link=server.url("/page"))]))
        source = on_loopback("wire", server.url("/feed"), section="Opinion", full_text=True)
        core = core_for(settings, newsletter([source]))
        try:
            gather(core)
            (a,) = articles(core)
            assert "/page" in [r.path for r in server.requests]
            assert a.url.startswith("https://meridian-review.example.org/")
            assert "Story 1 paragraph" not in a.content_html
        finally:
            core.close()


def test_slow_pages_of_a_full_text_source_share_one_deadline_and_the_items_keep_their_feed_text(settings):
    page = (ROOT / "examples/pages/restraint-is-not-retreat.html").read_bytes()
    with FeedServer({f"/page/{n}": Reply(body=page, trickle=0.5) for n in range(6)}) as server:
        items = [
            {"title": f"Short {n}", "link": server.url(f"/page/{n}"), "description": f"Only {n}."} for n in range(6)
        ]
        server.routes["/feed"] = Reply(body=rss(items))
        source = on_loopback("wire", server.url("/feed"), full_text=True)
        core = core_for(settings, newsletter([source], total_timeout=1.5, per_host=1))
        try:
            started = time.monotonic()
            report = gather(core)
            assert time.monotonic() - started < 5  # not six pages x 1.5 s, one after another
            assert report.sources[0].ok and report.new == 6
            assert sorted(a.content_html for a in articles(core)) == [f"Only {n}." for n in range(6)]
        finally:
            core.close()
