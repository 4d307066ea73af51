"""Tell what a document is from its bytes, and refuse XML whose entities would expand without bound.

The URL and the Content-Type lie often (feeds served as text/html, pages as application/rss+xml),
so the format is read from the content itself: JSON, XML, an HTML page, or nothing at all.

Entity expansion: feedparser keeps "safe" entity declarations and hands them to expat, and to its
loose fallback parser, which expands them itself. Recent expat limits amplification, older builds
and the fallback do not; a 10 MB feed declaring a 1 KB entity used a million times would grow to
gigabytes. So before parsing, declarations are checked and the expansion they allow is estimated.
"""

from __future__ import annotations

import re

from digest.gather.normalize import NotAFeed

_BOMS = [
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xef\xbb\xbf", "utf-8"),
]
# "<?" or "<" encoded without a BOM, as XML 1.0 appendix F describes.
_BOMLESS = [
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<\x00?", "utf-16-be"),
    (b"<\x00?\x00", "utf-16-le"),
    (b"\x00<", "utf-16-be"),
    (b"<\x00", "utf-16-le"),
]

_ENTITY_DECL = re.compile(r"<!ENTITY\s+(%\s+)?([^\s>]+)\s+([^>]*)>", re.IGNORECASE | re.DOTALL)
_QUOTED = re.compile(r"""^("([^"]*)"|'([^']*)')\s*$""", re.DOTALL)
_FIRST_ELEMENT = re.compile(r"<[A-Za-z_]")

MAX_ENTITIES = 256
MAX_ENTITY_CHARS = 4096
# Expansion allowed beyond the document's own size (what ordinary feeds with &nbsp;-style entities need).
MAX_EXPANSION = 1_000_000


def unicode_encoding(body: bytes) -> str | None:
    """The UTF-16/32 (or UTF-8 BOM) encoding a body announces by its first bytes, if any."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name
    for marker, name in _BOMLESS:
        if body.startswith(marker):
            return name
    return None


def as_text(body: bytes) -> str:
    """Text good enough for looking at markup: ASCII-compatible encodings read as latin-1."""
    encoding = unicode_encoding(body)
    if encoding:
        return body.decode(encoding, errors="replace").lstrip("\ufeff")
    return body.decode("latin-1")


def kind(body: bytes) -> str:
    """'empty', 'json', 'html' or 'xml' (the last meaning: let the feed parser try)."""
    head = as_text(body[:4096]).lstrip()
    if not head.strip():
        return "empty"
    if head[0] in "{[":
        return "json"
    lowered = head[:4096].lower()
    # A feed starts with <?xml, a comment or its root element; a page with a doctype or <html>.
    for marker in ("<rss", "<feed", "<rdf:rdf", "<rdf", "<channel"):
        at = lowered.find(marker)
        if at != -1 and (lowered.find("<html") == -1 or at < lowered.find("<html")):
            return "xml"
    if lowered.startswith("<!doctype html") or "<html" in lowered or "<head" in lowered or "<body" in lowered:
        return "html"
    return "xml"


def check_entities(body: bytes) -> None:
    """Raise NotAFeed when the DTD declares entities that could blow up memory when expanded."""
    if not re.search(rb"<!ENTITY", body, re.IGNORECASE) and b"\x00" not in body[:4]:
        return
    text = as_text(body)
    start = _FIRST_ELEMENT.search(text)
    prolog = text[: start.start()] if start else text
    declarations = _ENTITY_DECL.findall(prolog)
    if not declarations:
        return
    bomb = "refused: the document declares XML entities that could expand without bound (an entity-expansion bomb)"
    if len(declarations) > MAX_ENTITIES:
        raise NotAFeed(f"{bomb}: {len(declarations)} entity declarations")
    body_text = text[len(prolog) :]
    expansion = 0
    for parameter, name, definition in declarations:
        if parameter:
            raise NotAFeed(f"{bomb}: parameter entity %{name}")
        quoted = _QUOTED.match(definition.strip())
        if not quoted:  # SYSTEM or PUBLIC: external entities are never fetched, and never wanted
            raise NotAFeed(f"refused: the document declares an external entity &{name}; (XXE)")
        value = quoted.group(2) if quoted.group(2) is not None else quoted.group(3)
        if ("&" in value or "%" in value) and not re.fullmatch(r"&#x?[0-9a-fA-F]+;", value):
            raise NotAFeed(f"{bomb}: &{name}; refers to other entities")
        if len(value) > MAX_ENTITY_CHARS:
            raise NotAFeed(f"{bomb}: &{name}; is {len(value)} characters long")
        expansion += body_text.count(f"&{name};") * len(value)
        if expansion > MAX_EXPANSION + 10 * len(body):
            raise NotAFeed(f"{bomb}: &{name}; and the others would expand to over {expansion // 1_000_000} MB")
