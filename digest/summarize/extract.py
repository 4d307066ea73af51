"""The main text of an article page: the one extraction path for gathering and `digest excerpt`.

Candidates, in the order the page's signals deserve trust:

1. ``trafilatura`` on the whole, unpruned page (it scores the page's structure, so nothing is
   removed before it looks), comments left out, its balanced settings: favor_precision lost more
   text than it saved and favor_recall took more boilerplate (bench/extraction.py).
2. ``json-ld``: schema.org ``articleBody`` of an Article (NewsArticle, BlogPosting...) with 80+
   words, the publisher's own copy of the text. It replaces the page extraction when that holds
   only part of it (a paywall shows two paragraphs), and bounds it when it holds all of it:
   paragraphs before and after the publisher's text go.
3. ``article``: trafilatura on the ``itemprop="articleBody"`` elements (together) or the largest
   ``<article>`` alone. It bounds a page extraction that reaches beyond it, as JSON-LD does, and is
   the text when the page extraction was rejected or too short.
4. ``blocks``: the paragraphs of the one element with the most prose, for pages the others miss.

A candidate that is only boilerplate (consent or cookie text, a copyright line, an ad label, a
list of related stories, the bare title: is_boilerplate) is rejected and the next one is tried;
furniture paragraphs inside a kept text go (is_furniture). Patterns are generic labels of site
furniture in the languages the digest meets, never phrases of one site. The winner keeps its
structure as HTML (paragraphs, headings, lists, quotes, tables, links). A lead paragraph the page
shows (its own description) but the extractor left out is returned apart from the body.

Decoding lives here too (decode_html): bytes are read with the charset the page declares, unless
they are valid UTF-8 beyond ASCII; an unlabelled page that is not UTF-8 is windows-1252.
"""

from __future__ import annotations

import codecs
import html
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import lxml.etree as etree
import lxml.html

log = logging.getLogger(__name__)

JSON_LD, TRAFILATURA, ARTICLE, BLOCKS, NONE = "json-ld", "trafilatura", "article", "blocks", "none"

_ARTICLE_TYPES = {
    "article",
    "newsarticle",
    "blogposting",
    "reportagenewsarticle",
    "analysisnewsarticle",
    "opinionnewsarticle",
    "backgroundnewsarticle",
    "reviewnewsarticle",
    "report",
    "scholarlyarticle",
    "techarticle",
    "socialmediaposting",
    "liveblogposting",
}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_WS = re.compile(r"[ \t\r\n\f\v\u00a0\u2009\u200a\u202f]+")
_META_CHARSET = re.compile(rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9_:.-]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_:.-]+)""")
# WHATWG Encoding: these labels mean windows-1252 in a browser, and pages are written for browsers.
_AS_WINDOWS_1252 = {"ascii", "us-ascii", "latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1", "cp819"}

# Fewer words than this is not an article's text on its own (a standfirst, a caption, a label).
MIN_WORDS = 25
# JSON-LD articleBody wins only when it has this many words and the page's extraction holds most
# of it: a truncated teaser body (paywalls) or a body of another article must not replace the page.
_JSON_LD_MIN_WORDS = 80
# An article element bounds a larger extraction only when it is long enough to be the article.
_MARKED_MIN_WORDS = 100


@dataclass(frozen=True)
class Extraction:
    """What a page's main text is, and how it was found."""

    title: str | None
    paragraphs: tuple[str, ...]  # the article's body
    html: str | None  # the body as HTML, to be sanitized by whoever stores or shows it
    method: str  # JSON_LD, TRAFILATURA, ARTICLE, BLOCKS or NONE
    author: str | None = None
    date: str | None = None
    description: str | None = None
    # The standfirst the page shows above the body when the extractor left it out; kept apart
    # because it repeats the page's description, which callers already show as the dek.
    lead: str | None = None
    rejected: tuple[str, ...] = field(default=())  # candidates left out as boilerplate

    @property
    def text(self) -> str:
        """The whole main text: the lead, then the body."""
        return "\n\n".join(((self.lead,) if self.lead else ()) + self.paragraphs)


# -- decoding ------------------------------------------------------------------------------------


def _codec(label: bytes | str | None) -> str | None:
    if not label:
        return None
    name = label.decode("ascii", "ignore") if isinstance(label, bytes) else label
    name = name.strip().lower()
    if name in _AS_WINDOWS_1252:
        return "cp1252"
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def declared_charset(body: bytes) -> str | None:
    """The charset a page names for itself: its byte order mark, XML declaration or <meta>."""
    for bom, name in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if body.startswith(bom):
            return name
    head = body[:8192]
    found = _XML_ENCODING.search(head) or _META_CHARSET.search(head)
    return _codec(found.group(1)) if found else None


def decode_html(body: bytes | str, charset: str | None = None) -> str:
    """A page's text. `charset` is the HTTP header's, when there was one; the page's own label
    comes next. Valid UTF-8 with non-ASCII bytes is UTF-8 whatever the label says (mislabelled
    pages are common, and other charsets almost never form valid UTF-8 by chance); an unlabelled
    page that is not UTF-8 is windows-1252, as browsers read it."""
    if isinstance(body, str):
        return body
    if body.startswith(codecs.BOM_UTF8):
        return body[3:].decode("utf-8", errors="replace")
    label = _codec(charset) or declared_charset(body)
    if label and label.startswith("utf-16"):
        return body.decode(label, errors="replace")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if label is None or not text.isascii():
            return text
    return body.decode(label or "cp1252", errors="replace")


# -- boilerplate ---------------------------------------------------------------------------------

# Words of site furniture, in the languages the digest meets most: generic labels, not phrases
# of any one site. Marks of ownership and pointers to other pages only ever label furniture; the
# other words also occur in prose ("declined to comment on the advertising deal"), so alone they
# count only in a label that is not a sentence.
_OWNERSHIP = re.compile(
    r"©|\(c\) ?\d{4}|(?<![\w-])(?:copyright|all rights reserved|alle rechte vorbehalten|"
    r"tous droits r[ée]serv|todos los derechos reservados|todos os direitos reservados|"
    r"wszelkie prawa zastrze|tutti i diritti riservati|skip ad)",
    re.IGNORECASE,
)
# A pointer to another page, at the start of a paragraph: "Read also: <a headline>?".
_POINTER = re.compile(
    r"^\W*(?:read more|read also|see also|related|lesen sie auch|mehr zum thema|lire aussi|"
    r"[àa] lire aussi|[àa] lire [ée]galement|leer m[áa]s|lea tambi[ée]n|leia tamb[ée]m|leia mais|"
    r"czytaj te[żz]|czytaj wi[ęe]cej|dowiedz si[ęe] wi[ęe]cej|leggi anche)\b"
    # or a field of the page's metadata: "Last modified: ...", "Category : ...", "Tags: ..."
    r"|^\W*(?:(?:last )?(?:modified|updated)|release date|published(?: on)?|posted(?: on| in)?|"
    r"category|categories|tags|filed under)\s*:",
    re.IGNORECASE,
)
_FURNITURE_WORDS = re.compile(
    r"(?<![\w-])(?:cookie|consent|gdpr|privacy (?:policy|notice|settings)|personal data|data protection|"
    r"datenschutz|einwilligung|confidentialit|donn[ée]es personnelles|privacidad|consentimiento|"
    r"privacidade|prywatno|"
    r"advertisement|advertising|sponsored|anzeige|werbung|publicit[ée]|publicidad|reklama|"
    r"subscribe|newsletter|sign up|log ?in|sign in|abonn|suscr[ií]b|assine|"
    r"(?:view|show|leave a|add a|post a) comments?|comments? \(\d+\)|"
    r"^related\b|related (?:articles|stories|posts|coverage|content|links|reading|topics|news)|"
    r"read more|read also|see also|you may also like|recommended (?:for you|articles|stories|reading)|"
    r"more stories|"
    r"lesen sie auch|mehr zum thema|weitere artikel|lire aussi|[àa] lire [ée]galement|"
    r"leer m[áa]s|lea tambi[ée]n|leia tamb[ée]m|leia mais|czytaj te[żz]|czytaj wi[ęe]cej|"
    r"dowiedz si[ęe] wi[ęe]cej|leggi anche)",
    re.IGNORECASE,
)
# A label is short; a paragraph this short with an ownership mark is a copyright line.
_LABEL_WORDS = 12


def _words(text: str) -> int:
    return len(text.split())


def is_furniture(paragraph: str) -> bool:
    """A paragraph of site furniture: a short copyright line, a short label that is not a
    sentence ("Advertisement", "Read more: ..."), or a paragraph dense with furniture words (a
    consent banner names cookies, consent and privacy in a few lines; prose about privacy does
    not repeat them that densely)."""
    words = _words(paragraph)
    owned = len(_OWNERSHIP.findall(paragraph)) + bool(_POINTER.match(paragraph))
    hits = owned + len(_FURNITURE_WORDS.findall(paragraph))
    if not hits:
        return False
    if words <= _LABEL_WORDS and (owned or not _ends_sentence(paragraph)):
        return True
    return hits >= max(2, words / 25)


def is_boilerplate(text: str | None, title: str | None = None) -> bool:
    """True when a text is nothing but site furniture: empty, the bare title, or made mostly of
    paragraphs about cookies and consent, copyright, ads, subscriptions and related links."""
    if not text or not text.strip():
        return True
    flat = _WS.sub(" ", text).strip()
    if title and _WS.sub(" ", title).strip().casefold() == flat.casefold():
        return True
    paragraphs = [p for p in re.split(r"\n\s*\n|\n", text) if p.strip()]
    total = sum(_words(p) for p in paragraphs)
    if total == 0:
        return True
    furniture = sum(_words(p) for p in paragraphs if is_furniture(p))
    if furniture >= 0.5 * total:
        return True
    # A short list of headlines (related stories): no paragraph ends like a sentence.
    return total < 4 * MIN_WORDS and not any(_ends_sentence(p) for p in paragraphs)


def _ends_sentence(paragraph: str) -> bool:
    return _words(paragraph) >= 6 and paragraph.rstrip(" \"'”’»)]")[-1:] in ".!?…:;"


# -- trafilatura's XML to paragraphs and HTML ----------------------------------------------------

_XML_BLOCKS = {"p", "head", "item", "list", "quote", "table", "row", "code", "div", "body", "doc", "main", "comments"}
_HI = {"#b": "b", "#i": "i", "#u": "u", "#t": "code", "#sub": "sub", "#sup": "sup"}


def _xml_paragraphs(root: etree._Element) -> list[str]:
    out: list[str] = []
    buf: list[str] = []

    def flush() -> None:
        text = _WS.sub(" ", "".join(buf)).strip()
        buf.clear()
        if text:
            out.append(text)

    def walk(el: etree._Element) -> None:
        tag = el.tag if isinstance(el.tag, str) else ""
        block = tag in _XML_BLOCKS
        if block:
            flush()
        if tag == "lb":
            buf.append(" ")
        elif tag == "cell" and el.getprevious() is not None:
            buf.append(" | ")
        if tag != "graphic" and el.text:
            buf.append(el.text)
        for child in el:
            walk(child)
        if block:
            flush()
        if el.tail:
            buf.append(el.tail)

    walk(root)
    flush()
    return out


def _xml_html(root: etree._Element) -> str:
    def attr(value: str | None) -> str:
        return html.escape(value or "", quote=True)

    def render(el: etree._Element) -> str:
        tag = el.tag if isinstance(el.tag, str) else ""
        inner = html.escape(el.text or "", quote=False) + "".join(render(c) for c in el)
        tail = html.escape(el.tail or "", quote=False)
        if tag == "p":
            out = f"<p>{inner}</p>"
        elif tag == "head":
            rend = el.get("rend") or "h2"
            level = rend if re.fullmatch(r"h[1-6]", rend) else "h2"
            out = f"<{level}>{inner}</{level}>"
        elif tag == "list":
            kind = "ol" if (el.get("rend") or "").lower() == "ol" else "ul"
            out = f"<{kind}>{inner}</{kind}>"
        elif tag == "item":
            out = f"<li>{inner}</li>"
        elif tag == "quote":
            out = f"<blockquote>{inner}</blockquote>"
        elif tag == "table":
            out = f"<table>{inner}</table>"
        elif tag == "row":
            out = f"<tr>{inner}</tr>"
        elif tag == "cell":
            cell = "th" if el.get("role") == "head" else "td"
            out = f"<{cell}>{inner}</{cell}>"
        elif tag == "code":
            out = f"<pre><code>{inner}</code></pre>"
        elif tag == "lb":
            out = "<br>"
        elif tag == "graphic":
            src = el.get("src")
            out = f'<img src="{attr(src)}" alt="{attr(el.get("alt"))}">' if src else ""
        elif tag == "hi":
            name = _HI.get(el.get("rend") or "", "")
            out = f"<{name}>{inner}</{name}>" if name else inner
        elif tag == "ref":
            target = el.get("target")
            out = f'<a href="{attr(target)}">{inner}</a>' if target else inner
        elif tag == "del":
            out = f"<del>{inner}</del>"
        else:
            out = inner
        return out + tail

    text = html.escape(root.text or "", quote=False)
    return (text + "".join(render(child) for child in root)).strip()


def _paragraphs_body(paragraphs: list[str]) -> etree._Element:
    body = etree.Element("body")
    for text in paragraphs:
        etree.SubElement(body, "p").text = text
    return body


_LEAVES = {"p", "head", "item", "code", "row", "quote"}


def _double_break(children: list[etree._Element], i: int) -> bool:
    """children[i] is a line break followed by another, with no text between them."""
    following = children[i + 1] if i + 1 < len(children) else None
    return (
        children[i].tag == "lb"
        and following is not None
        and following.tag == "lb"
        and not (children[i].tail or "").strip()
    )


def _split_double_breaks(body: etree._Element) -> None:
    """A paragraph broken by two line breaks in a row (<br><br>, how many pages make paragraphs)
    becomes paragraphs, so that the text and the HTML agree on where paragraphs end."""
    for paragraph in list(body.iter("p")):
        children = list(paragraph)
        parent = paragraph.getparent()
        if parent is None or not any(_double_break(children, i) for i in range(len(children))):
            continue
        pieces = [etree.Element("p")]
        pieces[0].text = paragraph.text
        for i, child in enumerate(children):
            piece = pieces[-1]
            if child.tag == "lb" and not len(piece) and not (piece.text or "").strip():
                piece.text = child.tail  # a break with nothing before it in its paragraph
                continue
            if _double_break(children, i):
                pieces.append(etree.Element("p"))
                continue
            piece.append(child)
        pieces[-1].tail = paragraph.tail
        at = parent.index(paragraph)
        parent.remove(paragraph)
        for offset, piece in enumerate(p for p in pieces if len(p) or (p.text or "").strip()):
            parent.insert(at + offset, piece)


def _leaf_blocks(body: etree._Element) -> list[etree._Element]:
    """The innermost blocks of an XML body in order: the units a paragraph filter keeps or drops."""
    return [
        el
        for el in body.iter(*_LEAVES)
        if not any(isinstance(d.tag, str) and d.tag in _LEAVES for d in el.iterdescendants())
    ]


def _remove(el: etree._Element) -> None:
    parent = el.getparent()
    if parent is None:
        return
    parent.remove(el)  # tails in trafilatura's XML are layout whitespace
    # A list, table or quote left without text goes too.
    while (
        parent is not None
        and parent.tag in ("list", "table", "quote", "row")
        and not "".join(parent.itertext()).strip()
    ):
        grand = parent.getparent()
        if grand is None:
            break
        grand.remove(parent)
        parent = grand


def _block_text(el: etree._Element) -> str:
    return _WS.sub(" ", "".join(el.itertext())).strip()


# -- candidates ----------------------------------------------------------------------------------


@dataclass
class _Candidate:
    method: str
    body: etree._Element  # trafilatura's XML: p, head, list/item, quote, table/row/cell, ref, lb
    title: str | None = None
    author: str | None = None
    date: str | None = None
    description: str | None = None

    @property
    def paragraphs(self) -> list[str]:
        return _xml_paragraphs(self.body)

    @property
    def text(self) -> str:
        return "\n\n".join(self.paragraphs)

    @property
    def words(self) -> int:
        return _words(" ".join(self.body.itertext()))

    def keep(self, blocks: list[bool]) -> None:
        """Keep the leaf blocks whose flag is True (flags in _leaf_blocks order)."""
        for el, kept in zip(_leaf_blocks(self.body), blocks, strict=True):
            if not kept:
                _remove(el)


def _trafilatura(tree: lxml.html.HtmlElement, url: str | None, *, metadata: bool) -> _Candidate | None:
    import trafilatura  # slow to import: only pages need it
    from trafilatura.settings import Document

    try:
        # Formatting is left out: trafilatura drops the space around <hi> ("entitled<hi>Code").
        document = trafilatura.bare_extraction(
            tree,
            url=url,
            with_metadata=metadata,
            include_comments=False,
            include_tables=True,
            include_images=False,
            include_formatting=False,
            include_links=True,
        )
    except Exception as exc:  # noqa: BLE001 - trafilatura raises assorted errors on odd pages
        log.info("trafilatura found no main text in %s: %s", url or "a page", exc)
        return None
    if not isinstance(document, Document) or document.body is None:
        return None
    _split_double_breaks(document.body)
    return _Candidate(
        TRAFILATURA,
        document.body,
        title=document.title,
        author=document.author,
        date=document.date,
        description=document.description,
    )


def json_ld_objects(tree: etree._Element) -> Iterator[dict[str, Any]]:
    """Every JSON object of the page's JSON-LD blocks, those in lists and @graph included."""
    for block in tree.xpath("//script[@type='application/ld+json']/text()"):
        try:
            data = json.loads(str(block))
        except ValueError:
            continue
        stack: list[Any] = [data]
        while stack:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(reversed(item))
            elif isinstance(item, dict):
                yield item
                graph = item.get("@graph")
                if isinstance(graph, list):
                    stack.extend(reversed(graph))


def _json_ld_body(tree: lxml.html.HtmlElement) -> _Candidate | None:
    """The longest articleBody of an Article (or a kind of one) in the page's JSON-LD."""
    best: _Candidate | None = None
    for obj in json_ld_objects(tree):
        kinds = obj.get("@type")
        names = {str(k).lower() for k in (kinds if isinstance(kinds, list) else [kinds])}
        body = obj.get("articleBody")
        if not (names & _ARTICLE_TYPES) or not isinstance(body, str):
            continue
        # Some publishers put HTML, or HTML-escaped text, in articleBody.
        body = html.unescape(body)
        if "<" in body and re.search(r"</?(?:p|br|div|h[1-6]|li)\b", body, re.IGNORECASE):
            body = re.sub(r"(?i)<br\s*/?>|</(?:p|div|h[1-6]|li)>", "\n\n", body)
            body = re.sub(r"<[^>]*>", "", body)
        paragraphs = [_WS.sub(" ", p).strip() for p in re.split(r"\n\s*\n|\n", body)]
        headline = obj.get("headline")
        candidate = _Candidate(
            JSON_LD,
            _paragraphs_body([p for p in paragraphs if p]),
            title=headline if isinstance(headline, str) else None,
        )
        if best is None or candidate.words > best.words:
            best = candidate
    return best


def _article_fragments(tree: lxml.html.HtmlElement) -> list[tuple[str, str]]:
    """The parts of the page the publisher marks as the article, as (HTML, text): all the
    itemprop=articleBody elements together (some pages split the body into several), then the
    <article> element with the most text."""
    groups: list[list[lxml.html.HtmlElement]] = []
    marked = [
        el
        for el in tree.xpath("//*[@itemprop='articleBody']")
        if not any(a.get("itemprop") == "articleBody" for a in el.iterancestors())
    ]
    if marked:
        groups.append(marked)
    articles: list[lxml.html.HtmlElement] = tree.xpath("//article")
    if articles:
        largest = max(articles, key=lambda el: _words(" ".join(el.itertext())))
        if not any(el in marked for el in [largest, *largest.iterancestors()]):
            groups.append([largest])
    return [
        (
            "".join(etree.tostring(el, encoding="unicode", method="html", with_tail=False) for el in group),
            " ".join(" ".join(el.itertext()) for el in group),
        )
        for group in groups
    ]


def _article(fragments: list[tuple[str, str]], url: str | None) -> Iterator[_Candidate]:
    """trafilatura on the publisher's article element alone, out of the rest of the page."""
    for fragment, _ in fragments:
        try:
            sub = lxml.html.document_fromstring(f"<html><body>{fragment}</body></html>")
        except (etree.ParserError, ValueError):
            continue
        found = _trafilatura(sub, url, metadata=False)
        if found is not None:
            found.method = ARTICLE
            yield found


_SKIP = {"script", "style", "noscript", "template", "nav", "footer", "form", "button", "select", "svg", "iframe"}
_PROSE_BLOCKS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "blockquote", "pre", "dd", "td"}


def _skipped(el: etree._Element) -> bool:
    return any(isinstance(a.tag, str) and a.tag in _SKIP for a in el.iterancestors())


def _blocks(tree: lxml.html.HtmlElement) -> _Candidate | None:
    """The paragraphs of the one element whose own prose paragraphs have the most words."""
    groups: dict[etree._Element, list[str]] = {}
    root = tree.find(".//body")
    for el in (root if root is not None else tree).iter(*_PROSE_BLOCKS):
        parent = el.getparent()
        text = _WS.sub(" ", "".join(el.itertext())).strip()
        if text and parent is not None and not _skipped(el):
            groups.setdefault(parent, []).append(text)
    if not groups:
        return None

    def prose(paragraphs: list[str]) -> int:
        return sum(_words(p) for p in paragraphs if _ends_sentence(p))

    return _Candidate(BLOCKS, _paragraphs_body(max(groups.values(), key=prose)))


# -- choosing --------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\w+")


def _shingles(text: str) -> set[tuple[str, ...]]:
    words = _TOKEN.findall(text.casefold())
    return {tuple(words[i : i + 4]) for i in range(max(len(words) - 3, 1))} if words else set()


def _coverage(part: str, whole: str) -> float:
    """The share of `part`'s four-word runs that `whole` has too: 1.0 when part is inside whole."""
    mine = _shingles(part)
    return len(mine & _shingles(whole)) / len(mine) if mine else 0.0


def _within(candidate: _Candidate, reference: str) -> None:
    """Leave out the candidate's leading and trailing blocks that share nothing with `reference`
    (what an extractor took beyond the publisher's own text)."""
    ref = _shingles(reference)
    shared = [bool(_shingles(_block_text(el)) & ref) for el in _leaf_blocks(candidate.body)]
    if any(shared):
        first, last = shared.index(True), len(shared) - 1 - shared[::-1].index(True)
        candidate.keep([first <= i <= last for i in range(len(shared))])


def _without_furniture(candidate: _Candidate) -> None:
    """Leave out furniture paragraphs (a consent line, an ad label, a copyright line, a "read
    more" link) that an extractor kept among the text."""
    keep = [not is_furniture(_block_text(el)) for el in _leaf_blocks(candidate.body)]
    if any(keep):
        candidate.keep(keep)


def _lead(candidate: _Candidate, tree: lxml.html.HtmlElement, description: str | None) -> str | None:
    """The lead paragraph when the page shows its description as a paragraph of its own and the
    extraction left it out (extractors often take it for part of the header)."""
    if not description or _words(description) < 8:
        return None
    lead = _WS.sub(" ", html.unescape(description)).strip()
    if _coverage(lead, candidate.text) >= 0.5:
        return None
    for el in tree.iter("p", "h2", "div", "span", "strong"):
        # Only an element whose own text starts like the lead is worth reading whole.
        own = _WS.sub(" ", el.text or "").strip()[:40]
        if own and lead.startswith(own) and _WS.sub(" ", "".join(el.itertext())).strip() == lead and not _skipped(el):
            return lead
    return None


def _visible_text(tree: lxml.html.HtmlElement) -> str:
    body = tree.find(".//body")
    if body is None:
        return ""
    return " ".join(
        text
        for el in body.iter()
        if isinstance(el.tag, str) and el.tag not in ("script", "style", "noscript", "template")
        for text in (el.text, *(c.tail for c in el))
        if text
    )


def _meta(tree: lxml.html.HtmlElement, *names: str) -> str | None:
    for name in names:
        for attr in ("property", "name"):
            found: list[str] = tree.xpath(f"//meta[@{attr}=$n]/@content", n=name)
            if found and found[0].strip():
                return found[0].strip()
    return None


def _page_title(tree: lxml.html.HtmlElement) -> str | None:
    title = _meta(tree, "og:title", "twitter:title")
    if title:
        return title
    el = tree.find(".//title")
    return (_WS.sub(" ", "".join(el.itertext())).strip() or None) if el is not None else None


def parse_html(page: bytes | str, charset: str | None = None) -> lxml.html.HtmlElement | None:
    """The page as an lxml tree, decoded as decode_html says; None when it is not HTML at all."""
    # lxml refuses str with an encoding declaration (the text is decoded already) and control
    # characters.
    text = _CONTROL.sub("", re.sub(r"^\s*<\?xml[^>]*\?>", "", decode_html(page, charset)))
    if not text.strip():
        return None
    try:
        return lxml.html.document_fromstring(text)
    except (etree.ParserError, ValueError):
        return None


def extract_article(
    page: bytes | str | lxml.html.HtmlElement,
    url: str | None = None,
    *,
    charset: str | None = None,
) -> Extraction:
    """The main text of a page (bytes are decoded here), with its title, author, date and
    description, and how it was found. Gathering and summaries make the same call, so a page's
    title and text are the same in both."""
    tree = page if isinstance(page, lxml.html.HtmlElement) else parse_html(page, charset)
    if tree is None:
        return Extraction(None, (), None, NONE)
    title = _page_title(tree)
    rejected: list[str] = []

    def usable(candidate: _Candidate | None) -> bool:
        if candidate is None or not candidate.words:
            return False
        if is_boilerplate(candidate.text, candidate.title or title):
            rejected.append(candidate.method)
            return False
        _without_furniture(candidate)
        return True

    whole = _trafilatura(tree, url, metadata=True)
    chosen = whole if usable(whole) else None
    ld = _json_ld_body(tree)
    if ld is not None and ld.words >= _JSON_LD_MIN_WORDS and usable(ld):
        # The publisher's own text: it replaces an extraction that holds only part of it, or
        # none of it while the page shows it (the extractor took another part of the page), and
        # bounds one that holds it all.
        held = _coverage(ld.text, chosen.text) if chosen is not None else 0.0
        if chosen is None or _coverage(chosen.text, ld.text) >= 0.8 > held:
            chosen = ld
        elif held >= 0.8:
            _within(chosen, ld.text)
        elif held < 0.2 and _coverage(ld.text, _visible_text(tree)) >= 0.8:
            chosen = ld
    fragments = _article_fragments(tree)
    found: list[_Candidate | None] = []

    def marked() -> _Candidate | None:
        """The first usable extraction of an article element; made once, and only when asked."""
        if not found:
            found.append(next((a for a in _article(fragments, url) if usable(a)), None))
        return found[0]

    if (
        chosen is not None
        and chosen.method == TRAFILATURA
        and any(_words(text) >= _MARKED_MIN_WORDS and _coverage(chosen.text, text) < 0.95 for _, text in fragments)
    ):
        # The extraction reaches beyond the article element: what it took around the element
        # (another story, a block of captions) goes.
        element = marked()
        if (
            element is not None
            and _MARKED_MIN_WORDS <= element.words < 0.9 * chosen.words
            and _coverage(element.text, chosen.text) >= 0.9
        ):
            _within(chosen, element.text)
    if chosen is None or chosen.words < MIN_WORDS:
        element = marked()
        if element is not None and (chosen is None or element.words > chosen.words):
            chosen = element
    if chosen is None or chosen.words < MIN_WORDS:
        dense = _blocks(tree)
        if dense is not None and usable(dense) and (chosen is None or dense.words > chosen.words):
            chosen = dense
    if chosen is None:
        return Extraction(title, (), None, NONE, rejected=tuple(rejected))
    meta = whole if whole is not None else chosen
    description = meta.description or _meta(tree, "og:description", "description")
    return Extraction(
        title=(whole.title if whole is not None else None) or chosen.title or title,
        paragraphs=tuple(chosen.paragraphs),
        html=_xml_html(chosen.body) or None,
        method=chosen.method,
        author=meta.author,
        date=meta.date,
        description=description,
        lead=_lead(chosen, tree, description),
        rejected=tuple(rejected),
    )
