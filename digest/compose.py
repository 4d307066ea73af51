"""Compose an issue: the week's articles in section order, a top story, and the subject line.

The composed content is a plain dict (the same shape `digest render ISSUE.json` accepts), stored on
the issue so that rendering, previews and the archive all read one thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.config import NewsletterConfig
from digest.errors import NothingToSend
from digest.models import Article, Issue
from digest.periods import Week


@dataclass(frozen=True)
class Composed:
    issue: Issue
    created: bool  # False when the period's issue already existed and was left as it was


def article_card(article: Article) -> dict:
    return {
        "id": article.id,
        "title": article.title,
        "url": article.url,
        "section": article.section,
        "dek": article.dek,
        "teaser": article.shown_teaser,
        "excerpt": article.shown_excerpt,
        "pull_quote": article.pull_quote,
        "pull_quote_speaker": article.pull_quote_speaker,
        "author": article.author,
        "published": article.published_at.isoformat(),
        "reading_minutes": article.reading_minutes,
        "image": (
            {"url": article.image_url, "alt": article.image_alt or article.title, "credit": article.image_credit}
            if article.image_url
            else None
        ),
    }


def compose_content(session: Session, config: NewsletterConfig, week: Week) -> dict:
    start, end = week.window(config.tz)
    articles = session.scalars(
        select(Article)
        .where(Article.published_at >= start, Article.published_at < end)
        .order_by(Article.published_at.desc(), Article.id.desc())
    ).all()
    if not articles:
        raise NothingToSend(f"no new articles in {week} ({start:%Y-%m-%d} to {end:%Y-%m-%d} UTC); no issue composed")
    by_section: dict[str, list[Article]] = {name: [] for name in config.sections}
    for article in articles:
        by_section.setdefault(article.section, []).append(article)
    # The top story is the newest article of the first section that has any.
    top = next(group[0] for group in by_section.values() if group)
    limit = config.issue.articles_per_section
    sections = []
    for name in config.sections:
        cards = [article_card(a) for a in by_section[name] if a.id != top.id][:limit]
        if cards:
            sections.append({"name": name, "articles": cards})
    # The issue is dated the Monday after its week, the day the weekly job sends it.
    issue_date = end.astimezone(config.tz).date()
    return {
        "title": config.name,
        "period": str(week),
        "date": issue_date.isoformat(),
        "date_display": f"{issue_date:%B} {issue_date.day}, {issue_date.year}",
        "intro": "",
        "top": article_card(top),
        "sections": sections,
    }


def subject_for(config: NewsletterConfig, content: dict) -> str:
    top_title = content["top"]["title"] if content.get("top") else ""
    return config.issue.subject.format(name=config.name, top_title=top_title, date=content["date"])


def compose_issue(session: Session, config: NewsletterConfig, week: Week, *, now: datetime) -> Composed:
    """Create or refresh the week's draft; an issue already sending or sent is left untouched."""
    issue = session.scalars(select(Issue).where(Issue.period == str(week))).first()
    if issue is not None and issue.status != "draft":
        return Composed(issue, created=False)
    content = compose_content(session, config, week)
    start, end = week.window(config.tz)
    values = dict(
        slug=week.slug,
        window_start=start,
        window_end=end,
        subject=subject_for(config, content),
        preheader=content["top"]["teaser"] if content["top"] else "",
        content=content,
        html=None,
        text=None,
        mjml=None,
        rendered_at=None,
    )
    if issue is None:
        issue = Issue(period=str(week), status="draft", created_at=now, **values)
        session.add(issue)
    else:
        for key, value in values.items():
            setattr(issue, key, value)
    session.flush()
    return Composed(issue, created=True)
