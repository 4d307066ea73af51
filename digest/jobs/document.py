"""`digest render`: content given as a JSON document, rendered with the newsletter's templates, for template work."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from digest.config import load_newsletter
from digest.content.compose import content_from_document
from digest.content.subject import subject_for
from digest.email.links import Links
from digest.email.render import Rendered, render_issue
from digest.errors import UsageError
from digest.folder import folder_settings


@dataclass(frozen=True)
class RenderedDocument:
    rendered: Rendered
    articles: int  # the top story and every section's articles
    base_url: str
    first_name_fallback: str


def render_document(path: Path) -> RenderedDocument:
    """Content given as a JSON file, rendered with the newsletter's templates; the store is not used.
    The view link is the one the issue would have if it were stored under the file's name."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid JSON: {exc}") from None
    settings = folder_settings()
    config = load_newsletter(settings.config)
    content = content_from_document(doc, config, source=path)
    slug = path.stem
    rendered = render_issue(
        config,
        content,
        subject=doc.get("title") or subject_for(config, content),
        preheader=content["top"].get("teaser") or content["top"].get("dek") or "",
        view_url=Links(settings.base_url).issue_url(slug),
        slug=slug,
    )
    count = 1 + sum(len(s["articles"]) for s in content["sections"])
    return RenderedDocument(rendered, count, settings.base_url, config.issue.first_name_fallback)
