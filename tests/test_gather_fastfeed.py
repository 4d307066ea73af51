"""The fast reader of plain RSS 2.0 and Atom 1.0 gives exactly the articles feedparser gives.

Every document here is parsed twice: once as gathering does (the fast reader when it accepts the
document) and once with feedparser alone. The two ParsedFeeds must be equal, field by field. The
plain shapes must also really take the fast path, so a reader that declined everything would fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.gather import fastfeed
from digest.gather.feeds import parse_feed
from digest.gather.normalize import NotAFeed
from tests.conftest import ROOT

EDGE_CASES = ROOT.parent / "shared" / "data" / "feeds"

NS = (
    'xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:media="http://search.yahoo.com/mrss/" xmlns:atom="http://www.w3.org/2005/Atom" '
    'xmlns:wfw="http://wellformedweb.org/CommentAPI/" xmlns:slash="http://purl.org/rss/1.0/modules/slash/" '
    'xmlns:x="https://example.org/ns/unknown"'
)


def rss(items: str, channel: str = "<title>Feed &amp; co</title><link>https://news.example.org/</link>") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" {NS}><channel>{channel}{items}</channel></rss>'
    ).encode()


def atom(entries: str, head: str = '<title>Atom &amp; co</title><link href="https://atom.example.org/"/>') -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" '
        f'xmlns:media="http://search.yahoo.com/mrss/">{head}{entries}</feed>'
    ).encode()


BODY = "<p>" + "Officials met at the border crossing to talk about grain, fuel and ports. " * 20 + "</p>"

PLAIN_RSS = {
    "description and content": rss(
        f"<item><title>Grain &amp; fuel</title><link>https://news.example.org/a?utm_source=rss&amp;id=2</link>"
        f'<guid isPermaLink="false">n-1</guid><pubDate>Tue, 24 Nov 2026 09:15:00 +0200</pubDate>'
        f"<dc:creator>Ada Writer</dc:creator><category>World</category><category domain='x'>Trade</category>"
        f"<description>Short &lt;b&gt;dek&lt;/b&gt;.</description><content:encoded><![CDATA[{BODY}]]></content:encoded>"
        f"<comments>https://news.example.org/a#comments</comments><wfw:commentRss>https://news.example.org/a/feed"
        f"</wfw:commentRss><slash:comments>3</slash:comments></item>"
    ),
    "content before description": rss(
        f"<item><title>B</title><content:encoded><![CDATA[{BODY}]]></content:encoded>"
        f"<description>The dek.</description><link>https://news.example.org/b</link></item>"
    ),
    "content only": rss(
        f"<item><title>C</title><link>https://news.example.org/c</link><content:encoded>"
        f"<![CDATA[{BODY}]]></content:encoded></item>"
    ),  # fmt: skip
    "description only": rss(
        f"<item><title>D</title><link>https://news.example.org/d</link><description>"
        f"<![CDATA[{BODY}]]></description></item>"
    ),  # fmt: skip
    "guid as the link": rss(
        "<item><title>E</title><guid>https://news.example.org/e?fbclid=1</guid><description>x</description></item>"
        '<item><title>F</title><guid isPermaLink="true">https:///news.example.org/f</guid></item>'
        '<item><title>G</title><guid isPermaLink="false">https://news.example.org/g</guid></item>'
    ),
    "link before and after guid": rss(
        "<item><guid>https://news.example.org/h1</guid><link>https://news.example.org/h2</link></item>"
        "<item><link>https://news.example.org/i2</link><guid>https://news.example.org/i1</guid></item>"
        '<item><title>J</title><guid ISPERMALINK="false">https://news.example.org/j</guid></item>'
        '<item><title>K</title><guid isPermaLink="True">https://news.example.org/k</guid></item>'
    ),
    "images": rss(
        '<item><title>J</title><link>https://news.example.org/j</link><media:content url="/img/j.jpg" '
        'medium="image"/><media:credit role="photographer"> Jo Lens </media:credit></item>'
        "<item><title>K</title><link>https://news.example.org/k</link><media:group><media:content "
        'url="https://cdn.example.org/k.mp4" type="video/mp4"/><media:thumbnail url="https://cdn.example.org/k.jpg"/>'
        "</media:group></item>"
        '<item><title>L</title><link>https://news.example.org/l</link><enclosure url="https://cdn.example.org/l.png" '
        'type="Image/PNG" length="1"/><description>&lt;img src="/m.jpg" alt="An alt"&gt;</description></item>'
        "<item><title>M</title><link>https://news.example.org/m</link><media:thumbnail>https://cdn.example.org/m.jpg"
        "</media:thumbnail></item>"
    ),
    "media description after the summary and content": rss(
        f"<item><title>V</title><link>https://news.example.org/v</link><description>Dek.</description>"
        f"<content:encoded><![CDATA[{BODY}]]></content:encoded><media:content url='https://cdn.example.org/v.jpg' "
        "medium='image' type='image/jpeg'><media:description type='plain'>Cranes over a rebuilt block."
        "</media:description><media:credit role='photographer'>Ana Foto</media:credit></media:content></item>"
    ),
    "dates": rss(
        "<item><title>N</title><link>https://news.example.org/n</link><dc:date>2026-11-24T09:15:00Z</dc:date></item>"
        "<item><title>O</title><link>https://news.example.org/o</link><pubDate>not a date</pubDate></item>"
        "<item><title>P</title><link>https://news.example.org/p</link><PUBDATE>Wed, 25 Nov 2026 10:00:00 GMT"
        "</PUBDATE><pubDate2>x</pubDate2></item>"
    ),
    "odd text": rss(
        "<item><title>  Caf\u00c3\u00a9 \u0096 talks <!-- a comment --> resume  </title>"
        "<link>  https://news.example.org/q?a=1&amp;amp;b=2  </link><author>Desk</author>"
        "<description>Caf\u00e9 &#150; \u201cquoted\u201d &amp;nbsp; &lt;script&gt;x()&lt;/script&gt;</description>"
        "<x:rating>5</x:rating><x:extra a='1'/></item>"
        "<item><title></title><link>https://news.example.org/r</link><description>  </description></item>"
        "<item><title>Caf\u00c3\u00a9 talks, UTF-8 read as Latin-1 upstream</title><link>https://x.org/u</link></item>"
        "<item><link>https://news.example.org/s</link><description>Only a description that becomes the title."
        "</description></item>"
    ),
    "channel furniture": rss(
        "<item><title>T</title><link>https://news.example.org/t</link></item>",
        channel="<image><url>https://news.example.org/logo.png</url><title>Logo</title><link>https://x.org/</link>"
        '</image><title>The channel</title><atom:link href="https://news.example.org/feed" rel="self" '
        'type="application/rss+xml"/><link>https://news.example.org/</link><description>About</description>'
        "<language>en</language><lastBuildDate>Wed, 25 Nov 2026 10:00:00 GMT</lastBuildDate><ttl>60</ttl>"
        "<sy:updatePeriod xmlns:sy='http://purl.org/rss/1.0/modules/syndication/'>hourly</sy:updatePeriod>",
    ),
    "no items": rss(""),
}

PLAIN_ATOM = {
    "entries": atom(
        '<entry><title type="html">Grain &amp;amp; fuel</title><link rel="alternate" '
        'href="https://Atom.Example.org/grain?fbclid=abc&amp;page=2#top"/><id>tag:atom.example.org,2026:1</id>'
        "<updated>2026-11-24T09:15:00+02:00</updated><author><name>Ada Writer</name><email>ada@example.org</email>"
        '</author><category term="Trade"/><category term="World" label="The world"/><summary>Short summary.</summary>'
        '<content type="html">&lt;p&gt;Body &lt;img src="https://atom.example.org/g.jpg" alt="Silos"&gt;&lt;/p&gt;'
        "</content></entry>"
        "<entry><id>https://atom.example.org/2</id><title>Text &lt;title&gt;</title><published>2026-11-23T08:00:00Z"
        '</published><link rel="enclosure" type="image/jpeg" href="https://atom.example.org/2.jpg"/>'
        '<link rel="alternate" type="text/html" href="https://atom.example.org/two"/>'
        '<link rel="alternate" type="text/html" href="https://atom.example.org/two-b"/>'
        '<content type="text">Plain text with &lt; and &amp; in it.</content><author><email>x@example.org</email>'
        "</author></entry>"
        '<entry><title>No link</title><id>https://atom.example.org/3</id><summary type="html">&lt;p&gt;S&lt;/p&gt;'
        '</summary><media:thumbnail url="https://atom.example.org/3.jpg"/></entry>'
        '<entry><link href="https://atom.example.org/4"/><id>urn:uuid:4</id><summary>Untitled entry text.</summary>'
        "</entry>"
    ),
    "feed furniture": atom(
        "<entry><title>A</title><link href='https://atom.example.org/a'/><id>a</id></entry>",
        head='<id>tag:x</id><title type="text">Feed</title><subtitle>S</subtitle><updated>2026-11-24T09:15:00Z'
        '</updated><link rel="self" href="https://atom.example.org/feed"/><link rel="alternate" type="text/html" '
        'href="https://atom.example.org/"/><author><name>Desk</name></author><icon>/i.png</icon>',
    ),
}


def both(body: bytes, content_type: str | None = None, url: str = "https://news.example.org/feed"):
    """(gathering's parse, feedparser's parse); each a ParsedFeed or the NotAFeed message."""

    def attempt():
        try:
            return parse_feed(body, url=url, content_type=content_type)
        except NotAFeed as exc:
            return f"NotAFeed: {exc}"

    ours = attempt()
    real = fastfeed.read
    fastfeed.read = lambda *args: None
    try:
        reference = attempt()
    finally:
        fastfeed.read = real
    return ours, reference


def for_comparison(feed):
    if isinstance(feed, str):
        return feed
    for article in feed.articles:
        article.finish()
    return feed


@pytest.mark.parametrize("name", [*PLAIN_RSS, *PLAIN_ATOM])
def test_plain_feeds_take_the_fast_path_and_match_feedparser(name):
    body = PLAIN_RSS.get(name) or PLAIN_ATOM[name]
    assert fastfeed.read(body, None) is not None, "a plain feed should not need feedparser"
    ours, reference = both(body)
    assert for_comparison(ours) == for_comparison(reference)


def test_the_fast_path_keeps_what_the_tests_rely_on():
    feed, _ = both(PLAIN_RSS["description and content"])
    article = feed.articles[0]
    assert (feed.format, feed.title) == ("rss20", "Feed & co")
    assert article.url == "https://news.example.org/a?id=2" and article.guid == "n-1"
    assert article.author == "Ada Writer" and article.categories == ["World", "Trade"]
    assert article.summary == "Short <b>dek</b>." and article.content_html.startswith("<p>Officials")
    assert article.published.isoformat() == "2026-11-24T07:15:00+00:00"
    pictured = both(PLAIN_RSS["media description after the summary and content"])[0].articles[0]
    assert pictured.image.alt == "Cranes over a rebuilt block." and pictured.image.credit == "Ana Foto"


@pytest.mark.parametrize("content_type", [None, "application/rss+xml", "text/xml", "application/xml; charset=utf-8"])
def test_xml_content_types_take_the_fast_path(content_type):
    body = PLAIN_RSS["images"]
    assert fastfeed.read(body, content_type) is not None
    ours, reference = both(body, content_type)
    assert for_comparison(ours) == for_comparison(reference)


DECLINED = {
    "latin-1": (
        '<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel><item><title>Caf\xe9'
        "</title><link>https://x.org/a</link></item></channel></rss>"
    ).encode("latin-1"),  # fmt: skip
    "served as html": PLAIN_RSS["content only"],
    "doctype": b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY w "world">]><rss version="2.0"><channel><item>'
    b"<title>&w;</title><link>https://x.org/a</link></item></channel></rss>",
    "rss 0.91": b'<rss version="0.91"><channel><item><title>a</title><link>https://x.org/a</link></item>'
    b"</channel></rss>",
    "rss 1.0": b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/">'
    b'<item rdf:about="https://x.org/a"><title>a</title><link>https://x.org/a</link></item></rdf:RDF>',
    "two titles": rss("<item><title>a</title><title>b</title><link>https://x.org/a</link></item>"),
    "author with e-mail": rss("<item><title>a</title><link>https://x.org/a</link><author>a@x.org (A)</author></item>"),
    "markup inside a description": rss("<item><title>a</title><description><p>x</p></description></item>"),
    "itunes": rss(
        '<item><title>a</title><itunes:summary xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd">'
        "s</itunes:summary></item>"
    ),  # fmt: skip
    "typed description": rss(
        '<item><title>a</title><link>https://x.org/a</link><description type="application/x">'
        "aGVsbG8=</description></item>"
    ),  # fmt: skip
    "media title": rss("<item><title>a</title><link>https://x.org/a</link><media:title>m</media:title></item>"),
    "xml:base": atom('<entry xml:base="https://x.org/"><title>a</title><link href="a"/><id>a</id></entry>'),
    "xhtml content": atom(
        '<entry><title>a</title><id>a</id><content type="xhtml"><div xmlns="http://www.w3.org/'
        '1999/xhtml"><p>x</p></div></content></entry>'
    ),  # fmt: skip
    "malformed": b'<rss version="2.0"><channel><item><title>a &nbsp; b</title></item></channel></rss>',
}


@pytest.mark.parametrize("name", DECLINED)
def test_documents_the_fast_path_does_not_reproduce_go_to_feedparser(name):
    content_type = "text/html" if name == "served as html" else None
    assert fastfeed.read(DECLINED[name], content_type) is None
    ours, reference = both(DECLINED[name], content_type)
    assert for_comparison(ours) == for_comparison(reference)


def sample_files() -> list[Path]:
    files = sorted((ROOT / "examples" / "feeds").iterdir())
    if EDGE_CASES.is_dir():
        files += sorted(p for p in EDGE_CASES.rglob("*.xml"))
    return files


@pytest.mark.parametrize("path", sample_files(), ids=lambda p: p.name)
def test_every_sample_feed_reads_the_same_either_way(path):
    ours, reference = both(path.read_bytes(), url=path.as_uri())
    assert for_comparison(ours) == for_comparison(reference)


def test_the_benchmark_feeds_take_the_fast_path():
    import random

    import bench.gather as bench

    body = bench.feed(random.Random(1), 3, 20)
    assert fastfeed.read(body, "application/rss+xml") is not None
    ours, reference = both(body, "application/rss+xml")
    assert len(ours.articles) == 20 and for_comparison(ours) == for_comparison(reference)


# --- Generated items: any mix of the elements the fast path reads, with awkward text -------------

TEXT = st.lists(
    st.sampled_from(list("ab Z09.,;:!?'\"-_/#%=+") + ["&amp;", "&lt;", "&gt;", "&#150;", "é", "Ã©", "\u201c",
                                                           "  ", "\t", "<![CDATA[<b>x</b>]]>", "&lt;p&gt;", "@"]),
    max_size=12,
).map("".join)  # fmt: skip
URL = st.sampled_from(
    ["https://x.org/a", "https://X.org/b?utm_source=f&amp;k=1", "/relative/c", "https:///x.org/d", "e", "",
     "http://x.org/f#frag", "mailto:a@x.org", "javascript:alert(1)"]
)  # fmt: skip
MEDIA = st.tuples(URL, TEXT, TEXT).map(
    lambda p: (
        f'<media:content url="{p[0]}" medium="image"><media:description>{p[1]}</media:description>'
        f"<media:credit>{p[2]}</media:credit></media:content>"
    )
)
RSS_PARTS = st.one_of(
    TEXT.map(lambda t: f"<title>{t}</title>"),
    URL.map(lambda u: f"<link>{u}</link>"),
    st.tuples(URL, st.sampled_from(["", ' isPermaLink="false"', ' isPermaLink="true"'])).map(
        lambda p: f"<guid{p[1]}>{p[0]}</guid>"
    ),
    TEXT.map(lambda t: f"<description>{t}</description>"),
    TEXT.map(lambda t: f"<content:encoded>{t}</content:encoded>"),
    st.sampled_from(["Tue, 24 Nov 2026 09:15:00 +0200", "2026-11-24T09:15:00Z", "yesterday", ""]).map(
        lambda d: f"<pubDate>{d}</pubDate>"
    ),
    TEXT.map(lambda t: f"<dc:creator>{t}</dc:creator>"),
    TEXT.map(lambda t: f"<category>{t}</category>"),
    URL.map(lambda u: f'<media:content url="{u}" medium="image"/>'),
    URL.map(lambda u: f'<enclosure url="{u}" type="image/jpeg"/>'),
    TEXT.map(lambda t: f"<media:credit>{t}</media:credit>"),
    MEDIA,
    TEXT.map(lambda t: f"<media:description>{t}</media:description>"),
    TEXT.map(lambda t: f"<x:other>{t}</x:other>"),
)


ATOM_PARTS = st.one_of(
    st.tuples(TEXT, st.sampled_from(["", ' type="html"', ' type="text"'])).map(
        lambda p: f"<title{p[1]}>{p[0]}</title>"
    ),
    st.tuples(URL, st.sampled_from(["", ' rel="alternate"', ' rel="enclosure" type="image/png"', ' rel="self"'])).map(
        lambda p: f'<link href="{p[0]}"{p[1]}/>'
    ),
    URL.map(lambda u: f"<id>{u}</id>"),
    st.tuples(TEXT, st.sampled_from(["", ' type="html"'])).map(lambda p: f"<summary{p[1]}>{p[0]}</summary>"),
    st.tuples(TEXT, st.sampled_from(["", ' type="html"', ' type="text"'])).map(
        lambda p: f"<content{p[1]}>{p[0]}</content>"
    ),
    st.sampled_from(["2026-11-24T09:15:00+02:00", "2026-11-24", "never"]).map(lambda d: f"<updated>{d}</updated>"),
    st.sampled_from(["2026-11-23T09:15:00Z", ""]).map(lambda d: f"<published>{d}</published>"),
    st.tuples(TEXT, TEXT).map(lambda p: f"<author><name>{p[0]}</name><email>{p[1]}</email></author>"),
    st.tuples(TEXT, TEXT).map(lambda p: f'<category term="{p[0]}" label="{p[1]}"/>'.replace("<![CDATA[", "")),
    URL.map(lambda u: f'<media:thumbnail url="{u}"/>'),
    MEDIA,
)


GENERATED = {
    "rss items": (RSS_PARTS, lambda items: rss("".join(f"<item>{item}</item>" for item in items))),
    "atom entries": (ATOM_PARTS, lambda entries: atom("".join(f"<entry>{entry}</entry>" for entry in entries))),
}


@pytest.mark.parametrize("kind", GENERATED)
def test_generated_entries_read_the_same_either_way(kind):
    parts, document = GENERATED[kind]

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.lists(parts, max_size=8).map("".join), min_size=1, max_size=3))
    def check(entries):
        ours, reference = both(document(entries))
        assert for_comparison(ours) == for_comparison(reference)

    check()
