"""Formats and normalizing: RSS, Atom, JSON Feed 1.0/1.1 and article pages, told apart by their
content; canonical URLs, UTC times, images with alt text and credit, sanitized HTML."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from digest.gather.feeds import parse_document
from digest.gather.normalize import NotAFeed, canonical_url, safe_canonical_url, sanitize_html
from digest.gather.pages import split_credit
from tests.conftest import ROOT
from tests.gather_helpers import LONG_BODY, rss

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Atom feed</title>
  <link href="https://atom.example.org/"/>
  <entry>
    <title type="html">Grain &amp;amp; fuel</title>
    <link rel="alternate" href="https://Atom.Example.org/grain?fbclid=abc&amp;page=2#top"/>
    <id>tag:atom.example.org,2026:1</id>
    <updated>2026-11-24T09:15:00+02:00</updated>
    <author><name>Ada Writer</name></author>
    <category term="Trade"/>
    <summary>Short summary.</summary>
    <content type="html">&lt;p&gt;Body &lt;img src="/img/grain.jpg" alt="Silos"&gt;&lt;/p&gt;</content>
  </entry>
</feed>"""

JSON_FEED_11 = {
    "version": "https://jsonfeed.org/version/1.1",
    "title": "JSON feed",
    "home_page_url": "https://json.example.org/",
    "authors": [{"name": "Desk"}],
    "items": [
        {
            "id": "https://json.example.org/a",
            "url": "https://json.example.org/a?utm_source=feed",
            "title": "First",
            "content_html": "<p>Hello <script>alert(1)</script>world</p>",
            "summary": "A summary",
            "date_published": "2026-11-25T08:00:00-05:00",
            "tags": ["Europe", "Energy"],
            "image": "https://json.example.org/a.jpg",
        },
        {"id": "2", "url": "/b", "content_text": "Line one.\n\nLine two.", "authors": [{"name": "Bo"}]},
        {"id": "no-url-no-link"},
    ],
}
JSON_FEED_10 = {
    "version": "https://jsonfeed.org/version/1",
    "title": "Old JSON feed",
    "author": {"name": "Old Desk"},
    "items": [{"id": "1", "url": "https://json.example.org/old", "title": "Old", "content_text": "Text."}],
}


def test_rss_with_media_content_gives_image_alt_and_credit_and_utc_time():
    body = rss(
        [
            {
                "title": "Dam data deal",
                "link": "https://News.Example.org/2026/dam/?utm_source=rss&utm_medium=x&id=7",
                "guid": "n-1",
                "date": "Wed, 25 Nov 2026 16:45:00 +0700",
                "description": "Four states agree.",
                "content": LONG_BODY,
                "extra": "<dc:creator>Nok P.</dc:creator><category>Asia</category><category>Water</category>"
                '<media:content url="https://news.example.org/dam.jpg" medium="image">'
                '<media:description type="plain">A dam at dusk.</media:description>'
                "<media:credit>Lee / Agency</media:credit></media:content>",
            }
        ]
    )
    feed = parse_document(body, url="https://news.example.org/feed.xml")
    assert feed.format == "rss20"
    (a,) = feed.articles
    assert a.url == "https://news.example.org/2026/dam/?id=7"
    assert a.published == datetime(2026, 11, 25, 9, 45, tzinfo=UTC)
    assert a.author == "Nok P." and a.categories == ["Asia", "Water"] and a.guid == "n-1"
    assert (a.image.url, a.image.alt, a.image.credit) == (
        "https://news.example.org/dam.jpg",
        "A dam at dusk.",
        "Lee / Agency",
    )
    assert a.summary == "Four states agree." and a.dek == "Four states agree."


def test_atom_entry_is_normalized():
    feed = parse_document(ATOM, url="https://atom.example.org/feed.atom", content_type="text/html")
    assert feed.format == "atom10" and feed.title == "Atom feed"
    (a,) = feed.articles
    assert a.title == "Grain & fuel"
    assert a.url == "https://atom.example.org/grain?page=2"
    assert a.published == datetime(2026, 11, 24, 7, 15, tzinfo=UTC)
    assert a.author == "Ada Writer" and a.categories == ["Trade"]
    # No media element: the first image of the content, made absolute.
    assert a.image.url == "https://atom.example.org/img/grain.jpg" and a.image.alt == "Silos"


@pytest.mark.parametrize("content_type", [None, "text/html", "application/octet-stream"])
def test_json_feed_11_is_read_as_json_whatever_the_content_type(content_type):
    body = json.dumps(JSON_FEED_11).encode()
    feed = parse_document(body, url="https://json.example.org/feed.json", content_type=content_type)
    assert feed.format == "json11" and feed.title == "JSON feed"
    first, second = feed.articles
    assert first.url == "https://json.example.org/a"
    assert "<script>" not in first.content_html and "Hello" in first.content_html
    assert first.published == datetime(2026, 11, 25, 13, 0, tzinfo=UTC)
    assert first.categories == ["Europe", "Energy"] and first.author == "Desk"
    assert first.image.url == "https://json.example.org/a.jpg"
    assert second.url == "https://json.example.org/b" and second.author == "Bo"
    assert second.content_html == "<p>Line one.</p><p>Line two.</p>"
    assert second.title == "Line one. Line two."  # no title: the start of its text


def test_json_feed_10_with_a_single_author():
    feed = parse_document(json.dumps(JSON_FEED_10).encode(), url="https://json.example.org/feed.json")
    assert feed.format == "json10"
    assert [(a.title, a.author) for a in feed.articles] == [("Old", "Old Desk")]


def test_a_single_article_page_is_a_source_of_one_article_with_its_figure():
    page = (ROOT / "examples/pages/red-sea-war-risk-premiums.html").read_bytes()
    feed = parse_document(page, url="https://meridian-review.example.org/red-sea?utm_campaign=x")
    assert feed.format == "page"
    (a,) = feed.articles
    assert a.url == "https://meridian-review.example.org/2026/11/red-sea-war-risk-premiums/"  # rel=canonical
    assert a.title.startswith("Shipping & insurance")
    assert a.author == "Marcus Adeyemi"
    assert a.published == datetime(2026, 11, 21, 17, 0, tzinfo=UTC)
    assert a.image.url.endswith("/images/red-sea-war-risk-premiums.jpg")
    assert a.image.caption == "A container ship in the southern Red Sea."
    assert a.image.credit == "Yusuf Al-Amiri / Meridian Review"
    assert "Keep reading" not in a.content_html and "When governments want to know" in a.content_html


def test_format_is_told_from_the_content_not_the_name():
    body = rss([{"title": "T", "link": "https://a.example/t"}])
    assert parse_document(body, url="https://a.example/index.html", content_type="text/html").format == "rss20"
    with pytest.raises(NotAFeed, match="empty"):
        parse_document(b"  \n ", url="https://a.example/feed.xml")


def test_utf16_feed_with_a_bom_parses():
    body = rss([{"title": "Zürich talks", "link": "https://a.example/z"}]).decode()
    body = body.replace('encoding="utf-8"', 'encoding="utf-16"').encode("utf-16")
    assert [a.title for a in parse_document(body, url="https://a.example/f").articles] == ["Zürich talks"]


def test_items_without_a_link_take_the_channel_link_with_an_anchor_and_guid_urls_stand_in():
    body = rss(
        [
            {"title": "No link at all"},
            {"title": "Permalink guid", "extra": "<guid>https://a.example/permalink</guid>"},
        ]
    )
    first, second = parse_document(body, url="https://a.example/f").articles
    assert first.url.startswith("https://news.example.org/#item-") and first.link_from == "channel"
    assert (second.url, second.link_from) == ("https://a.example/permalink", "guid")


def test_missing_or_unreadable_dates_are_none_so_the_store_uses_first_seen():
    body = rss([{"title": "Undated", "link": "https://a.example/u", "date": "sometime last week"}])
    assert parse_document(body, url="https://a.example/f").articles[0].published is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://Example.ORG:443/Path/?utm_source=x&b=2&fbclid=y&a=1#frag", "https://example.org/Path/?b=2&a=1"),
        ("http://example.org:8080", "http://example.org:8080/"),
        ("https://example.org/p?gclid=1&mc_cid=2&utm_campaign=3", "https://example.org/p"),
    ],
)
def test_canonical_url(url, expected):
    assert canonical_url(url) == expected


@pytest.mark.parametrize("url", ["http://://]", "https://[::1/a", "javascript:alert(1)", "mailto:a@b.example", ""])
def test_links_that_are_not_usable_web_addresses_are_dropped_not_crashed_on(url):
    assert safe_canonical_url(url, "https://a.example/feed") is None


def test_sanitizing_removes_scripts_styles_frames_forms_handlers_and_javascript_urls():
    dirty = (
        '<p onclick="steal()">Text <a href="javascript:alert(1)">link</a> <a href="https://ok.example/">ok</a></p>'
        "<script>alert(1)</script><style>p{}</style><iframe src='https://evil.example'></iframe>"
        "<form action='/x'><input name='q'></form><img src='https://a.example/i.jpg' onerror='x()'>"
    )
    clean = sanitize_html(dirty)
    for bad in ("onclick", "javascript:", "<script", "<style", "<iframe", "<form", "<input", "onerror", "alert"):
        assert bad not in clean
    assert 'href="https://ok.example/"' in clean and "Text" in clean and 'src="https://a.example/i.jpg"' in clean


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("A ship at dawn. Photo: Ana Ruiz / Agency", ("A ship at dawn.", "Ana Ruiz / Agency")),
        ("Market day © AFP", ("Market day", "AFP")),
        ("Just a caption", ("Just a caption", None)),
    ],
)
def test_photo_credit_is_split_from_the_caption(caption, expected):
    assert split_credit(caption) == expected


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('<media:thumbnail url="https://a.example/thumb.jpg"/><media:credit>Jo / Desk</media:credit>',
         ("https://a.example/thumb.jpg", "Jo / Desk")),
        ('<enclosure url="https://a.example/photo.png" type="image/png" length="100"/>',
         ("https://a.example/photo.png", None)),
        ('<enclosure url="https://a.example/podcast.mp3" type="audio/mpeg" length="100"/>', None),
    ],
)  # fmt: skip
def test_image_from_thumbnail_or_image_enclosure_but_not_audio(extra, expected):
    body = rss([{"title": "T", "link": "https://a.example/t", "description": "Text.", "extra": extra}])
    image = parse_document(body, url="https://a.example/f").articles[0].image
    assert (image.url, image.credit) == expected if expected else image is None
