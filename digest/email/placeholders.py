"""Per-recipient placeholders: the one token syntax of rendered issues, and ours alone.

An issue is rendered once; what differs per recipient goes in as `%%name%%` tokens, which SendGrid
substitutes (`substitutions`) and the outbox and SMTP providers fill in themselves. The syntax
survives Jinja2, MJML, premailer and HTML attribute serialization unchanged.

    %%unsubscribe_url%%   the recipient's signed one-click unsubscribe link
    %%preferences_url%%   the recipient's signed preferences link
    %%first_name%%        the recipient's first name, or `issue.first_name_fallback` ("there")

Templates write them as `{{ ph.unsubscribe_url }}`; previews fill sample values (`fill_preview`).

Only the templates may write a token. Every content string (feed titles, links, image URLs, page text,
editors' overrides, subject lines, subscribers' names) goes through `neutralize` before it reaches a
template or a provider, so that no `%%` is left in it, nor a `%` at either end that could meet another
one across a field boundary: text gets a zero-width space (U+200B) after each such `%` (the reader sees
the same characters), a URL gets each `%` that does not start a `%XX` escape percent-encoded as `%25`
(which is what it meant). SendGrid replaces its substitution keys anywhere in the body, so this is what
keeps a feed item from reaching a reader's signed link there too.
"""

from __future__ import annotations

import html
import re
from typing import TypeVar, cast

_Content = TypeVar("_Content")

NAMES = ("unsubscribe_url", "preferences_url", "first_name")
_PATTERN = re.compile(r"%%([a-z_]+)%%")
# U+200B ZERO WIDTH SPACE: invisible in text and HTML, and kept as it is by Jinja2, MJML and premailer.
BREAK = "\u200b"
_TEXT_PERCENT = re.compile(r"%(?=%)|%\Z")
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def token(name: str) -> str:
    return f"%%{name}%%"


TOKENS = {name: token(name) for name in NAMES}


def neutralize_text(text: str) -> str:
    """The same visible text with no `%%` in it and no `%` at either end."""
    if "%" not in text:
        return text
    text = _TEXT_PERCENT.sub("%" + BREAK, text)
    return BREAK + text if text.startswith("%") else text


def neutralize_url(url: str) -> str:
    """The same URL with every `%` that does not start a `%XX` escape written as `%25`."""
    return _STRAY_PERCENT.sub("%25", url) if "%" in url else url


def _is_url_key(key: object) -> bool:
    return isinstance(key, str) and (key == "url" or key.endswith("_url") or key in ("link", "href", "src"))


def neutralize(value: _Content, *, url: bool = False) -> _Content:
    """`value` (a string, or lists and dicts of them, as issue content is) with no token in any string.

    Strings under a key named `url`, `*_url`, `link`, `href` or `src` are treated as URLs."""
    return cast(_Content, _neutralized(value, url))  # the same shape, strings replaced


def _neutralized(value: object, url: bool) -> object:
    if isinstance(value, str):
        return neutralize_url(value) if url else neutralize_text(value)
    if isinstance(value, dict):
        return {k: _neutralized(v, _is_url_key(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_neutralized(v, url) for v in value)
    return value


def fill(text: str, values: dict[str, str], *, html_part: bool) -> str:
    """Replace the tokens named in `values`; values are escaped for the HTML part.

    Any other `%%name%%` is left as it is: only a template can have written one (content cannot), and
    a template's typo must not stop a send."""

    safe = neutralize(values)  # a subscriber's name is content too

    def replace(match: re.Match[str]) -> str:
        if match[1] not in safe:
            return str(match[0])
        value = safe[match[1]]
        return html.escape(value, quote=True) if html_part else value

    return _PATTERN.sub(replace, text)


def leftover(text: str) -> list[str]:
    """Tokens still present (a delivered message must have none)."""
    return _PATTERN.findall(text)


def preview_values(base_url: str, first_name: str) -> dict[str, str]:
    """Sample values for previews and drafts on disk: links that say what they stand for."""
    base = base_url.rstrip("/")
    return {
        "unsubscribe_url": f"{base}/unsubscribe/preview",
        "preferences_url": f"{base}/preferences/preview",
        "first_name": first_name,
    }


def fill_preview(text: str, base_url: str, first_name: str, *, html_part: bool) -> str:
    return fill(text, preview_values(base_url, first_name), html_part=html_part)
