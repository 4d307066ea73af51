"""Article pages fetched on demand (SQLite and PostgreSQL): gathering stores what feeds give; a short
article's page is fetched when the article first enters a draft, once, under the gather's limits; a
page that fails keeps the feed's text and is noted in `digest sources` and the preview."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from sqlalchemy import select

from digest.config import SourceConfig
from digest.content.weeks import Week
from digest.core import build_core
from digest.gather import gather_sources
from digest.gather.ondemand import PAGE_RETRY
from digest.jobs import weekly
from digest.store.models import Article, Issue
from tests.cli_helpers import run_cli
from tests.conftest import ROOT
from tests.fakes.feed_server import FeedServer, Reply
from tests.gather_helpers import newsletter, rss
from tests.web_site import running_site

W48 = Week(2026, 48)
NOW = datetime(2026, 11, 30, 13, tzinfo=UTC)  # the Monday after W48, when the weekly job runs
PAGE = (ROOT / "examples/pages/red-sea-war-risk-premiums.html").read_bytes()
PAGE_TEXT = "When governments want to know"  # in the page's text, not in any feed item


def short_item(server: FeedServer, n: int) -> dict:
    """A summary-only item published in W48 (newer for higher n), its page on the server."""
    return {
        "title": f"Short story {n}",
        "link": server.url(f"/page/{n}"),
        "guid": f"short-{n}",
        "date": f"Tue, 24 Nov 2026 {n:02d}:00:00 +0000",
        "description": f"Only the feed's summary of story {n}.",
    }


def serve(server: FeedServer, count: int, *, page: Reply | None = None) -> None:
    server.routes["/feed"] = Reply(body=rss([short_item(server, n) for n in range(count)]))
    for n in range(count):
        server.routes[f"/page/{n}"] = page or Reply(body=PAGE, headers={"Content-Type": "text/html", "ETag": f'"p{n}"'})


def source(server: FeedServer, **options) -> SourceConfig:
    # The pages are on 127.0.0.1: only an internal source may fetch them (see test_hostile_ssrf).
    return SourceConfig(name="wire", url=server.url("/feed"), section="Reporting", internal=True, **options)


def page_requests(server: FeedServer) -> list[str]:
    return [r.path for r in server.requests if r.path.startswith("/page/")]


def rows(core) -> dict[str, Article]:
    with core.sessions() as session:
        return {a.title: a for a in session.scalars(select(Article))}


def in_issue(issue: Issue) -> list[str]:
    content = issue.content
    return [content["top"]["title"]] + [a["title"] for s in content["sections"] for a in s["articles"]]


def test_gathering_a_summary_only_feed_fetches_no_pages(settings):
    with FeedServer() as server:
        serve(server, 8)
        core = build_core(settings, newsletter([source(server)]))
        try:
            report = gather_sources(core.sessions, core.config)
            assert report.new == 8
            assert page_requests(server) == []
            stored = rows(core)
            assert stored["Short story 3"].content_html == "Only the feed's summary of story 3."
            assert all(a.page_fetched_at is None for a in stored.values())
        finally:
            core.close()


def test_a_build_fetches_the_pages_of_the_articles_it_holds_once_within_the_limits(settings):
    with FeedServer() as server:
        serve(server, 12, page=Reply(body=PAGE, headers={"Content-Type": "text/html", "ETag": '"v1"'}, delay=0.2))
        core = build_core(settings, newsletter([source(server)], per_host=2))
        try:
            gather_sources(core.sessions, core.config)
            issue = weekly.build(core, W48)
            # The top story and five more of the one section: the six newest items (11 down to 6).
            assert in_issue(issue) == [f"Short story {n}" for n in range(11, 5, -1)]
            assert sorted(page_requests(server)) == sorted(f"/page/{n}" for n in range(6, 12))
            assert server.max_in_flight == 2  # concurrently, but never more than per_host to the host
            stored = rows(core)
            chosen = stored["Short story 11"]
            assert PAGE_TEXT in chosen.content_html
            assert chosen.page_etag == '"v1"' and chosen.page_error is None and chosen.page_fetched_at is not None
            assert chosen.url == server.url("/page/11")  # the feed's link stays the article's URL
            assert chosen.dek == "Only the feed's summary of story 11."  # the feed's text becomes the dek
            assert stored["Short story 2"].content_html == "Only the feed's summary of story 2."  # never shown
            # The summaries were made from the page, not from the feed's line.
            assert PAGE_TEXT in issue.content["top"]["excerpt"] + issue.content["top"]["teaser"]

            # Remembered: another build, and a gather of the unchanged feed, fetch no page again.
            weekly.build(core, W48)
            gather_sources(core.sessions, core.config)
            weekly.build(core, W48)
            assert len(page_requests(server)) == 6
        finally:
            core.close()


def test_an_item_the_feed_changes_gets_its_page_again_when_next_in_a_draft(settings):
    with FeedServer() as server:
        serve(server, 2)
        core = build_core(settings, newsletter([source(server)]))
        try:
            gather_sources(core.sessions, core.config)
            weekly.build(core, W48)
            assert len(page_requests(server)) == 2
            changed = [short_item(server, 0), {**short_item(server, 1), "description": "A corrected summary."}]
            server.routes["/feed"] = Reply(body=rss(changed))
            assert gather_sources(core.sessions, core.config).updated == 1
            assert rows(core)["Short story 1"].content_html == "A corrected summary."
            weekly.build(core, W48)
            assert sorted(page_requests(server)) == ["/page/0", "/page/1", "/page/1"]
            assert PAGE_TEXT in rows(core)["Short story 1"].content_html
        finally:
            core.close()


def test_a_failed_page_keeps_the_feed_text_is_noted_and_is_retried_only_after_a_while(settings, tmp_path):
    clock = [NOW]
    with FeedServer() as server:
        serve(server, 3)
        server.routes["/page/1"] = Reply(500, b"down")
        core = build_core(settings, newsletter([source(server)]), clock=lambda: clock[0])
        try:
            gather_sources(core.sessions, core.config)
            issue = weekly.build(core, W48)  # one bad page does not stop the build
            assert sorted(in_issue(issue)) == ["Short story 0", "Short story 1", "Short story 2"]
            failed = rows(core)["Short story 1"]
            assert failed.content_html == "Only the feed's summary of story 1."
            assert failed.page_error == "HTTP 500 Error" and failed.page_fetched_at == NOW
            assert PAGE_TEXT in rows(core)["Short story 2"].content_html

            weekly.build(core, W48)  # a rebuild right away does not knock again
            assert page_requests(server).count("/page/1") == 1
            clock[0] = NOW + PAGE_RETRY
            server.routes["/page/1"] = Reply(404, b"gone")
            weekly.build(core, W48)
            assert page_requests(server).count("/page/1") == 2
            assert rows(core)["Short story 1"].page_error == "HTTP 404 Not Found"
        finally:
            core.close()


def test_a_failed_page_is_shown_in_digest_sources_and_the_preview(settings, cli_env, tmp_path):
    with FeedServer() as server:
        serve(server, 3)
        server.routes["/page/1"] = Reply(404, b"gone")
        config = newsletter([source(server)])
        with running_site(settings, clock=lambda: NOW, newsletter=config, admin_token=None) as site:
            with ThreadPoolExecutor(1) as pool:  # gathering runs an event loop of its own
                pool.submit(gather_sources, site.core.sessions, site.core.config).result()
            issue = weekly.build(site.core, W48)
            preview = site.http.get(f"/preview/{issue.slug}")
            assert preview.status_code == 200
            assert "could not be fetched (HTTP 404 Not Found); the feed's text is used" in preview.text
            assert preview.text.count("page-note") == 1

        env = {**cli_env, "DIGEST_CONFIG": str(newsletter_file(tmp_path, server))}
        listing = run_cli(["sources", "--week", "2026-W48", "--json"], env, tmp_path)
        assert listing.returncode == 0, listing.stderr
        (row,) = [json.loads(line) for line in listing.stdout.splitlines()]
        assert row["page_failures"] == 1 and not row["failing"]
        assert row["last_page_error"] == f"{server.url('/page/1')}: HTTP 404 Not Found"
        table = run_cli(["sources", "--week", "2026-W48"], {**env, "COLUMNS": "300"}, tmp_path)
        assert "1 failed, feed text used" in table.stdout


def newsletter_file(folder, server: FeedServer):
    path = folder / "digest.toml"
    path.write_text(
        f'name = "Test Review"\nfrom_email = "weekly@example.org"\npostal_address = "1 Test Street"\n'
        f'sections = ["Reporting"]\n[[sources]]\nname = "wire"\nurl = "{server.url("/feed")}"\n'
        f'section = "Reporting"\ninternal = true\n'
        # Every article in full, so that each one's excerpt (from its page) is in the issue.
        '[issue]\nlayout = "cards"\n'
    )
    return path


def test_digest_gather_fetches_no_page_and_digest_build_names_the_page_that_failed(cli_env, tmp_path):
    with FeedServer() as server:
        serve(server, 3)
        server.routes["/page/2"] = Reply(404, b"gone")
        env = {**cli_env, "DIGEST_CONFIG": str(newsletter_file(tmp_path, server))}
        gathered = run_cli(["gather"], env, tmp_path)
        assert gathered.returncode == 0, gathered.stderr
        assert page_requests(server) == []
        built = run_cli(["build", "--week", "2026-W48", "--out", tmp_path / "issue"], env, tmp_path)
        assert built.returncode == 0, built.stderr
        assert sorted(page_requests(server)) == ["/page/0", "/page/1", "/page/2"]
        assert f"{server.url('/page/2')}: HTTP 404 Not Found; the feed's text is used" in built.stderr
        assert PAGE_TEXT in (tmp_path / "issue" / "issue.txt").read_text()


def test_a_full_text_source_fetches_its_pages_while_gathering(settings):
    with FeedServer() as server:
        serve(server, 3)
        core = build_core(settings, newsletter([source(server, full_text=True)]))
        try:
            gather_sources(core.sessions, core.config)
            assert sorted(page_requests(server)) == ["/page/0", "/page/1", "/page/2"]
            assert all(PAGE_TEXT in a.content_html for a in rows(core).values())
            weekly.build(core, W48)  # their text is long now: the build wants no page
            assert len(page_requests(server)) == 3
        finally:
            core.close()


def test_a_page_on_an_internal_address_is_refused_for_a_public_source_and_says_what_to_do(settings):
    with FeedServer() as server:
        serve(server, 1)
        public = SourceConfig(name="wire", url=server.url("/feed"), section="Reporting")
        core = build_core(settings, newsletter([public]))
        try:
            gather_sources(core.sessions, core.config)
            weekly.build(core, W48)
            assert page_requests(server) == []
            (article,) = rows(core).values()
            assert "loopback address" in article.page_error and "internal = true" in article.page_error
            assert article.content_html == "Only the feed's summary of story 0."
        finally:
            core.close()
