"""Per-recipient placeholders: the one token syntax of rendered issues.

An issue is rendered once; what differs per recipient goes in as `%%name%%` tokens, which SendGrid
substitutes (`substitutions`) and the outbox and SMTP providers fill in themselves. The syntax
survives Jinja2, MJML, premailer and HTML attribute serialization unchanged, and does not occur in
ordinary prose or URLs.

    %%unsubscribe_url%%   the recipient's signed one-click unsubscribe link
    %%preferences_url%%   the recipient's signed preferences link
    %%first_name%%        the recipient's first name, or `issue.first_name_fallback` ("there")

Templates write them as `{{ ph.unsubscribe_url }}`; previews fill sample values (`fill_preview`).
"""

from __future__ import annotations

import html
import re

NAMES = ("unsubscribe_url", "preferences_url", "first_name")
_PATTERN = re.compile(r"%%([a-z_]+)%%")


def token(name: str) -> str:
    return f"%%{name}%%"


TOKENS = {name: token(name) for name in NAMES}


def fill(text: str, values: dict[str, str], *, html_part: bool) -> str:
    """Replace every token; values are escaped for the HTML part. Unknown tokens raise KeyError."""

    def replace(match: re.Match) -> str:
        value = values[match[1]]
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
