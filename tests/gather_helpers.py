"""Shared pieces of the gathering tests: a newsletter built around given sources, and feed bodies."""

from __future__ import annotations

from digest.config import GatherConfig, NewsletterConfig, Settings, SourceConfig
from digest.core import build_core

SECTIONS = ["Reporting", "Analysis", "Opinion"]


def newsletter(sources: list[tuple[str, str]] | list[SourceConfig], **gather) -> NewsletterConfig:
    configs = [s if isinstance(s, SourceConfig) else SourceConfig(name=s[0], url=s[1], section="Reporting")
               for s in sources]  # fmt: skip
    return NewsletterConfig(
        name="Test Review",
        from_email="weekly@example.org",
        postal_address="1 Test Street, Testville",
        sections=SECTIONS,
        sources=configs,
        gather=GatherConfig(**gather),
    )


def core_for(settings: Settings, config: NewsletterConfig):
    return build_core(settings, config)


def rss(items: list[dict], *, title: str = "Test feed", extra_ns: str = "") -> bytes:
    """An RSS 2.0 document; each item dict may have title, link, guid, date, description, content, extra."""
    parts = []
    for item in items:
        parts.append(
            "<item>"
            + (f"<title>{item['title']}</title>" if "title" in item else "")
            + (f"<link>{item['link']}</link>" if "link" in item else "")
            + (f'<guid isPermaLink="false">{item["guid"]}</guid>' if "guid" in item else "")
            + (f"<pubDate>{item['date']}</pubDate>" if "date" in item else "")
            + (f"<description>{item['description']}</description>" if "description" in item else "")
            + (f"<content:encoded><![CDATA[{item['content']}]]></content:encoded>" if "content" in item else "")
            + item.get("extra", "")
            + "</item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        f'xmlns:media="http://search.yahoo.com/mrss/" xmlns:dc="http://purl.org/dc/elements/1.1/" {extra_ns}>'
        f"<channel><title>{title}</title><link>https://news.example.org/</link><description>d</description>"
        + "".join(parts)
        + "</channel></rss>"
    ).encode("utf-8")


LONG_BODY = "".join(
    f"<p>Paragraph {n} of the article says something about the talks, the ministers and the trade route, "
    "and the delegates who met for a second day to agree on the text of the communique.</p>"
    for n in range(8)
)
