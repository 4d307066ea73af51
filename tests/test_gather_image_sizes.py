"""An article image's size where the feed or page gives it (Media RSS width and height, og:image:width
and og:image:height, a figure's <img>, a JSON-LD ImageObject), checked as hostile input, stored on the
article (SQLite and PostgreSQL) and carried to the e-mail's <img> width and height."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from digest.config import SourceConfig
from digest.content.compose import content_from_document
from digest.content.weeks import Week
from digest.core import build_core
from digest.errors import UsageError
from digest.gather import gather_sources
from digest.gather.feeds import parse_document
from digest.gather.normalize import MAX_IMAGE_SIDE, Image, ParsedArticle, image_size
from digest.gather.ondemand import merge_into
from digest.gather.pages import parse_page
from digest.jobs import weekly
from digest.store.models import Article
from tests.fakes.feed_server import FeedServer, Reply
from tests.gather_helpers import LONG_BODY, newsletter, rss
from tests.render_sample import example_config

W48 = Week(2026, 48)
NOW = datetime(2026, 11, 30, 13, tzinfo=UTC)  # the Monday after W48


def media_item(n: int, extra: str) -> dict:
    return {
        "title": f"Story {n}",
        "link": f"https://news.example.org/story-{n}",
        "guid": f"story-{n}",
        "date": f"Tue, 24 Nov 2026 {10 + n:02d}:00:00 +0000",
        "content": LONG_BODY,
        "extra": extra,
    }


def image_of(body: bytes, url: str = "https://news.example.org/feed"):
    (article,) = parse_document(body, url=url).articles
    return article.image


def latin1(body: bytes) -> bytes:
    # Not UTF-8: read by feedparser rather than fastfeed, so that both readers are covered.
    return body.decode().replace('encoding="utf-8"', 'encoding="iso-8859-1"').encode("iso-8859-1")


@pytest.mark.parametrize("reader", [bytes, latin1], ids=["fastfeed", "feedparser"])
@pytest.mark.parametrize(
    ("extra", "size"),
    [
        ('<media:content url="https://news.example.org/a.jpg" medium="image" width="1200" height="675"/>', (1200, 675)),
        ('<media:content url="https://news.example.org/a.jpg" type="image/jpeg" width=" 640 " height="480"/>',
         (640, 480)),
        ('<media:group><media:content url="https://news.example.org/a.jpg" medium="image" width="800" height="600"/>'
         "</media:group>", (800, 600)),
        ('<media:thumbnail url="https://news.example.org/a.jpg" width="150" height="100"/>', (150, 100)),
        ('<media:content url="https://news.example.org/a.jpg" medium="image"/>', None),
        ('<enclosure url="https://news.example.org/a.jpg" type="image/jpeg" length="1000"/>', None),
    ],
)  # fmt: skip
def test_a_media_rss_image_keeps_the_size_the_feed_gives(reader, extra, size):
    image = image_of(reader(rss([media_item(1, extra)])))
    assert image.url == "https://news.example.org/a.jpg"
    assert image.size == size


def test_an_atom_entry_with_media_content_keeps_its_size():
    body = (
        b'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
        b'xmlns:media="http://search.yahoo.com/mrss/"><title>A</title><id>urn:a</id>'
        b"<updated>2026-11-24T10:00:00Z</updated>"
        b'<entry><title>One</title><id>urn:a:1</id><link href="https://news.example.org/one"/>'
        b"<updated>2026-11-24T10:00:00Z</updated><summary>Text.</summary>"
        b'<media:content url="https://news.example.org/one.jpg" medium="image" width="1024" height="576"/>'
        b"</entry></feed>"
    )
    assert image_of(body).size == (1024, 576)


def test_a_json_feed_image_has_no_size_for_json_feed_names_none():
    body = json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "title": "J",
            "items": [{"id": "1", "url": "https://j.example.org/1", "title": "One", "content_text": "Text.",
                       "image": "https://j.example.org/1.jpg", "width": 100, "height": 100}],
        }
    ).encode()  # fmt: skip
    image = image_of(body, "https://j.example.org/feed.json")
    assert image.url == "https://j.example.org/1.jpg" and image.size is None


@pytest.mark.parametrize(
    ("width", "height"),
    [
        ("0", "675"), ("-1200", "675"), ("1200", "0"), (str(MAX_IMAGE_SIDE + 1), "675"), ("1200", "9" * 40),
        ("1200px", "675"), ("50%", "675"), ("1.2e3", "675"), ("0x4b0", "675"), ("١٢٠٠", "675"), ("", "675"),
        ("1200", None), (None, "675"), (True, 675), (1200.0, 675), ([1200], 675), ({"value": 1200}, 675),
    ],
)  # fmt: skip
def test_an_image_size_that_is_not_two_sane_whole_numbers_is_left_unknown(width, height):
    assert image_size(width, height) is None


def test_a_hostile_size_in_a_feed_is_left_unknown_and_the_image_kept():
    extra = '<media:content url="https://news.example.org/a.jpg" medium="image" width="99999999999" height="-3"/>'
    image = image_of(rss([media_item(1, extra)]))
    assert image.url == "https://news.example.org/a.jpg" and image.size is None


def page(head: str, body: str = "") -> bytes:
    return (
        f"<html><head><title>Harbour talks</title>{head}</head><body><article><h1>Harbour talks</h1>"
        f"{body}{LONG_BODY}</article></body></html>"
    ).encode()


def image_of_page(head: str, body: str = ""):
    _, article = parse_page(page(head, body), "https://news.example.org/harbour")
    return article.image


def test_a_page_gives_its_image_size_in_og_image_width_and_height():
    image = image_of_page(
        '<meta property="og:image" content="https://news.example.org/h.jpg">'
        '<meta property="og:image:width" content="1600"><meta property="og:image:height" content="900">'
    )
    assert (image.url, image.size) == ("https://news.example.org/h.jpg", (1600, 900))


def test_a_page_with_a_hostile_og_size_has_an_image_of_unknown_size():
    image = image_of_page(
        '<meta property="og:image" content="https://news.example.org/h.jpg">'
        '<meta property="og:image:width" content="1600"><meta property="og:image:height" content="90000">'
    )
    assert image.url == "https://news.example.org/h.jpg" and image.size is None


@pytest.mark.parametrize(
    "ld",
    [
        {"@type": "NewsArticle", "headline": "H", "image": {"@type": "ImageObject", "url": "https://news.example.org/h.jpg",
                                                            "width": 1280, "height": 720}},
        {"@type": "NewsArticle", "image": [{"@type": "ImageObject", "url": "/other.jpg", "width": 10, "height": 10},
                                           {"@type": "ImageObject", "contentUrl": "https://news.example.org/h.jpg",
                                            "width": "1280", "height": "720"}]},
        {"@graph": [{"@type": "ImageObject", "url": "https://news.example.org/h.jpg",
                     "width": {"@type": "QuantitativeValue", "value": 1280}, "height": {"value": 720}}]},
    ],
)  # fmt: skip
def test_json_ld_sizes_the_pages_image_when_its_meta_tags_do_not(ld):
    head = '<meta property="og:image" content="https://news.example.org/h.jpg">'
    head += f'<script type="application/ld+json">{json.dumps(ld)}</script>'
    assert image_of_page(head).size == (1280, 720)


def test_og_image_size_wins_over_json_ld_and_json_ld_of_another_image_is_not_taken():
    og = '<meta property="og:image" content="https://news.example.org/h.jpg">'
    sizes = '<meta property="og:image:width" content="1600"><meta property="og:image:height" content="900">'
    ld = {"@type": "ImageObject", "url": "https://news.example.org/h.jpg", "width": 1280, "height": 720}
    other = {"@type": "ImageObject", "url": "https://news.example.org/logo.png", "width": 600, "height": 60}
    script = '<script type="application/ld+json">{}</script>'
    assert image_of_page(og + sizes + script.format(json.dumps(ld))).size == (1600, 900)
    assert image_of_page(og + script.format(json.dumps(other))).size is None
    assert image_of_page(og + "<script type='application/ld+json'>{not json</script>").size is None


def test_a_figure_gives_its_img_width_and_height():
    figure = (
        '<figure><img src="https://news.example.org/f.jpg" alt="A quay" width="960" height="640">'
        "<figcaption>The quay at dawn. Photo: Ana Ruiz</figcaption></figure>"
    )
    image = image_of_page("", figure)
    assert (image.url, image.size, image.credit) == ("https://news.example.org/f.jpg", (960, 640), "Ana Ruiz")


# --- into the store and out to the e-mail ----------------------------------------------------------


def img_tags(html: str) -> dict[str, str]:
    return {re.search(r'src="([^"]+)"', tag).group(1): tag for tag in re.findall(r"<img\b[^>]*>", html)}


def test_gathered_sizes_are_stored_and_the_email_lays_the_image_out_by_them(settings):
    sized = '<media:content url="https://news.example.org/sized.jpg" medium="image" width="1200" height="675"/>'
    hostile = '<media:content url="https://news.example.org/hostile.jpg" medium="image" width="1200" height="0"/>'
    with FeedServer({"/feed": Reply(body=rss([media_item(2, sized), media_item(1, hostile)]))}) as server:
        core = build_core(settings, newsletter([("wire", server.url("/feed"))]))
        try:
            gather_sources(core.sessions, core.config, now=NOW)
            with core.sessions() as session:
                stored = {a.title: (a.image_width, a.image_height) for a in session.scalars(select(Article))}
            assert stored == {"Story 2": (1200, 675), "Story 1": (None, None)}
            issue = weekly.build(core, W48)
            assert issue.content["top"]["image"] | {"alt": None} == {
                "url": "https://news.example.org/sized.jpg", "alt": None, "credit": None, "width": 1200, "height": 675
            }  # fmt: skip
            images = img_tags(issue.html)
            # The top story in full, at the 552px column and in proportion; the unsized image by width alone.
            assert 'width="552"' in images["https://news.example.org/sized.jpg"]
            assert 'height="310"' in images["https://news.example.org/sized.jpg"]
            assert "height=" not in images["https://news.example.org/hostile.jpg"]
        finally:
            core.close()


def test_a_page_fetched_on_demand_gives_the_stored_image_its_size(settings):
    head = (
        '<meta property="og:image" content="https://news.example.org/p.jpg">'
        '<meta property="og:image:width" content="1000"><meta property="og:image:height" content="500">'
    )
    with FeedServer() as server:
        item = {
            "title": "Short story",
            "link": server.url("/page"),
            "guid": "short",
            "date": "Tue, 24 Nov 2026 10:00:00 +0000",
            "description": "Only the feed's summary.",
        }
        server.routes["/feed"] = Reply(body=rss([item]))
        server.routes["/page"] = Reply(body=page(head), headers={"Content-Type": "text/html"})
        source = SourceConfig(name="wire", url=server.url("/feed"), section="Reporting", internal=True)
        core = build_core(settings, newsletter([source]))
        try:
            gather_sources(core.sessions, core.config, now=NOW)
            issue = weekly.build(core, W48)
            with core.sessions() as session:
                (article,) = session.scalars(select(Article))
                assert (article.image_url, article.image_width, article.image_height) == (
                    "https://news.example.org/p.jpg", 1000, 500
                )  # fmt: skip
            assert 'height="276"' in img_tags(issue.html)["https://news.example.org/p.jpg"]
        finally:
            core.close()


@pytest.mark.parametrize(
    "size", [{"width": 1200}, {"width": "1200", "height": "675"}, {"width": 1200, "height": 10**9}]
)
def test_an_issue_document_with_a_bad_image_size_is_refused_with_where(size):
    image = {"url": "https://news.example.org/a.jpg", **size}
    document = {
        "sections": [{"name": "News", "articles": [{"title": "A", "url": "https://a.example", "image": image}]}]
    }
    with pytest.raises(UsageError, match=r"sections\[0\]\.articles\[0\]\.image: 'width' and 'height' must both"):
        content_from_document(document, example_config())


def test_a_size_the_feed_adds_later_is_stored_without_counting_the_article_as_changed(settings):
    unsized = '<media:content url="https://news.example.org/a.jpg" medium="image"/>'
    sized = '<media:content url="https://news.example.org/a.jpg" medium="image" width="800" height="450"/>'
    with FeedServer({"/feed": Reply(body=rss([media_item(1, unsized)]))}) as server:
        core = build_core(settings, newsletter([("wire", server.url("/feed"))]))
        try:
            gather_sources(core.sessions, core.config, now=NOW)
            with core.sessions.begin() as session:
                (article,) = session.scalars(select(Article))
                article.summary_hash = "made before"
            server.routes["/feed"] = Reply(body=rss([media_item(1, sized)]))
            report = gather_sources(core.sessions, core.config, now=NOW)
            assert (report.new, report.updated) == (0, 0)
            with core.sessions() as session:
                (article,) = session.scalars(select(Article))
                assert (article.image_width, article.image_height) == (800, 450)
                assert article.summary_hash == "made before"  # nothing to summarize again
        finally:
            core.close()


def test_a_page_that_adds_only_a_size_leaves_the_summaries_standing():
    text = "<p>The harbour talks resumed on Tuesday.</p>"
    article = Article(
        title="Harbour talks", url="https://news.example.org/h", guid=None, author=None, categories=[],
        published_at=NOW, content_html=text, content_hash="feed", image_url="https://news.example.org/h.jpg",
        summary_hash="made before",
    )  # fmt: skip
    page_version = ParsedArticle(
        title="Harbour talks", url="https://news.example.org/h", guid=None, published=None, author=None,
        summary=None, content_html=text, image=Image("https://news.example.org/h.jpg", width=1000, height=500),
    )  # fmt: skip
    merge_into(article, page_version)
    assert (article.image_width, article.image_height) == (1000, 500)
    assert article.summary_hash == "made before"
