"""Render an issue once: Jinja2 fills MJML, mjml-python compiles it, premailer inlines the CSS.

The plain-text part comes from its own template over the same data. Per-recipient values stay as
placeholders (see `digest.email.placeholders`). A template error names the file and line.

Size: Gmail clips messages over 102 KB (`GMAIL_CLIP_BYTES`), so premailer inlines only the rules of the templates'
`<mj-style inline="inline">` blocks (as the official MJML does); every other `<style>` (MJML's own
resets, media queries, dark mode) is marked `data-premailer="ignore"` and stays in <head> only.
Left alone, premailer would copy MJML's reset rules onto every table and cell. premailer runs through
`digest.email.inliner`, which gives its output with the work that is the same at every render done once.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jinja2
from mjml import mjml2html

from digest.config import NewsletterConfig
from digest.content.compose import Content
from digest.email import placeholders
from digest.email.inliner import Inliner
from digest.email.templates import template_environment
from digest.errors import TemplateError
from digest.locale import language

MJML_TEMPLATE = "email/digest.mjml.j2"
TEXT_TEMPLATE = "email/digest.txt.j2"
# Gmail clips a message whose HTML is over 102 KB; an issue should stay at or under this.
GMAIL_CLIP_KB = 102
GMAIL_CLIP_BYTES = GMAIL_CLIP_KB * 1024
# Inboxes show up to about this many characters of subject and preheader; a shorter preheader is padded
# with blank (&zwnj;&nbsp;) pairs up to it, and a longer one gets a few, so that no client fills the rest
# of its preview with the body's first words.
PREHEADER_CHARS = 200
PREHEADER_MIN_PADDING = 12
# The body is 600px wide with 24px of padding each side: images are laid out at this width.
CONTENT_WIDTH = 552
# A compact row's photo: small beside its headline and teaser.
THUMB_WIDTH = 96

# cssutils reports every vendor-specific property it does not know at WARNING level.
logging.getLogger("CSSUTILS").setLevel(logging.CRITICAL)
import cssutils  # noqa: E402

cssutils.log.setLevel(logging.CRITICAL)
log = logging.getLogger(__name__)

_INLINE_MJ_STYLE = re.compile(r"<mj-style\b[^>]*\binline=[\"']inline[\"'][^>]*>(.*?)</mj-style>", re.S | re.I)
_STYLE = re.compile(r"<style\b([^>]*)>(.*?)</style>", re.S | re.I)
_COMMENT = re.compile(r"(<!--.*?-->)", re.S)


# What the templates are given (the issue's content, made safe, and the newsletter's settings).
Context = dict[str, Any]


@dataclass(frozen=True)
class Rendered:
    html: str
    text: str
    mjml: str


def environment(config: NewsletterConfig) -> jinja2.Environment:
    """The e-mail templates: the newsletter's templates_dir first, then the packaged ones (templates/)."""
    dirs = config.template_dirs()
    for folder in dirs[:-1]:
        if not folder.is_dir():
            raise TemplateError(
                f"{config.path}: templates_dir {str(folder)!r} is not a folder; create it or fix the path"
            )
    return template_environment(dirs, config.language)


# --- links --------------------------------------------------------------------------------------


def utm_source(config: NewsletterConfig) -> str:
    return config.email.utm_source or config.slug


def with_utm(url: str, campaign: str, source: str, medium: str = "email") -> str:
    """The URL with utm_source, utm_medium and utm_campaign set (any earlier utm_* replaced)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return url
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not k.startswith("utm_")]
    query += [("utm_source", source), ("utm_medium", medium), ("utm_campaign", campaign)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


# --- the template context -----------------------------------------------------------------------


def _image(image: dict[str, Any] | None, title: str) -> dict[str, Any] | None:
    if not image or not image.get("url"):
        return None
    width, height = image.get("width"), image.get("height")
    shown_width, shown_height, thumb_height = CONTENT_WIDTH, None, None
    if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
        shown_width = min(width, CONTENT_WIDTH)  # never scale a small image up
        shown_height = round(shown_width * height / width)
        thumb_height = round(THUMB_WIDTH * height / width)
    return {
        "url": image["url"],
        "alt": (image.get("alt") or "").strip() or title,
        "credit": image.get("credit") or None,
        "width": shown_width,
        "height": shown_height,
        "thumb_width": THUMB_WIDTH,
        "thumb_height": thumb_height,
    }


def _card(card: dict[str, Any], link: Callable[[str], str]) -> dict[str, Any]:
    dek, teaser, excerpt = (card.get(k) or "" for k in ("dek", "teaser", "excerpt"))
    # The line under the headline is the card's teaser (an editor's override, else the summary's
    # teaser, which is the publisher's dek when that reads on its own: digest.content.summaries);
    # the dek only when there is no teaser. So what an editor writes is what readers get.
    standfirst = teaser or dek
    # The excerpt usually opens with the lede the teaser is: a card does not say it twice.
    if standfirst and excerpt.startswith(standfirst):
        excerpt = excerpt[len(standfirst) :].strip()
    return {
        "title": card["title"],
        "url": card["url"],
        "link": link(card["url"]),
        "section": card.get("section") or "",
        "standfirst": standfirst,
        "dek": dek,
        "teaser": teaser,
        "excerpt_paragraphs": [p.strip() for p in excerpt.split("\n\n") if p.strip()],
        "pull_quote": card.get("pull_quote") or None,
        "pull_quote_speaker": card.get("pull_quote_speaker") or None,
        "author": card.get("author") or None,
        "reading_minutes": card.get("reading_minutes") or None,
        "image": _image(card.get("image"), card["title"]),
    }


def _issue_date(config: NewsletterConfig, content: Content) -> str:
    """The issue's date in the newsletter's language (content made before it had one says it in English)."""
    try:
        return language(config.language).day(date.fromisoformat(str(content.get("date") or "")))
    except ValueError:
        return str(content.get("date_display") or content.get("date") or "")


def context(
    config: NewsletterConfig, content: Content, *, subject: str, preheader: str, view_url: str, slug: str
) -> Context:
    source = utm_source(config)

    def link(url: str) -> str:
        made = with_utm(url, slug, source, config.email.utm_medium) if config.email.utm else url
        return placeholders.neutralize_url(made)

    # Content is hostile: none of it may carry a placeholder that a provider would fill.
    content = placeholders.neutralize(content)
    top = _card(content["top"], link) if content.get("top") else None
    # Each section as its layout shows it (config.layout_of); a section the newsletter file does not
    # list (content given as JSON) has the default layout.
    sections = [
        {"name": s["name"], "layout": config.layout_of(s["name"]), "articles": [_card(a, link) for a in s["articles"]]}
        for s in content.get("sections", [])
        if s.get("articles")
    ]
    # The text part's numbered references: [1] is the top story, then the sections' articles in order.
    cards = ([top] if top else []) + [card for s in sections for card in s["articles"]]
    for number, card in enumerate(cards, start=1):
        card["ref"] = number
    return {
        "newsletter": config,
        "social": config.email.social,
        "subject": placeholders.neutralize_text(subject),
        "preheader": placeholders.neutralize_text(preheader),
        "preheader_padding": max(PREHEADER_MIN_PADDING, PREHEADER_CHARS - len(preheader)),
        "issue_date": _issue_date(config, content),
        "intro": content.get("intro") or "",
        "view_url": view_url,
        "ph": placeholders.TOKENS,
        "top": top,
        "sections": sections,
    }


# --- the stages ---------------------------------------------------------------------------------


def _render_template(env: jinja2.Environment, name: str, ctx: Context) -> str:
    try:
        return env.get_template(name).render(ctx)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{exc.filename or exc.name}:{exc.lineno}: {exc.message}") from None
    except jinja2.TemplateNotFound as exc:
        searched = env.loader.searchpath if isinstance(env.loader, jinja2.FileSystemLoader) else []
        raise TemplateError(f"template {exc.name!r} not found in {[str(d) for d in searched]}") from None
    except jinja2.TemplateError as exc:  # UndefinedError and the rest: the failing template's frame says where
        raise TemplateError(f"{_template_line(exc) or name}: {exc.message}") from None


def _template_line(exc: Exception) -> str:
    """Jinja2 rewrites tracebacks so that a template's own frame carries its file name and line."""
    tb, where = exc.__traceback__, ""
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            where = f"{filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where


def render_mjml(env: jinja2.Environment, ctx: Context) -> str:
    return _render_template(env, MJML_TEMPLATE, ctx)


def render_text(env: jinja2.Environment, ctx: Context) -> str:
    return _render_template(env, TEXT_TEMPLATE, ctx)


def compile_mjml(source: str, *, template: str = MJML_TEMPLATE, fonts: dict[str, str] | None = None) -> str:
    try:
        compiled = mjml2html(source, disable_comments=True, fonts=dict(fonts or {}))
    except ValueError as exc:
        raise TemplateError(f"{template}: MJML did not compile: {exc}") from None
    leftover = re.search(r"<mj-[a-z-]+", compiled)
    if leftover:
        raise TemplateError(
            f"{template}: {leftover[0]}> reached the HTML: mjml-python passes unknown tags through; check its spelling"
        )
    return compiled


def inline_styles(mjml_source: str) -> list[str]:
    """The CSS of the template's `<mj-style inline="inline">` blocks, as mjml-python copies it out."""
    return [block.strip() for block in _INLINE_MJ_STYLE.findall(mjml_source)]


def _mark_ignored(html: str, inline: list[str]) -> str:
    keep = set(inline)

    def mark(match: re.Match[str]) -> str:
        attrs, css = match[1], match[2]
        if css.strip() in keep or "data-premailer" in attrs:
            return str(match[0])
        return f'<style{attrs} data-premailer="ignore">{css}</style>'

    # Styles inside conditional comments (Outlook's) are not elements; leave them as they are.
    parts = _COMMENT.split(html)
    return "".join(part if part.startswith("<!--") else _STYLE.sub(mark, part) for part in parts)


def inline_css(html: str, inline: list[str] | None = None) -> str:
    """premailer over the compiled HTML, inlining only the `inline` CSS blocks found in it."""
    inlined: str = Inliner(
        _mark_ignored(html, inline or []),
        allow_network=False,
        keep_style_tags=True,
        strip_important=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
        # On by default, it parses every image's style with cssutils to copy a float into `align`: two
        # thirds of premailer's time on an issue, for a float no template sets.
        align_floating_images=False,
    ).transform()
    # premailer skips a <style media="..."> before it reads (and removes) the marker.
    inlined = inlined.replace(' data-premailer="ignore"', "")
    # premailer drops the doctype; mail clients need it for standards mode.
    # Its first characters only: lowering the whole page for this cost as much as a tenth of the inlining.
    if inlined.lstrip()[:9].lower() != "<!doctype":
        inlined = "<!doctype html>\n" + inlined
    return inlined


def render_context(config: NewsletterConfig, ctx: Context) -> Rendered:
    env = environment(config)
    mjml_source = render_mjml(env, ctx)
    template = env.get_template(MJML_TEMPLATE).filename or MJML_TEMPLATE
    compiled = compile_mjml(mjml_source, template=template, fonts=config.email.fonts)
    html = inline_css(compiled, inline_styles(mjml_source))
    if len(html.encode()) > GMAIL_CLIP_BYTES:
        log.warning(
            "the issue's HTML is %d bytes, over %d: Gmail will clip it; show fewer articles per section",
            len(html.encode()),
            GMAIL_CLIP_BYTES,
        )
    return Rendered(html=html, text=render_text(env, ctx), mjml=mjml_source)


def render_issue(
    config: NewsletterConfig, content: Content, *, subject: str, preheader: str, view_url: str, slug: str
) -> Rendered:
    ctx = context(config, content, subject=subject, preheader=preheader, view_url=view_url, slug=slug)
    return render_context(config, ctx)
