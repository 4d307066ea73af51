"""Per-recipient placeholders: the one token syntax of rendered issues.

An issue is rendered once; what differs per recipient goes in as `%%name%%` tokens, which SendGrid
substitutes (`substitutions`) and the outbox and SMTP providers fill in themselves. The syntax
survives Jinja2, MJML, premailer and HTML attribute serialization unchanged, and does not occur in
ordinary prose or URLs.
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
