"""Render an issue once: Jinja2 fills MJML, mjml-python compiles it, premailer inlines the CSS.

The plain-text part comes from its own template over the same data. Per-recipient values stay as
placeholders (see `digest.placeholders`). A template error names the file and line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jinja2
from mjml import mjml2html
from premailer import Premailer

from digest import placeholders
from digest.config import NewsletterConfig
from digest.errors import TemplateError

PACKAGED_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

# cssutils reports every vendor-specific property it does not know at WARNING level.
logging.getLogger("CSSUTILS").setLevel(logging.CRITICAL)
import cssutils  # noqa: E402

cssutils.log.setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class Rendered:
    html: str
    text: str
    mjml: str


def template_dirs(config: NewsletterConfig) -> list[Path]:
    dirs = []
    if config.templates_dir:
        custom = config.templates_dir
        if not custom.is_absolute():
            custom = config.path.parent / custom
        dirs.append(custom)
    dirs.append(PACKAGED_TEMPLATES)
    return dirs


def environment(config: NewsletterConfig) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in template_dirs(config)]),
        autoescape=lambda name: not (name or "").endswith(".txt.j2"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def with_utm(url: str, campaign: str, source: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return url
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not k.startswith("utm_")]
    query += [("utm_source", source), ("utm_medium", "email"), ("utm_campaign", campaign)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def _prepare_card(card: dict, campaign: str, utm_source: str) -> dict:
    card = dict(card)
    card["link"] = with_utm(card["url"], campaign, utm_source)
    excerpt = card.get("excerpt") or card.get("teaser") or ""
    card["excerpt_paragraphs"] = [p.strip() for p in excerpt.split("\n\n") if p.strip()]
    for key in ("section", "dek", "author", "reading_minutes", "image", "teaser"):
        card.setdefault(key, None)
    card["section"] = card["section"] or ""
    return card


def context(config: NewsletterConfig, content: dict, *, subject: str, preheader: str, view_url: str, slug: str) -> dict:
    utm_source = "".join(ch for ch in config.name.lower().replace(" ", "-") if ch.isalnum() or ch == "-")
    top = content.get("top")
    return {
        "newsletter": config,
        "subject": subject,
        "preheader": preheader,
        "issue_date": content.get("date_display") or content.get("date", ""),
        "view_url": view_url,
        "ph": placeholders.TOKENS,
        "top": _prepare_card(top, slug, utm_source) if top else None,
        "sections": [
            {"name": s["name"], "articles": [_prepare_card(a, slug, utm_source) for a in s["articles"]]}
            for s in content.get("sections", [])
        ],
    }


def _render_template(env: jinja2.Environment, name: str, ctx: dict) -> str:
    try:
        return env.get_template(name).render(ctx)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{exc.filename or exc.name}:{exc.lineno}: {exc.message}") from None
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"template {exc.name!r} not found in {[str(d) for d in env.loader.searchpath]}") from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"{name}: {exc.message}{_template_line(exc)}") from None


def _template_line(exc: Exception) -> str:
    """Jinja2 rewrites tracebacks so the template's own frame carries its file name and line."""
    tb = exc.__traceback__
    where = ""
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            where = f" (at {filename}:{tb.tb_lineno})"
        tb = tb.tb_next
    return where


def compile_mjml(source: str) -> str:
    try:
        compiled = mjml2html(source, disable_comments=True, fonts={})
    except ValueError as exc:
        raise TemplateError(f"digest.mjml.j2: MJML did not compile: {exc}") from None
    if "<mj-" in compiled:
        raise TemplateError("digest.mjml.j2: an unknown mj- tag reached the HTML (check its spelling)")
    return compiled


def inline_css(html: str) -> str:
    inlined = Premailer(
        html,
        allow_network=False,
        keep_style_tags=True,
        strip_important=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
    ).transform()
    # premailer drops the doctype; mail clients need it for standards mode.
    if not inlined.lstrip().lower().startswith("<!doctype"):
        inlined = "<!doctype html>\n" + inlined
    return inlined


def render_issue(
    config: NewsletterConfig, content: dict, *, subject: str, preheader: str, view_url: str, slug: str
) -> Rendered:
    env = environment(config)
    ctx = context(config, content, subject=subject, preheader=preheader, view_url=view_url, slug=slug)
    mjml_source = _render_template(env, "email/digest.mjml.j2", ctx)
    html = inline_css(compile_mjml(mjml_source))
    text = _render_template(env, "email/digest.txt.j2", ctx)
    return Rendered(html=html, text=text, mjml=mjml_source)
