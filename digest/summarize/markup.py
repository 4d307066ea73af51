"""HTML to paragraphs: feed content fragments through lxml, whole pages through extract_article.

In a fragment (a feed item's content, or a main text already extracted) elements that are never
prose (scripts, figures and their captions, navigation, share bars, lists of related links) are
removed before any text is taken, so their words cannot leak into a neighbouring paragraph. A
whole page is not pruned that way: some sites put the article inside such elements, and the
extractor needs the page's structure to find it.
"""

from __future__ import annotations

import re

import lxml.etree as etree
import lxml.html

from .extract import extract_article

_NEVER_PROSE = {
    "script",
    "style",
    "noscript",
    "template",
    "figure",
    "figcaption",
    "nav",
    "aside",
    "footer",
    "header",
    "form",
    "button",
    "input",
    "select",
    "textarea",
    "iframe",
    "svg",
    "canvas",
    "video",
    "audio",
    "object",
    "embed",
    "picture",
    "img",
    "map",
    "dialog",
    "menu",
}
_BLOCK = {
    "p",
    "div",
    "section",
    "article",
    "main",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "li",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "blockquote",
    "pre",
    "table",
    "tr",
    "td",
    "th",
    "hr",
    "address",
    "center",
    "body",
}
_CLUTTER_ATTR = re.compile(
    r"(?:^|[\s_-])(?:share|sharing|social|related|newsletter|subscribe|promo|caption|credit|"
    r"byline|advert|sponsor|sidebar|comments?|breadcrumbs?|author-bio|signup|"
    r"read-?more|recirc|outbrain|taboola)(?:$|[\s_-])",
    re.IGNORECASE,
)
_WS = re.compile(r"[ \t\r\f\v\u00a0\u2009\u200a\u202f]+")


def _drop(el: lxml.html.HtmlElement) -> None:
    # drop_tree keeps the element's tail text, which belongs to the parent.
    if el.getparent() is not None:
        el.drop_tree()


def _is_link_list(el: lxml.html.HtmlElement) -> bool:
    items = [li for li in el if isinstance(li.tag, str) and li.tag == "li"]
    if len(items) < 2:
        return False
    linked = sum(
        1
        for li in items
        if len("".join(a.text_content() for a in li.iter("a")).strip()) >= 0.8 * len(li.text_content().strip()) > 0
    )
    return linked >= 0.8 * len(items)


def _prune(root: lxml.html.HtmlElement) -> None:
    for el in list(root.iter(etree.Comment, etree.ProcessingInstruction)):
        _drop(el)
    for el in list(root.iter()):
        if not isinstance(el.tag, str):
            continue
        tag = el.tag.lower()
        attrs = " ".join(filter(None, (el.get("class"), el.get("id"), el.get("role"))))
        if (
            tag in _NEVER_PROSE
            or (attrs and _CLUTTER_ATTR.search(attrs) and tag not in ("body", "html", "main", "article"))
            or (tag in ("ul", "ol") and _is_link_list(el))
        ):
            _drop(el)


def _paragraphs(root: lxml.html.HtmlElement) -> list[str]:
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        tag = el.tag.lower()
        if tag in _BLOCK:
            el.text = "\n\n" + (el.text or "")
            el.tail = "\n\n" + (el.tail or "")
        elif tag == "br":
            el.tail = " " + (el.tail or "")
    text = root.text_content()
    out = []
    for chunk in re.split(r"\n\s*\n", text):
        chunk = _WS.sub(" ", chunk.replace("\n", " ")).strip()
        if chunk:
            out.append(chunk)
    return out


def _parse(html: str) -> lxml.html.HtmlElement | None:
    try:
        doc = lxml.html.document_fromstring(html)
    except (etree.ParserError, ValueError):
        return None
    return doc


def fragment_paragraphs(html: str) -> tuple[str | None, list[str]]:
    """Paragraphs of an article body fragment, and its <h1> as a title if it has one."""
    if not html or not html.strip():
        return None, []
    doc = _parse(html)
    if doc is None:
        return None, []
    _prune(doc)
    h1 = next(iter(doc.iter("h1")), None)
    title = (_WS.sub(" ", h1.text_content()).strip() or None) if h1 is not None else None
    return title, _paragraphs(doc)


def page_paragraphs(page: str | bytes) -> tuple[str | None, list[str]]:
    """Title and main-text paragraphs of a whole page. extract_article finds the main text (bytes
    are decoded there, with the page's charset); its HTML then goes the way a gathered page's
    stored HTML goes (fragment_paragraphs), so that `digest excerpt` on a page and the summary of
    the same page gathered read the same paragraphs."""
    if not page or not page.strip():
        return None, []
    found = extract_article(page)
    _, paragraphs = fragment_paragraphs(found.html or "")
    return found.title, paragraphs
