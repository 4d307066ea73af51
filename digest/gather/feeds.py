"""Turn a feed's bytes into parsed articles (RSS and Atom through feedparser)."""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import feedparser
import nh3

TRACKING_PARAMS = {"fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "igshid", "_hsenc", "_hsmi"}


class NotAFeed(Exception):
    pass


@dataclass(frozen=True)
class Image:
    url: str
    alt: str | None = None
    credit: str | None = None


@dataclass
class ParsedArticle:
    title: str
    url: str
    guid: str | None
    published: datetime | None
    author: str | None
    summary: str | None
    content_html: str | None
    image: Image | None
    categories: list[str] = field(default_factory=list)


@dataclass
class ParsedFeed:
    format: str
    title: str | None
    articles: list[ParsedArticle]


def canonical_url(url: str, base: str | None = None) -> str:
    """Absolute, host lower-cased, tracking parameters and fragment removed."""
    if base:
        url = urljoin(base, url)
    parts = urlsplit(url.strip())
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.lower().startswith("utm_") and k.lower() not in TRACKING_PARAMS
    ]
    netloc = parts.netloc.lower()
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", urlencode(query), ""))


def sanitize_html(html: str) -> str:
    """nh3 drops script, style, iframe, forms, event handlers and javascript: URLs."""
    return nh3.clean(html, url_schemes={"http", "https", "mailto"})


def _when(entry) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(key)
        if value:
            return datetime.fromtimestamp(calendar.timegm(value), UTC)
    return None


def _image(entry) -> Image | None:
    credits = entry.get("media_credit") or []
    credit = (credits[0].get("content") or "").strip() if credits else None
    alt = None
    if isinstance(entry.get("media_description"), str):
        alt = entry["media_description"].strip() or None
    for media in entry.get("media_content") or []:
        if media.get("url") and media.get("medium", "image") == "image":
            return Image(media["url"], alt, credit or None)
    for thumb in entry.get("media_thumbnail") or []:
        if thumb.get("url"):
            return Image(thumb["url"], alt, credit or None)
    for link in entry.get("links") or []:
        if link.get("rel") == "enclosure" and str(link.get("type", "")).startswith("image/"):
            return Image(link["href"], alt, credit or None)
    return None


def parse_feed(body: bytes, *, url: str) -> ParsedFeed:
    parsed = feedparser.parse(body, sanitize_html=False, resolve_relative_uris=False)
    version = parsed.get("version") or ""
    if not version and not parsed.entries:
        reason = parsed.get("bozo_exception")
        raise NotAFeed(f"not a feed ({reason})" if reason else "not a feed")
    articles = []
    for entry in parsed.entries:
        link = entry.get("link")
        title = (entry.get("title") or "").strip()
        if not link or not title:
            continue
        content = entry.get("content") or []
        content_html = content[0].get("value") if content else None
        summary = entry.get("summary")
        articles.append(
            ParsedArticle(
                title=title,
                url=canonical_url(link, base=url if "://" in url else None),
                guid=entry.get("id") or None,
                published=_when(entry),
                author=(entry.get("author") or "").strip() or None,
                summary=summary,
                content_html=sanitize_html(content_html or summary or ""),
                image=_image(entry),
                categories=[t.get("term") for t in entry.get("tags") or [] if t.get("term")],
            )
        )
    return ParsedFeed(format=version or "unknown", title=parsed.feed.get("title"), articles=articles)
