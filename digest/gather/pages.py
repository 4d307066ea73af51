"""An article page: its main text (digest.summarize.extract, the one extraction path) and metadata.

Used for sources that are a single article page, and for the full text of feed items that carry only
a short summary. The page's rel=canonical names the article; og:image or the first figure gives its
image, with the figure's caption and photo credit where the page has them, and its size where
og:image:width and og:image:height, the figure's <img> or the page's JSON-LD give one.
"""

from __future__ import annotations

import logging
import re

from lxml import etree

from digest.gather.normalize import (
    MAX_AUTHOR,
    Image,
    ParsedArticle,
    clip,
    image_size,
    parse_time,
    plain_text,
    safe_canonical_url,
    sanitize_html,
)
from digest.summarize.extract import extract_article, json_ld_objects, parse_html

log = logging.getLogger(__name__)

_CREDIT = re.compile(
    r"(?:^|[.;|]\s*|\s[-–—]\s*|\(|\s(?=©))\s*((?:top\s+)?(?:photo(?:graph)?|image|picture|illustration)?\s*"
    r"(?:credit|by|courtesy(?: of)?)?\s*:\s*[^.;|()]+?|©\s*[^.;|()]+?)\s*\)?\s*$",
    re.IGNORECASE,
)
_ARTICLE_TYPES = {"article", "newsarticle", "blogposting", "reportagenewsarticle", "analysisnewsarticle"}


def _text(element: etree._Element | None) -> str:
    # As all text made from markup (plain_text): "m<sup>2</sup>" stays one word, script text goes.
    if element is None:
        return ""
    return plain_text(etree.tostring(element, encoding="unicode", method="html", with_tail=False))


def _meta(tree: etree._Element, *names: str) -> str | None:
    for name in names:
        for attr in ("property", "name", "itemprop"):
            found: list[str] = tree.xpath(f"//meta[@{attr}=$n]/@content", n=name)
            if found and found[0].strip():
                return found[0].strip()
    return None


def looks_like_article(tree: etree._Element) -> bool:
    """A page about one article (og:type, schema.org type or an <article> element), not a homepage."""
    og_type = (_meta(tree, "og:type") or "").lower()
    if og_type == "article":
        return True
    for block in tree.xpath("//script[@type='application/ld+json']/text()"):
        types = re.findall(r'"@type"\s*:\s*"([^"]+)"', block)
        if any(t.lower() in _ARTICLE_TYPES for t in types):
            return True
    return len(tree.xpath("//article")) == 1 and bool(_meta(tree, "article:published_time", "author"))


def split_credit(caption: str) -> tuple[str | None, str | None]:
    """'A ship at dawn. Photo: Ana Ruiz / Agency' -> ('A ship at dawn.', 'Ana Ruiz / Agency')."""
    caption = " ".join(caption.split())
    match = _CREDIT.search(caption)
    if not match:
        return caption or None, None
    credit = match.group(1)
    credit = re.sub(r"^(?:top\s+)?[\w ]*?(?:credit|by|courtesy(?: of)?)?\s*:\s*", "", credit, flags=re.IGNORECASE)
    credit = credit.lstrip("© ").strip()
    rest = caption[: match.start()].strip(" -–—(") or None
    if rest and not rest.endswith((".", "!", "?")) and match.group(0).lstrip().startswith((".",)):
        rest += "."
    return rest, credit or None


def _figure_image(tree: etree._Element, base: str) -> Image | None:
    figures: list[etree._Element] = tree.xpath("//figure[.//img]")
    for figure in figures:
        img: etree._Element = figure.xpath(".//img")[0]
        src = safe_canonical_url(img.get("src") or img.get("data-src"), base)
        if not src:
            continue
        caption_el = figure.find(".//figcaption")
        credit_el: list[etree._Element] = figure.xpath(".//*[contains(@class,'credit') or contains(@class,'byline')]")
        credit = _text(credit_el[0]) if credit_el else None
        caption_text = _text(caption_el)
        caption: str | None
        if credit:
            caption = caption_text.replace(credit, "").strip()
            _, credit_clean = split_credit(credit)
            credit = credit_clean or credit
        else:
            caption, credit = split_credit(caption_text)
        size = image_size(img.get("width"), img.get("height"))
        return Image(src, clip(img.get("alt"), 2000), clip(credit, 500), clip(caption, 2000)).with_size(size)
    return None


def _json_ld_image_sizes(tree: etree._Element, base: str) -> dict[str, tuple[int, int]]:
    """The sizes JSON-LD gives its images (an ImageObject's width and height), by canonical URL."""
    sizes: dict[str, tuple[int, int]] = {}
    for obj in json_ld_objects(tree):
        images = obj.get("image")
        for image in [obj, *(images if isinstance(images, list) else [images])]:
            if not isinstance(image, dict):
                continue
            url = image.get("url") or image.get("contentUrl")
            src = safe_canonical_url(url, base) if isinstance(url, str) else None
            size = image_size(_quantity(image.get("width")), _quantity(image.get("height")))
            if src and size:
                sizes.setdefault(src, size)
    return sizes


def _quantity(value: object) -> object:
    # schema.org allows a QuantitativeValue ({"@type": "QuantitativeValue", "value": 1200}) for a length.
    return value.get("value") if isinstance(value, dict) else value


def page_image(tree: etree._Element, base: str) -> Image | None:
    """og:image (its size from og:image:width and og:image:height) or the first figure (its <img>'s
    width and height), either sized from JSON-LD where the page's own tags do not say."""
    figure = _figure_image(tree, base)
    og = safe_canonical_url(_meta(tree, "og:image", "og:image:url", "twitter:image"), base)
    image = figure
    if og:
        alt = _meta(tree, "og:image:alt", "twitter:image:alt")
        og_size = image_size(_meta(tree, "og:image:width"), _meta(tree, "og:image:height"))
        if figure and figure.url == og:
            image = Image(og, alt or figure.alt, figure.credit, figure.caption).with_size(og_size or figure.size)
        else:
            image = Image(og, clip(alt, 2000), None, None).with_size(og_size)
    if image is not None and image.size is None:
        image = image.with_size(_json_ld_image_sizes(tree, base).get(image.url))
    return image


def parse_page(body: bytes | str, url: str) -> tuple[str | None, ParsedArticle | None]:
    """(canonical URL, the article) of a page; the article is None when no main text is found."""
    tree = parse_html(body)
    if tree is None:
        return None, None
    canonical = safe_canonical_url((tree.xpath("//link[@rel='canonical']/@href") or [None])[0], url)
    found = extract_article(tree, url)
    if not found.paragraphs:
        log.info("no main text in %s", url)
        return canonical, None
    article_url = canonical or safe_canonical_url(_meta(tree, "og:url"), url) or safe_canonical_url(url)
    if not article_url:
        return canonical, None
    published = parse_time(_meta(tree, "article:published_time", "datePublished", "pubdate", "date"))
    if published is None:
        published = parse_time(found.date)
    keywords = [t for t in tree.xpath("//meta[@property='article:tag']/@content") if t.strip()]
    section = _meta(tree, "article:section")
    article = ParsedArticle(
        title=clip(found.title or _meta(tree, "og:title") or "", 2000) or article_url,
        url=article_url,
        guid=None,
        published=published,
        author=clip(found.author, MAX_AUTHOR),
        summary=clip(found.description or _meta(tree, "description", "og:description"), 5000),
        content_html=sanitize_html(found.html),
        image=page_image(tree, url),
        categories=([section] if section else []) + keywords,
    )
    return canonical, article
