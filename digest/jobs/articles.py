"""An editor's view of the store's articles: the week's list and overrides of a summary.

Both show computed summaries, so both make the missing or stale ones of the articles they show, and
store them (digest.content.summaries).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from digest.content.compose import articles_in_window
from digest.content.summaries import ensure_summaries
from digest.content.weeks import Week, default_week
from digest.core import Digest
from digest.errors import UsageError
from digest.store.models import Article


def articles_in_week(core: Digest, week: Week | None = None) -> list[Article]:
    """The week's articles, every source's (not only the sections'), newest first, each with summaries
    of its current content. No week: the week of the issue built now."""
    start, end = (week or default_week(core.now(), core.config.tz)).window(core.config.tz)
    with core.sessions.begin() as session:
        articles = articles_in_window(session, start, end)
        ensure_summaries(articles, core.summary_limits)
        return articles


def edit_article(
    core: Digest, article_id: int, *, teaser: str | None = None, excerpt: str | None = None, reset: bool = False
) -> Article:
    """Store an editor's teaser or excerpt; gathering never overwrites these."""
    with core.sessions.begin() as session:
        article = session.get(Article, article_id)
        if article is None:
            raise UsageError(f"no article with id {article_id}; see `digest articles list`")
        ensure_summaries([article], core.summary_limits)  # what a --reset goes back to, and what is shown
        if reset:
            article.teaser_override = article.excerpt_override = None
        if teaser is not None:
            if not teaser.strip():
                raise UsageError("--teaser must not be empty (use --reset to drop an override)")
            article.teaser_override = teaser.strip()
        if excerpt is not None:
            if not excerpt.strip():
                raise UsageError("--excerpt must not be empty (use --reset to drop an override)")
            article.excerpt_override = excerpt.strip()
        article.updated_at = core.now()
        return article


@dataclass(frozen=True)
class ArticleLine:
    """An article of the week as an editor sees it: the teaser and excerpt readers get, overrides marked."""

    id: int
    published: datetime
    section: str
    title: str
    url: str
    teaser: str
    excerpt: str
    teaser_override: bool
    excerpt_override: bool


def week_articles(core: Digest, week: Week) -> list[ArticleLine]:

    return [
        ArticleLine(
            a.id,
            a.published_at,
            a.section,
            a.title,
            a.url,
            a.shown_teaser,
            a.shown_excerpt,
            a.teaser_override is not None,
            a.excerpt_override is not None,
        )
        for a in articles_in_week(core, week)
    ]
