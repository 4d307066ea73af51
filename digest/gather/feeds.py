"""Turn a document's bytes into articles: RSS and Atom through feedparser, JSON Feed as JSON, or a page.

Plain, well-formed RSS 2.0 and Atom 1.0 in UTF-8 (the common case) are read by `fastfeed` instead, into
the same entry dictionaries feedparser would make; everything else goes through feedparser.

`parse_document` is the one entry point. It tells the format from the content (see `sniff`), never
raises anything but `NotAFeed` for a document it cannot read, and does a best-effort parse of a
malformed feed, saying what was wrong in `ParsedFeed.warning`.

An item's URL (its key in the store) is its link, resolved against xml:base and then the feed's
own URL; else its GUID when that is a web URL; else the channel's link with an anchor for the item
(`ParsedArticle.link_from` says which). Canonical URLs drop their #fragment, except for items of one
feed that only the fragment tells apart. An Atom feed inside an XHTML page is read as a feed. A feed
with items none of which can be kept raises NotAFeed: an empty success would hide the loss.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import feedparser

from digest.gather import fastfeed, sniff
from digest.gather.normalize import (
    MAX_AUTHOR,
    MAX_GUID,
    Image,
    NotAFeed,
    ParsedArticle,
    ParsedFeed,
    clip,
    first_image,
    image_size,
    parse_time,
    plain_text,
    safe_canonical_url,
    sanitize_html,
)
from digest.gather.pages import looks_like_article, parse_page

__all__ = ["NotAFeed", "ParsedArticle", "ParsedFeed", "parse_document", "parse_feed"]

# An entry as feedparser makes it (its dictionaries are untyped) or as fastfeed copies one.
FeedEntry = Mapping[str, Any]
# An object of a JSON Feed, as json.loads gives it.
JsonObject = dict[str, Any]

# Feedparser's bozo exceptions that still leave a fully usable feed.
_HARMLESS = (feedparser.CharacterEncodingOverride,)


def parse_document(body: bytes, *, url: str, content_type: str | None = None) -> ParsedFeed:
    """Articles from any supported document; NotAFeed with a one-line reason otherwise."""
    what = sniff.kind(body)
    if what == "empty":
        raise NotAFeed("not a feed: the response is empty")
    if what == "json":
        feed = parse_json_feed(body, url=url)
    elif what == "html":
        inner = _embedded_feed(body)
        feed = _parse_html(body, url=url) if inner is None else parse_feed(inner, url=url)
    else:
        feed = parse_feed(body, url=url, content_type=content_type)
    for article in feed.articles:
        article.finish()
    return feed


# A feed element (perhaps prefixed) and the Atom namespace: what an XHTML page that wraps a feed holds.
_FEED_TAG = re.compile(rb"<((?:[A-Za-z_][\w.-]*:)?feed)\b")
_ATOM_NS = b"http://www.w3.org/2005/Atom"


def _embedded_feed(body: bytes) -> bytes | None:
    """The Atom feed inside an XHTML page (a feed styled for browsers), as a document of its own; or None.

    The page is read as XML (XHTML is XML) so that namespaces declared on the page's own elements
    still apply; from a page that is not well-formed, the text from a <feed xmlns="...Atom"> tag to
    its end tag is taken.
    """
    if sniff.unicode_encoding(body) not in (None, "utf-8") or _ATOM_NS not in body:
        return None  # UTF-16/32 pages: no one wraps a feed that way, and what follows reads bytes
    start = _FEED_TAG.search(body)
    if start is None:
        return None
    from lxml import etree

    sniff.check_entities(body)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root: etree._Element | None
    try:
        root = etree.fromstring(body, parser)
    except (etree.XMLSyntaxError, ValueError):
        root = None
    if root is not None:
        for element in root.iter(f"{{{fastfeed.ATOM}}}feed"):
            return bytes(etree.tostring(element, encoding="utf-8", xml_declaration=True))
        return None
    tag = start.group(1)
    end = body.rfind(b"</" + tag + b">")
    if end == -1 or _ATOM_NS not in body[start.start() : body.find(b">", start.start())]:
        return None
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + body[start.start() : end + len(tag) + 3]


def _parse_html(body: bytes, *, url: str) -> ParsedFeed:
    import lxml.html
    from lxml import etree

    try:
        tree = lxml.html.fromstring(body)
    except (etree.ParserError, ValueError):
        raise NotAFeed("not a feed: an HTML page that cannot be read") from None
    if looks_like_article(tree):
        _, article = parse_page(body, url)
        if article is not None:
            title = tree.findtext(".//title")
            return ParsedFeed("page", clip(title, 500), [article])
    alternate = tree.xpath(
        "//link[@rel='alternate' and (contains(@type,'rss') or contains(@type,'atom') or contains(@type,'json'))]/@href"
    )
    hint = f"; its feed may be {safe_canonical_url(alternate[0], url) or alternate[0]}" if alternate else ""
    raise NotAFeed(f"not a feed: an HTML page, and not an article page either{hint}")


# --- RSS and Atom --------------------------------------------------------------------------------


def _one_line(exc: object) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def parse_feed(body: bytes, *, url: str, content_type: str | None = None) -> ParsedFeed:
    sniff.check_entities(body)
    plain = fastfeed.read(body, content_type)
    if plain is not None:
        version, feed, entries = plain
        problem = None
    else:
        headers = {"content-type": content_type} if content_type else None
        parsed = feedparser.parse(body, response_headers=headers, sanitize_html=False, resolve_relative_uris=False)
        version, feed, entries = parsed.get("version") or "", parsed.feed, parsed.entries
        problem = parsed.get("bozo_exception") if parsed.get("bozo") else None
        if problem is not None and isinstance(problem, _HARMLESS):
            problem = None
    if not entries:
        if not version:
            raise NotAFeed(f"not a feed ({_one_line(problem)})" if problem else "not a feed: no RSS, Atom or RDF root")
        if problem is not None:
            raise NotAFeed(f"malformed {version} feed with no readable articles: {_one_line(problem)}")
    # Relative links resolve against xml:base (feedparser applies it; the fast path leaves such feeds
    # to feedparser) and then against the document's own URL. A file read from disk was saved from
    # somewhere: its rel="self" link, or else its site's link, says where.
    base = url if "://" in url and not url.startswith("file:") else _saved_from(feed, url)
    home = safe_canonical_url(feed.get("link"), base) or safe_canonical_url(base)
    found = [_entry(e, base, home) for e in entries]
    warning = f"malformed feed, read as far as possible: {_one_line(problem)}" if problem is not None else None
    articles = _told_apart([f for f in found if f is not None])
    lost = [e for e, f in zip(entries, found, strict=True) if f is None and _an_item(e)]
    items = len(articles) + len(lost)
    title = clip(feed.get("title"), 500)
    dropped = str(lost[0].get("link") or "") if lost else None
    return _kept(ParsedFeed(version or "unknown", title, articles, warning, items), dropped)


def _saved_from(feed: FeedEntry, url: str) -> str:
    """The URL a feed read from disk was published at: its rel="self" link, its site's link, or the file."""
    links = [link.get("href") for link in feed.get("links") or [] if link.get("rel") == "self"]
    for candidate in [*links, feed.get("link")]:
        if isinstance(candidate, str) and candidate.strip().lower().startswith(("http://", "https://")):
            return candidate.strip()
    return url


def _kept(feed: ParsedFeed, dropped_link: str | None) -> ParsedFeed:
    """A feed with items of which none could be kept is an error, never an empty success; some lost, a warning.

    dropped_link: the link of the first item not kept ("" for none; None when only non-items were lost).
    """
    total = len(feed.articles) if feed.items is None else feed.items
    lost = total - len(feed.articles)
    if not lost:
        return feed
    if dropped_link:
        why = f"their links are not web addresses we may use (such as {clip(dropped_link, 100)!r})"
    elif dropped_link is None:  # only a JSON Feed's items that are not objects were lost
        why = "they are not items (JSON values that are not objects)"
    else:
        why = "they have no usable link, no URL as GUID, and no title or text to give them an address"
    if not feed.articles:
        raise NotAFeed(f"none of the feed's {total} items could be kept: {why}", items=total)
    note = f"{lost} of {total} items skipped: {why}"
    feed.warning = f"{feed.warning}; {note}" if feed.warning else note
    return feed


def _told_apart(found: list[tuple[ParsedArticle, str]]) -> list[ParsedArticle]:
    """The articles, with the fragment kept in the URLs of those only their fragment tells apart.

    A canonical URL drops its #fragment so that one article reached by two links is one article;
    but items of one feed whose links differ only by fragment (the comments of one post, the updates
    of one status page) would then be one article and all but one lost.
    """
    by_url: dict[str, list[tuple[ParsedArticle, str]]] = {}
    for article, full in found:
        by_url.setdefault(article.url, []).append((article, full))
    for group in by_url.values():
        if len(group) > 1 and len({full for _, full in group}) > 1:
            for article, full in group:
                article.url = full
    return [article for article, _ in found]


def _credit(entry: FeedEntry) -> str | None:
    for credit in entry.get("media_credit") or []:
        value = credit.get("content") if isinstance(credit, dict) else None
        if value and value.strip():
            return clip(value, 500)
    return None


def _image(entry: FeedEntry, content_html: str | None, base: str) -> Image | None:
    credit = _credit(entry)
    alt = None
    # feedparser files <media:description> (the image's alt text) under summary_detail, after the item's
    # own <description> was read into summary: a summary_detail that differs from summary is the alt text.
    detail = entry.get("summary_detail") or {}
    if entry.get("media_content") and detail.get("value") and detail.get("value") != entry.get("summary"):
        alt = clip(plain_text(detail["value"]), 2000)
    # Media RSS gives an image's size in its width and height attributes; an enclosure has none.
    for media in entry.get("media_content") or []:
        medium = media.get("medium") or ""
        kind = media.get("type") or ""
        if media.get("url") and (medium == "image" or kind.startswith("image/") or (not medium and not kind)):
            src = safe_canonical_url(media["url"], base)
            if src:
                return Image(src, alt, credit).with_size(image_size(media.get("width"), media.get("height")))
    for thumb in entry.get("media_thumbnail") or []:
        src = safe_canonical_url(thumb.get("url"), base)
        if src:
            return Image(src, alt, credit).with_size(image_size(thumb.get("width"), thumb.get("height")))
    for link in entry.get("links") or []:
        if link.get("rel") == "enclosure" and str(link.get("type", "")).startswith("image/"):
            src = safe_canonical_url(link.get("href"), base)
            if src:
                return Image(src, alt, credit)
    return first_image(content_html, base)


def _web_url(value: str | None) -> bool:
    return bool(value) and str(value).lower().startswith(("http://", "https://"))


def _anchor(guid: str | None, title: str | None, published: datetime | None, text: str | None) -> str:
    """A fragment naming an item that has no link: its GUID, or a digest of its title and time.

    Made from the item as read (plain title, UTC time), not the raw elements, so that the fast path
    and feedparser (which files the same dates under other keys) give the same anchor.
    """
    if guid and len(guid) <= 200:
        return quote(guid, safe="/?:@!$'()*+,;=")
    parts = [guid or "", plain_text(title), published.isoformat() if published else ""]
    if not parts[1]:
        parts.append(plain_text(text))
    return "item-" + hashlib.sha256("\0".join(parts).encode("utf-8", "replace")).hexdigest()[:16]


def _published(entry: FeedEntry) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        published = parse_time(entry.get(key))
        if published:
            return published
    return parse_time(entry.get("published") or entry.get("updated"))


def _shows_text(entry: FeedEntry) -> bool:
    texts = [entry.get("title"), entry.get("summary"), *(c.get("value") for c in entry.get("content") or [])]
    return any(plain_text(text) for text in texts if isinstance(text, str))


def _an_item(entry: FeedEntry) -> bool:
    """Anything at all in it: a link, an id or some text (an empty <item/> is no item to lose)."""
    return bool(entry.get("link") or entry.get("links") or entry.get("id")) or _shows_text(entry)


def _item_link(entry: FeedEntry, guid: str | None, base: str, home: str | None) -> tuple[str, str, str] | None:
    """(canonical URL, the same with its fragment, where it came from: "link", "guid" or "channel").

    The item's own link when it has one (a link we may not use drops the item rather than
    replacing it); else its GUID when that is an http(s) URL, whatever isPermaLink says; else the
    channel's link with an anchor for the item, as a status or announcements feed needs.
    """
    alternates = [c["href"] for c in entry.get("links") or [] if c.get("rel") in (None, "alternate") and c.get("href")]
    link = entry.get("link") or (alternates[0] if alternates else None)
    # Both feedparser and the fast path copy a permalink GUID (an Atom id) into `link`: not a link of its own.
    if link and (link in alternates or link != entry.get("id")):
        url = safe_canonical_url(link, base)
        if not url:
            return None
        return url, safe_canonical_url(link, base, keep_fragment=True) or url, "link"
    if guid and _web_url(guid):
        url = safe_canonical_url(guid, base)
        if url:
            return url, safe_canonical_url(guid, base, keep_fragment=True) or url, "guid"
    # An item with nothing to show (a truncated feed's last one) is not worth an address of its own.
    if home and _shows_text(entry):
        anchor = _anchor(guid, entry.get("title"), _published(entry), entry.get("summary"))
        full = safe_canonical_url(f"{home}#{anchor}", keep_fragment=True)
        if full:
            return full, full, "channel"
    return None


def _entry(entry: FeedEntry, base: str, home: str | None) -> tuple[ParsedArticle, str] | None:
    """The article and its URL with the fragment (see _told_apart); None for an item we cannot keep."""
    guid = clip(entry.get("id"), MAX_GUID)
    found = _item_link(entry, guid, base, home)
    if found is None:
        return None
    url, full, link_from = found
    title = clip(plain_text(entry.get("title")), 2000)
    content = entry.get("content") or []
    content_html = next((c.get("value") for c in content if (c.get("value") or "").strip()), None)
    summary = entry.get("summary")
    if (
        content_html
        and summary
        and len(summary) * 2 > len(content_html)
        and plain_text(summary) == plain_text(content_html)
    ):
        summary = None  # RSS <description> only: feedparser repeats it as the content
    clean_content = sanitize_html(content_html or summary)
    published = _published(entry)
    categories = []
    for tag in entry.get("tags") or []:
        term = clip(tag.get("term") or tag.get("label"), 200)
        if term and term not in categories:
            categories.append(term)
    article = ParsedArticle(
        title=title or _untitled(summary, content_html, url),
        url=url,
        guid=guid,
        published=published,
        author=_author(entry),
        summary=sanitize_html(summary) if summary else None,
        content_html=clean_content,
        image=_image(entry, content_html or summary, base),
        categories=categories,
        link_from=link_from,
    )
    return article, full


def _untitled(summary: str | None, content_html: str | None, url: str) -> str:
    """A title for an untitled item (JSON Feed allows them; so do microblogs): the start of its text."""
    text = plain_text(summary) or plain_text(content_html)
    if not text:
        return url
    return text if len(text) <= 120 else text[:117].rsplit(" ", 1)[0] + "…"


def _author(entry: FeedEntry) -> str | None:
    name = entry.get("author")
    detail = entry.get("author_detail") or {}
    if detail.get("name"):
        name = detail["name"]
    elif name:
        # RSS 2.0 <author> is "email (Name)"; show the name.
        match = re.match(r"^\s*\S+@\S+\s*\((.+)\)\s*$", name)
        if match:
            name = match.group(1)
    return clip(plain_text(name), MAX_AUTHOR) if name else None


# --- JSON Feed -----------------------------------------------------------------------------------


def parse_json_feed(body: bytes, *, url: str) -> ParsedFeed:
    """JSON Feed 1.0 and 1.1 (https://jsonfeed.org/version/1.1); feedparser does not read it."""
    try:
        data = json.loads(sniff.as_text(body) if sniff.unicode_encoding(body) else body)
    except (ValueError, RecursionError) as exc:
        raise NotAFeed(f"not a feed: invalid JSON ({_one_line(exc)})") from None
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise NotAFeed("not a feed: JSON without an 'items' list (not a JSON Feed)")
    version = str(data.get("version") or "")
    fmt = "json11" if version.endswith("/1.1") else "json10" if version.endswith("/1") else "json"
    base = url if "://" in url and not url.startswith("file:") else (_str(data.get("home_page_url")) or url)
    feed_authors = _json_authors(data)
    home = safe_canonical_url(_str(data.get("home_page_url")), base) or safe_canonical_url(base)
    found = []
    lost: list[JsonObject] = []  # items with something in them that could not be kept
    not_items = 0  # values of the items array that are not objects at all
    for item in data["items"]:
        if not isinstance(item, dict):
            not_items += 1
        elif any(item.values()):
            article = _json_item(item, base, feed_authors, home)
            if article is not None:
                found.append(article)
            else:
                lost.append(item)
    items = len(found) + len(lost) + not_items
    feed = ParsedFeed(fmt, clip(_str(data.get("title")), 500), _told_apart(found), items=items)
    return _kept(feed, (_str(lost[0].get("url")) or "") if lost else None)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _json_authors(obj: JsonObject) -> str | None:
    authors = obj.get("authors")
    if not isinstance(authors, list):
        authors = [obj["author"]] if isinstance(obj.get("author"), dict) else []
    names = [a["name"].strip() for a in authors if isinstance(a, dict) and _str(a.get("name"))]
    return clip(", ".join(names), MAX_AUTHOR) if names else None


def _json_link(item: JsonObject, guid: str | None, base: str, home: str | None) -> tuple[str, str, str] | None:
    """As _item_link: the item's url (or external_url), its id when a URL, or the home page with an anchor."""
    link = _str(item.get("url")) or _str(item.get("external_url"))
    url = safe_canonical_url(link, base)
    if url:
        return url, safe_canonical_url(link, base, keep_fragment=True) or url, "link"
    if guid and _web_url(guid):
        url = safe_canonical_url(guid)
        if url:
            return url, safe_canonical_url(guid, keep_fragment=True) or url, "guid"
    title = _str(item.get("title"))
    text = _str(item.get("content_text")) or _str(item.get("content_html")) or _str(item.get("summary"))
    if home and not link and (plain_text(title) or plain_text(text)):  # as _item_link: something to show
        published = parse_time(_str(item.get("date_published")) or _str(item.get("date_modified")))
        full = safe_canonical_url(f"{home}#{_anchor(guid, title, published, text)}", keep_fragment=True)
        if full:
            return full, full, "channel"
    return None


def _json_item(
    item: JsonObject, base: str, feed_authors: str | None, home: str | None
) -> tuple[ParsedArticle, str] | None:
    guid = _str(item.get("id")) or (str(item["id"]) if isinstance(item.get("id"), int) else None)
    found = _json_link(item, guid, base, home)
    if found is None:
        return None
    url, full, link_from = found
    content_html = _str(item.get("content_html"))
    if content_html is None and _str(item.get("content_text")):
        paragraphs = [p for p in re.split(r"\n\s*\n", item["content_text"]) if p.strip()]
        content_html = "".join(f"<p>{_escape(p.strip())}</p>" for p in paragraphs)
    summary = _str(item.get("summary"))
    image = None
    for key in ("image", "banner_image"):
        src = safe_canonical_url(_str(item.get(key)), base)
        if src:
            image = Image(src)
            break
    if image is None:
        for attachment in item.get("attachments") or []:
            if isinstance(attachment, dict) and str(attachment.get("mime_type", "")).startswith("image/"):
                src = safe_canonical_url(_str(attachment.get("url")), base)
                if src:
                    image = Image(src, clip(_str(attachment.get("title")), 2000))
                    break
    tags = item.get("tags")
    article = ParsedArticle(
        title=clip(plain_text(_str(item.get("title")) or ""), 2000) or _untitled(summary, content_html, url),
        url=url,
        guid=clip(guid, MAX_GUID),
        published=parse_time(_str(item.get("date_published")) or _str(item.get("date_modified"))),
        author=_json_authors(item) or feed_authors,
        summary=sanitize_html(summary) if summary else None,
        content_html=sanitize_html(content_html or summary),
        image=image or first_image(content_html, base),
        categories=[c for t in (tags if isinstance(tags, list) else []) if isinstance(t, str) and (c := clip(t, 200))],
        link_from=link_from,
    )
    return article, full


def _escape(text: str) -> str:
    import html

    return html.escape(text).replace("\n", "<br>")
