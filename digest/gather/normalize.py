"""The same shape for every article whatever its source: canonical URL, clean HTML, UTC times, image.

Feeds disagree on almost everything; these helpers are where an article's fields are made
comparable so that deduplication (by canonical URL and GUID) and change detection (content hash)
work across sources and across runs.
"""

from __future__ import annotations

import hashlib
import html
import re
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import nh3

# Query parameters that only say where a click came from; they make one article look like many.
TRACKING_PARAMS = {
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "mc_cid", "mc_eid", "igshid", "yclid",
    "_hsenc", "_hsmi", "mkt_tok", "oly_anon_id", "oly_enc_id", "vero_id", "ncid", "cmpid", "ocid",
}  # fmt: skip
TRACKING_PREFIXES = ("utm_", "__twitter", "_ga")

# Column sizes of the store; longer values are cut (or, for URLs, the article is skipped).
MAX_URL = 2000
MAX_GUID = 1000
MAX_AUTHOR = 500
# An image side beyond this (in CSS pixels) is not a photo's size but a mistake or an attack: left unknown.
MAX_IMAGE_SIDE = 10_000


@dataclass(frozen=True)
class Image:
    url: str
    alt: str | None = None
    credit: str | None = None
    caption: str | None = None
    # The size the source gives, both or neither (image_size): the e-mail reserves the image's box
    # with it, so that the text does not jump as images load.
    width: int | None = None
    height: int | None = None

    def with_size(self, size: tuple[int, int] | None) -> Image:
        """This image with a size that was found for it, unless it has one already."""
        if size is None or self.width is not None:
            return self
        return replace(self, width=size[0], height=size[1])

    @property
    def size(self) -> tuple[int, int] | None:
        return (self.width, self.height) if self.width is not None and self.height is not None else None


@dataclass
class ParsedArticle:
    title: str
    url: str  # canonical
    guid: str | None
    published: datetime | None  # UTC; None when the source gave no usable time
    author: str | None
    summary: str | None  # the feed's short description, as HTML or text
    content_html: str | None  # sanitized
    image: Image | None
    categories: list[str] = field(default_factory=list)
    # Where the URL came from: the item's own link, its GUID, or (neither being a usable link) the
    # channel's link with an anchor for the item; `digest inspect-feed` shows it.
    link_from: str = "link"
    # Worked out by finish() where the parsing happens (a worker process), not on the event loop.
    words: int = 0
    dek: str | None = None
    feed_hash: str = ""

    def finish(self) -> ParsedArticle:
        self.words = len(_TAG.sub(" ", self.content_html or self.summary or "").split())
        self.dek = None
        if self.summary and self.content_html:
            # A feed's separate summary reads as the dek when the full text is there too.
            dek = plain_text(self.summary)
            if dek and not plain_text(self.content_html[: len(self.summary) * 2]).startswith(dek):
                self.dek = dek
        if not self.feed_hash:
            self.feed_hash = self.content_hash()
        return self

    def content_hash(self) -> str:
        """Changes when anything a reader would see changes; the time alone does not count."""
        h = hashlib.sha256()
        image = self.image
        for part in (
            self.title,
            self.summary or "",
            self.content_html or "",
            self.author or "",
            "\x1f".join(self.categories),
            image.url if image else "",
            (image.alt or "") if image else "",
            (image.credit or "") if image else "",
        ):
            h.update(part.encode("utf-8", "replace"))
            h.update(b"\0")
        return h.hexdigest()


@dataclass
class ParsedFeed:
    format: str  # rss20, atom10, json11, page, ...
    title: str | None
    articles: list[ParsedArticle]
    warning: str | None = None  # a best-effort parse of a malformed document says why here
    items: int | None = None  # the items the document holds, kept or not; None: as many as articles


class NotAFeed(Exception):
    """The document is not something articles can be read from (HTML homepage, empty, bomb, ...).

    items: a feed whose items could none of them be kept says how many it had (for `digest sources`)."""

    def __init__(self, message: str, *, items: int | None = None) -> None:
        super().__init__(message)
        self.items = items


def canonical_url(url: str, base: str | None = None, *, keep_fragment: bool = False) -> str:
    """Absolute, scheme and host lower-cased, default port, tracking parameters and fragment removed.

    keep_fragment: for the items of one feed that only their fragment tells apart (comments, status
    entries), where dropping it would make them one article.
    """
    return _canonical(url, base, keep_fragment)[0]


def _canonical(url: str, base: str | None, keep_fragment: bool = False) -> tuple[str, str]:
    """canonical_url and its scheme."""
    url = url.strip()
    if base and "://" in base:
        url = urljoin(base, url)
    parts = urlsplit(url)
    query = ""
    if parts.query:
        query = urlencode(
            [
                (k, v)
                for k, v in parse_qsl(parts.query, keep_blank_values=True)
                if not k.lower().startswith(TRACKING_PREFIXES) and k.lower() not in TRACKING_PARAMS
            ]
        )
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port if parts.port not in (None, {"http": 80, "https": 443}.get(scheme)) else None
    netloc = host + (f":{port}" if port else "")
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    path = parts.path or ("/" if netloc else "")
    return urlunsplit((scheme, netloc, path, query, parts.fragment if keep_fragment else "")), scheme


def _from_network(base: str | None) -> bool:
    return base is not None and urlsplit(base.strip()).scheme.lower() not in ("", "file")


def safe_canonical_url(url: str | None, base: str | None = None, *, keep_fragment: bool = False) -> str | None:
    """canonical_url, or None for a URL that is not http(s)/file or does not fit the store.

    A `file:` URL is kept only in a document read from disk (the operator's own sample feeds): in a
    document fetched over the network it names a file on our machine, chosen by whoever wrote it.
    """
    if not url or not url.strip():
        return None
    try:
        result, scheme = _canonical(url, base, keep_fragment)
    except ValueError:  # a malformed port or IPv6 literal
        return None
    allowed = ("http", "https") if _from_network(base) else ("http", "https", "file")
    if scheme not in allowed or len(result) > MAX_URL:
        return None
    if "[" in result or "]" in result or not result.isascii():
        try:  # what urlsplit refuses (stray brackets, odd Unicode in the host) must not be stored
            urlsplit(result)
        except ValueError:
            return None
    return result


_ALLOWED_SCHEMES = {"http", "https", "mailto"}
# Built once: nh3.clean() builds its sanitizer anew on every call, which costs more than the cleaning.
_CLEANER = nh3.Cleaner(url_schemes=_ALLOWED_SCHEMES, link_rel="noopener noreferrer")


def sanitize_html(fragment: str | None) -> str | None:
    """nh3 keeps the prose markup and drops script, style, iframe, forms, on* and javascript: URLs."""
    if not fragment or not fragment.strip():
        return None
    cleaned = _CLEANER.clean(fragment).strip()
    return cleaned or None


_TAG = re.compile(r"<[^>]*>")
# Elements whose text is code, not prose: it never reaches a title or a description. An element left
# open runs to the end, as a browser would read it. Comments go too (a ">" inside one would cut it short).
_HIDDEN = re.compile(r"<(script|style)\b[^>]*>.*?(?:</\1\s*>|\Z)|<!--.*?(?:-->|\Z)", re.IGNORECASE | re.DOTALL)
# Inline (phrasing) elements sit inside words: "1930ft<sup>2</sup>" is "1930ft2", not "1930ft 2".
# Every other tag (p, div, br, li, td, img, an unknown element) separates words.
_INLINE_TAG = re.compile(
    r"</?(?:a|abbr|acronym|b|bdi|bdo|big|cite|code|data|del|dfn|em|font|i|ins|kbd|mark|q|s|samp|small|span"
    r"|strike|strong|sub|sup|time|tt|u|var|wbr)(?=[\s/>])[^>]*>",
    re.IGNORECASE,
)


def plain_text(fragment: str | None) -> str:
    """Rough text of an HTML fragment: enough to count words or show a one-line description."""
    if not fragment:
        return ""
    if "<" in fragment:
        fragment = _TAG.sub(" ", _INLINE_TAG.sub("", _HIDDEN.sub(" ", fragment)))
    # str.split() and the regex \s agree on what whitespace is; split-and-join is several times faster.
    return " ".join(html.unescape(fragment).split())


def clip(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    value = " ".join(value.split())
    return value[:limit] or None


def parse_time(value: str | time.struct_time | None) -> datetime | None:
    """An ISO 8601 or RFC 822 time, or a struct_time, as aware UTC; None when it cannot be read."""
    if value is None:
        return None
    if isinstance(value, time.struct_time):
        import calendar

        try:
            return datetime.fromtimestamp(calendar.timegm(value), UTC)
        except (OverflowError, ValueError, OSError):
            return None
    text = str(value).strip()
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    if when.tzinfo is None:  # a time without an offset is taken as UTC rather than guessed
        when = when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


_IMG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_ATTR = re.compile(r"""([a-zA-Z_:][-a-zA-Z0-9_:.]*)\s*=\s*("[^"]*"|'[^']*'|[^\s"'>]+)""")


def first_image(fragment: str | None, base: str | None = None) -> Image | None:
    """The first <img> of some HTML, with its alt text and size, as the article's image of last resort."""
    if not fragment:
        return None
    for tag in _IMG.findall(fragment):
        attrs = {k.lower(): html.unescape(v.strip("\"'")) for k, v in _ATTR.findall(tag)}
        src = safe_canonical_url(attrs.get("src"), base)
        if src and src.startswith("http"):
            return Image(src, clip(attrs.get("alt"), 2000)).with_size(
                image_size(attrs.get("width"), attrs.get("height"))
            )
    return None


def _side(value: object) -> int | None:
    # A whole number of pixels, as an int or as digits ("1200"; "1200px" and "50%" are not sizes we
    # can lay out by); a bool is not a number here, though Python counts it as one.
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value.isascii() or not value.isdigit() or len(value) > 6:
            return None
        value = int(value)
    if isinstance(value, int) and 0 < value <= MAX_IMAGE_SIDE:
        return value
    return None


def image_size(width: object, height: object) -> tuple[int, int] | None:
    """An image's (width, height) from what a feed or page says, or None unless both are sane sizes."""
    w, h = _side(width), _side(height)
    return (w, h) if w is not None and h is not None else None
