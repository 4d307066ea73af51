"""The 30-article sample issue (examples/issue-30.json) rendered with the example newsletter."""

from __future__ import annotations

import json

from digest.config import NewsletterConfig, load_newsletter
from digest.content.compose import content_from_document
from digest.email.render import Rendered, render_issue
from tests.conftest import EXAMPLE_CONFIG, ROOT

ISSUE_30 = ROOT / "examples/issue-30.json"
VIEW_URL = "https://news.example.org/issues/2026-w48"


def example_config(**changes) -> NewsletterConfig:
    config = load_newsletter(EXAMPLE_CONFIG)
    return config.model_copy(update=changes) if changes else config


def sample_content(config: NewsletterConfig | None = None) -> dict:
    return content_from_document(json.loads(ISSUE_30.read_text()), config or example_config(), source=ISSUE_30)


def render_sample(config: NewsletterConfig | None = None, content: dict | None = None) -> Rendered:
    config = config or example_config()
    content = content or sample_content(config)
    return render_issue(
        config,
        content,
        subject="The Meridian Review: a 30-article week",
        preheader=content["top"].get("teaser") or "",
        view_url=VIEW_URL,
        slug="2026-w48",
    )


def all_articles(content: dict) -> list[dict]:
    return [content["top"], *(a for s in content["sections"] for a in s["articles"])]
