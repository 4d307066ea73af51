"""An issue's subject line: the newsletter's template filled in, clipped on a word.

By default it is the top story's headline alone: the From name already says who the mail is from, and
an inbox shows about 78 characters of a subject before it cuts it wherever it likes.
"""

from __future__ import annotations

from typing import Any

from digest.config import SUBJECT_MAX_CHARS, NewsletterConfig

ELLIPSIS = "…"
# Left at the end of a clipped subject, these would read as a sentence cut mid-way.
_TRAILING = " ,;:.-–—(["


def clip(text: str, limit: int = SUBJECT_MAX_CHARS) -> str:
    """`text` on one line; when longer than `limit`, cut at the last space that fits and ended by "…"."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS) + 1]  # one more: a space just after the limit is a word's end
    space = cut.rfind(" ")
    # A single word longer than half the line (a URL, a long name) is cut where it must be.
    cut = cut[:space] if space > limit // 2 else cut[: limit - len(ELLIPSIS)]
    return cut.rstrip(_TRAILING) + ELLIPSIS


def subject_values(config: NewsletterConfig, content: dict[str, Any]) -> dict[str, Any]:
    top = content.get("top") or {}
    headline = top.get("title") or ""
    count = (1 if top else 0) + sum(len(s.get("articles") or []) for s in content.get("sections") or [])
    return {
        "top_headline": headline,
        "top_title": headline,
        "newsletter": config.name,
        "name": config.name,
        "date": content.get("date_display") or content.get("date") or "",
        "count": count,
    }


def subject_for(config: NewsletterConfig, content: dict[str, Any]) -> str:
    """The subject of an issue (or of a segment of it, whose top story may differ)."""
    # The template was checked when the file was read (digest.config.check_subject_template).
    subject = clip(config.issue.subject.format(**subject_values(config, content)))
    return subject or config.name
