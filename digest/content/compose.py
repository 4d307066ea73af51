"""Compose an issue: its window, the articles in section order, a top story, and the subject line.

The window: `--week 2026-W48` takes that ISO week (Monday 00:00 to Monday 00:00 in the newsletter's
timezone), so any past week can be rebuilt and the demo works in any year. Without a week, which is
how the weekly job runs, the issue holds what was published since the end of the last sent issue's
window (the last `issue.window_days` days when none was sent, or always with `issue.window = "days"`),
up to now. Such an issue is filed under the ISO week of the day before it is built: the weekly job
runs on Monday morning, so Monday's issue is the past week's, as with `--week`. Running again the same
day finds that issue and, once it is sent, sends nothing twice.

The composed content is a plain dict (the shape `digest render ISSUE.json` accepts, plus `top`),
stored on the issue so that rendering, previews and the archive all read one thing. The articles are
chosen by section and recency alone (`choose_articles`); then exactly those chosen get their summaries
made, if missing or older than their content (digest.content.summaries), written with the caller's
session. Before a draft is composed, the use case fetches the pages of the articles it will hold
(`draft_articles_to_compose`, digest.jobs.pages), so that their summaries are made from the pages.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, TypeVarTuple

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from digest.config import NewsletterConfig
from digest.content.subject import subject_for
from digest.content.summaries import ensure_summaries, summary_limits
from digest.content.weeks import Week, default_week
from digest.errors import NothingToSend, UsageError
from digest.gather.normalize import MAX_IMAGE_SIDE, image_size
from digest.locale import language
from digest.store.models import Article, Issue

# An issue's content: the JSON document stored on the issue (and given to `digest render`).
Content = dict[str, Any]
Ts = TypeVarTuple("Ts")


@dataclass(frozen=True)
class Window:
    """What an issue holds: the articles published in [start, end), filed under `week`."""

    week: Week
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive

    @classmethod
    def of_week(cls, week: Week, tz: tzinfo) -> Window:
        return cls(week, *week.window(tz))


@dataclass(frozen=True)
class Composed:
    issue: Issue
    created: bool  # False when the week's issue was already sending or sent and was left as it was


def issue_window(session: Session, config: NewsletterConfig, week: Week | None, *, now: datetime) -> Window:
    if week is not None:
        return Window.of_week(week, config.tz)
    start = now - timedelta(days=config.issue.window_days)
    if config.issue.window == "since_last_sent":
        last = session.scalars(
            select(Issue).where(Issue.status.in_(("sending", "sent"))).order_by(Issue.window_end.desc()).limit(1)
        ).first()
        if last is not None:
            start = last.window_end
    return Window(default_week(now, config.tz), start, now)


def articles_in_window(
    session: Session, start: datetime, end: datetime, *, sections: Collection[str] | None = None
) -> list[Article]:
    """The articles published in [start, end), newest first; with `sections`, only those sections' articles.

    The one query of a window's articles (`_in_window`, which draft_article_ids shares): an issue's
    content takes its sections only (`sections`), an editor's list of the week takes every article."""
    return list(session.scalars(_in_window(select(Article), start, end, sections)))


def _in_window(query: Select[*Ts], start: datetime, end: datetime, sections: Collection[str] | None) -> Select[*Ts]:
    query = query.where(Article.published_at >= start, Article.published_at < end)
    if sections is not None:
        query = query.where(Article.section.in_(sections))
    return query.order_by(Article.published_at.desc(), Article.id.desc())


def article_card(article: Article) -> dict[str, Any]:
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
        "image": _image_card(article),
    }


def _image_card(article: Article) -> dict[str, Any] | None:
    if not article.image_url:
        return None
    image: dict[str, Any] = {"url": article.image_url, "alt": article.image_alt or article.title}
    image["credit"] = article.image_credit
    if article.image_width and article.image_height:
        # The render lays the image out at the column's width in this proportion (digest.email.render).
        image.update(width=article.image_width, height=article.image_height)
    return image


def _display_date(day: date, config: NewsletterConfig) -> str:
    """The date as readers write it in the newsletter's language (November 30, 2026; 30 novembre 2026)."""
    return language(config.language).day(day)


@dataclass(frozen=True)
class Brief:
    """An article as choosing sees it: a busy week holds thousands, whose content choosing never reads."""

    id: int
    section: str


@dataclass(frozen=True)
class Choice:
    """The articles an issue shows: its top story and each section's, in order."""

    window: Window
    top: Article
    sections: dict[str, list[Article]]

    @property
    def articles(self) -> list[Article]:
        return [self.top, *(a for group in self.sections.values() for a in group)]


def choose_articles(
    session: Session,
    config: NewsletterConfig,
    window: Window | Week,
    *,
    top_article_id: int | None = None,
    left_out: Collection[int] = (),
) -> Choice:
    """The issue's articles, by section and recency alone; `left_out`: ids an editor left out."""
    if isinstance(window, Week):
        window = Window.of_week(window, config.tz)
    articles = articles_in_window(session, window.start, window.end, sections=config.sections)
    by_id = {a.id: a for a in articles}
    top, chosen = _choose([Brief(a.id, a.section) for a in articles], config, window, top_article_id, left_out)
    return Choice(window, by_id[top], {name: [by_id[i] for i in ids] for name, ids in chosen.items()})


def _choose(
    articles: list[Brief],
    config: NewsletterConfig,
    window: Window,
    top_article_id: int | None,
    left_out: Collection[int],
) -> tuple[int, dict[str, list[int]]]:
    """The top story's id and each section's ids, from the window's articles (newest first)."""
    start, end = window.start, window.end
    if not articles:
        raise NothingToSend(
            f"no new articles in {window.week} ({start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC); no issue composed"
        )
    if top_article_id is not None and top_article_id in left_out:
        raise UsageError(f"article {top_article_id} is pinned as the top story but left out; put it back or unpin it")
    left_out = set(left_out)
    articles = [a for a in articles if a.id not in left_out]
    if not articles:
        raise UsageError(f"every article of {window.week} is left out; put at least one back")
    by_section: dict[str, list[int]] = {name: [] for name in config.sections}
    for article in articles:
        by_section[article.section].append(article.id)
    if top_article_id is not None:
        if top_article_id not in {a.id for a in articles}:
            raise UsageError(
                f"article {top_article_id} cannot be the top story of {window.week}: it is not one of the "
                f"issue's articles (published {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC in a section)"
            )
        top = top_article_id
    else:
        # The newest article of the first section that has any.
        top = next(group[0] for group in by_section.values() if group)
    limit = config.issue.articles_per_section
    return top, {name: [i for i in by_section[name] if i != top][:limit] for name in config.sections}


def compose_content(
    session: Session,
    config: NewsletterConfig,
    window: Window | Week,
    *,
    top_article_id: int | None = None,
    left_out: Collection[int] = (),
) -> Content:
    """The issue's content; `left_out`: ids of articles an editor left out of the issue.

    The chosen articles' summaries are brought up to date on their rows: the caller commits them
    (or not: a read-only caller makes them again next time).
    """
    choice = choose_articles(session, config, window, top_article_id=top_article_id, left_out=left_out)
    ensure_summaries(choice.articles, summary_limits(config))
    sections = [
        {"name": name, "articles": [article_card(a) for a in group]} for name, group in choice.sections.items() if group
    ]
    # Dated the day it goes out: the Monday after its week, or the day it was built.
    issue_date = choice.window.end.astimezone(config.tz).date()
    return {
        "title": config.name,
        "week": str(choice.window.week),
        "date": issue_date.isoformat(),
        "date_display": _display_date(issue_date, config),
        "intro": "",
        "top": article_card(choice.top),
        "sections": sections,
    }


@dataclass(frozen=True)
class _DraftInputs:
    window: Window
    issue: Issue | None
    top_article_id: int | None
    left_out: list[int]


def _draft_inputs(
    session: Session, config: NewsletterConfig, week: Week | None, *, now: datetime, pin: int | None, unpin: bool
) -> _DraftInputs:
    window = issue_window(session, config, week, now=now)
    issue = session.scalars(select(Issue).where(Issue.week == str(window.week))).first()
    if issue is not None and issue.status != "draft":
        if pin is not None or unpin:
            raise UsageError(f"issue {issue.week} is {issue.status}; its top story can no longer change")
        return _DraftInputs(window, issue, None, [])
    top_article_id = None if unpin else pin if pin is not None else issue.top_article_id if issue else None
    left_out = list(issue.left_out or []) if issue else []
    return _DraftInputs(window, issue, top_article_id, left_out)


def draft_article_ids(
    session: Session,
    config: NewsletterConfig,
    week: Week | None,
    *,
    now: datetime,
    pin: int | None = None,
    unpin: bool = False,
) -> list[int]:
    """The ids of the articles compose_issue would put in the draft now, with the same arguments; none
    when the issue is already sending or sent. Raises what compose_issue would raise. Reads only ids
    and sections: ten times cheaper than the articles themselves on a week of 4,000."""
    inputs = _draft_inputs(session, config, week, now=now, pin=pin, unpin=unpin)
    if inputs.issue is not None and inputs.issue.status != "draft":
        return []
    window = inputs.window
    query = _in_window(select(Article.id, Article.section), window.start, window.end, config.sections)
    briefs = [Brief(article_id, section) for article_id, section in session.execute(query)]
    top, chosen = _choose(briefs, config, window, inputs.top_article_id, inputs.left_out)
    return [top, *(i for ids in chosen.values() for i in ids)]


def compose_issue(
    session: Session,
    config: NewsletterConfig,
    week: Week | None,
    *,
    now: datetime,
    pin: int | None = None,
    unpin: bool = False,
) -> Composed:
    """Create or refresh the draft; an issue already sending or sent is left untouched.

    `pin` makes an article the top story and keeps it so on later rebuilds; `unpin` goes back to
    the newest article of the first section.
    """
    inputs = _draft_inputs(session, config, week, now=now, pin=pin, unpin=unpin)
    window, issue = inputs.window, inputs.issue
    if issue is not None and issue.status != "draft":
        return Composed(issue, created=False)
    top_article_id = inputs.top_article_id
    content = compose_content(session, config, window, top_article_id=top_article_id, left_out=inputs.left_out)
    values = {
        "slug": window.week.slug,
        "window_start": window.start,
        "window_end": window.end,
        "subject": subject_for(config, content),
        "preheader": content["top"]["teaser"] if content["top"] else "",
        "content": content,
        "top_article_id": top_article_id,
        "html": None,
        "text": None,
        "mjml": None,
        "rendered_at": None,
    }
    if issue is None:
        issue = Issue(week=str(window.week), status="draft", created_at=now, **values)
        session.add(issue)
    else:
        for key, value in values.items():
            setattr(issue, key, value)
    session.flush()
    return Composed(issue, created=True)


# --- content given as JSON (`digest render ISSUE.json`) --------------------------------------


def content_from_document(doc: object, config: NewsletterConfig, *, source: str | Path = "ISSUE.json") -> Content:
    """Check and complete content given as JSON; only each article's title and url are required.

    Without a `top`, the first article of the first section becomes the top story, as in a composed
    issue. A mistake is reported with its place in the document.
    """

    def bad(where: str, problem: str) -> UsageError:
        return UsageError(f"{source}: {where}: {problem}")

    if not isinstance(doc, dict):
        raise bad("the document", "must be a JSON object with a 'sections' list")
    sections_in = doc.get("sections")
    if not isinstance(sections_in, list):
        raise bad("sections", 'must be a list of {"name", "articles": [...]}')

    def article(value: object, where: str, section: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise bad(where, "must be an object with at least 'title' and 'url'")
        for key in ("title", "url"):
            if not isinstance(value.get(key), str) or not value[key].strip():
                raise bad(f"{where}.{key}", "is required (a non-empty string)")
        image = value.get("image")
        if image is not None and not (isinstance(image, dict) and isinstance(image.get("url"), str)):
            raise bad(
                f"{where}.image", "must be an object with a 'url' (and optional 'alt', 'credit', 'width', 'height')"
            )
        size = (image.get("width"), image.get("height")) if isinstance(image, dict) else (None, None)
        if size != (None, None) and not (all(isinstance(side, int) for side in size) and image_size(*size)):
            raise bad(
                f"{where}.image", f"'width' and 'height' must both be whole numbers of pixels, 1 to {MAX_IMAGE_SIDE}"
            )
        minutes = value.get("reading_minutes")
        if minutes is not None and not isinstance(minutes, int):
            raise bad(f"{where}.reading_minutes", "must be a whole number")
        return {**value, "section": value.get("section") or section}

    sections = []
    for i, s in enumerate(sections_in):
        if not isinstance(s, dict) or not isinstance(s.get("name"), str):
            raise bad(f"sections[{i}]", "must be an object with a 'name' and an 'articles' list")
        arts = s.get("articles", [])
        if not isinstance(arts, list):
            raise bad(f"sections[{i}].articles", "must be a list")
        sections.append(
            {
                "name": s["name"],
                "articles": [article(a, f"sections[{i}].articles[{j}]", s["name"]) for j, a in enumerate(arts)],
            }
        )
    top = doc.get("top")
    if top is not None:
        top = article(top, "top", "")
    else:
        first = next((s for s in sections if s["articles"]), None)
        if first is None:
            raise bad("sections", "no section has an article; there is nothing to render")
        top, first["articles"] = first["articles"][0], first["articles"][1:]
    date_text = doc.get("date") or ""
    try:
        date_display = _display_date(date.fromisoformat(date_text), config) if date_text else ""
    except ValueError:
        raise bad("date", f"{date_text!r} is not a date such as 2026-11-30") from None
    return {
        "title": doc.get("title") or config.name,
        "date": date_text,
        "date_display": date_display,
        "intro": doc.get("intro") or "",
        "top": top,
        "sections": [s for s in sections if s["articles"]],
    }
