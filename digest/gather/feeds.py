"""Turn a document's bytes into articles: RSS and Atom through feedparser, JSON Feed as JSON, or a page.

Plain, well-formed RSS 2.0 and Atom 1.0 in UTF-8 (the common case) are read by `fastfeed` instead, into
the same entry dictionaries feedparser would make; everything else goes through feedparser.

`parse_document` is the one entry point. It tells the format from the content (see `sniff`), never
raises anything but `NotAFeed` for a document it cannot read, and does a best-effort parse of a
malformed feed, saying what was wrong in `ParsedFeed.warning`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

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
        feed = _parse_html(body, url=url)
    else:
        feed = parse_feed(body, url=url, content_type=content_type)
    for article in feed.articles:
        article.finish()
    return feed


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
    base = feed.get("link") if "://" not in url or url.startswith("file:") else url
    articles = [a for a in (_entry(e, base or url) for e in entries) if a is not None]
    warning = f"malformed feed, read as far as possible: {_one_line(problem)}" if problem is not None else None
    return ParsedFeed(version or "unknown", clip(feed.get("title"), 500), articles, warning, items=len(entries))


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
    for media in entry.get("media_content") or []:
        medium = media.get("medium") or ""
        kind = media.get("type") or ""
        if media.get("url") and (medium == "image" or kind.startswith("image/") or (not medium and not kind)):
            src = safe_canonical_url(media["url"], base)
            if src:
                return Image(src, alt, credit)
    for thumb in entry.get("media_thumbnail") or []:
        src = safe_canonical_url(thumb.get("url"), base)
        if src:
            return Image(src, alt, credit)
    for link in entry.get("links") or []:
        if link.get("rel") == "enclosure" and str(link.get("type", "")).startswith("image/"):
            src = safe_canonical_url(link.get("href"), base)
            if src:
                return Image(src, alt, credit)
    return first_image(content_html, base)


def _entry(entry: FeedEntry, base: str) -> ParsedArticle | None:
    link = entry.get("link")
    if not link:
        for candidate in entry.get("links") or []:
            if candidate.get("rel") in (None, "alternate") and candidate.get("href"):
                link = candidate["href"]
                break
    guid = clip(entry.get("id"), MAX_GUID)
    if not link and guid and guid.startswith(("http://", "https://")):
        link = guid
    url = safe_canonical_url(link, base)
    title = clip(plain_text(entry.get("title")), 2000)
    if not url:
        return None
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
    published = None
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        published = parse_time(entry.get(key))
        if published:
            break
    if published is None:
        published = parse_time(entry.get("published") or entry.get("updated"))
    categories = []
    for tag in entry.get("tags") or []:
        term = clip(tag.get("term") or tag.get("label"), 200)
        if term and term not in categories:
            categories.append(term)
    return ParsedArticle(
        title=title or _untitled(summary, content_html, url),
        url=url,
        guid=guid,
        published=published,
        author=_author(entry),
        summary=sanitize_html(summary) if summary else None,
        content_html=clean_content,
        image=_image(entry, content_html or summary, base),
        categories=categories,
    )


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
    articles = []
    for item in data["items"]:
        if isinstance(item, dict):
            article = _json_item(item, base, feed_authors)
            if article is not None:
                articles.append(article)
    return ParsedFeed(fmt, clip(_str(data.get("title")), 500), articles, items=len(data["items"]))


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _json_authors(obj: JsonObject) -> str | None:
    authors = obj.get("authors")
    if not isinstance(authors, list):
        authors = [obj["author"]] if isinstance(obj.get("author"), dict) else []
    names = [a["name"].strip() for a in authors if isinstance(a, dict) and _str(a.get("name"))]
    return clip(", ".join(names), MAX_AUTHOR) if names else None


def _json_item(item: JsonObject, base: str, feed_authors: str | None) -> ParsedArticle | None:
    guid = _str(item.get("id")) or (str(item["id"]) if isinstance(item.get("id"), int) else None)
    url = safe_canonical_url(_str(item.get("url")) or _str(item.get("external_url")), base)
    if not url and guid and guid.startswith(("http://", "https://")):
        url = safe_canonical_url(guid)
    if not url:
        return None
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
    return ParsedArticle(
        title=clip(plain_text(_str(item.get("title")) or ""), 2000) or _untitled(summary, content_html, url),
        url=url,
        guid=clip(guid, MAX_GUID),
        published=parse_time(_str(item.get("date_published")) or _str(item.get("date_modified"))),
        author=_json_authors(item) or feed_authors,
        summary=sanitize_html(summary) if summary else None,
        content_html=sanitize_html(content_html or summary),
        image=image or first_image(content_html, base),
        categories=[c for t in (tags if isinstance(tags, list) else []) if isinstance(t, str) and (c := clip(t, 200))],
    )


def _escape(text: str) -> str:
    import html

    return html.escape(text).replace("\n", "<br>")
