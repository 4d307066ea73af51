"""An editor's changes to a draft issue: leave an article out or put it back, pin the top story, rebuild.

The changes are stored on the issue (`left_out`, `top_article_id`) and take effect when the draft is
rebuilt, by the editor or by the weekly run, which recomposes a draft the same way. Teaser and
excerpt overrides belong to the article (`digest.jobs.articles.edit_article`).

A rebuild composes the way the draft was built: a draft built with --week (its window is that ISO
week's) by its week again; the current week's draft built without one (by the weekly job, or
`digest build`) by the window since the last sent issue, up to now, so newly gathered articles come
in; any other week by its ISO week.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.content.compose import Content, Window, articles_in_window, compose_content, issue_window
from digest.content.summaries import ensure_summaries
from digest.content.weeks import Week, default_week
from digest.core import Digest
from digest.delivery.sender import UnknownBatch, unknown_batches
from digest.errors import DigestError, UsageError
from digest.jobs.articles import edit_article
from digest.jobs.figures import Figures, issue_figures
from digest.jobs.issues import find_issue, issue_week, recent_issues
from digest.jobs.weekly import build
from digest.store.models import Article, Issue

# top; in; left_out (once left out, rebuilt or not); out (over a section's limit, or new)
ArticleState = Literal["top", "in", "left_out", "out"]


@dataclass(frozen=True)
class DraftArticle:
    article: Article
    state: ArticleState
    pinned: bool


@dataclass(frozen=True)
class IssueReview:
    """What the editor's preview shows around an issue."""

    articles: list[DraftArticle]
    pending: str | None  # why a rebuild would change the draft (`pending_changes`)
    figures: Figures | None  # a sent (or sending) issue's figures
    unknown: list[UnknownBatch]  # its batches of unknown fate
    issues: list[Issue]  # the latest issues, to go to another


def current_issue(core: Digest) -> Issue | None:
    """This week's issue, else the newest draft."""
    issue = find_issue(core, issue_week(core, None))
    if issue is None:
        with core.sessions() as session:
            query = select(Issue).where(Issue.status == "draft").order_by(Issue.window_end.desc()).limit(1)
            issue = session.scalars(query).first()
    return issue


def rebuild_week(core: Digest, issue: Issue) -> Week | None:
    week = Week.parse(issue.week)
    built_by_week = (issue.window_start, issue.window_end) == week.window(core.config.tz)
    if built_by_week or issue.week != str(default_week(core.now(), core.config.tz)):
        return week
    return None


def rebuild_window(session: Session, core: Digest, issue: Issue) -> Window:
    return issue_window(session, core.config, rebuild_week(core, issue), now=core.now())


def content_ids(content: Content) -> list[int]:
    top = content.get("top")
    ids: list[int] = [top["id"]] if top and "id" in top else []
    return ids + [a["id"] for s in content.get("sections", []) for a in s["articles"] if "id" in a]


def _cards_shown(content: Content) -> list[tuple[Any, Any, Any]]:
    """What a reader would see change: each card's article, teaser and excerpt, in order."""
    cards = ([content["top"]] if content.get("top") else []) + [a for s in content["sections"] for a in s["articles"]]
    return [(c.get("id"), c.get("teaser"), c.get("excerpt")) for c in cards]


def pending_changes(core: Digest, issue: Issue) -> str | None:
    """Why a rebuild would change the draft (an editor's change, new articles, or changed ones), or None.

    Read-only: summaries the trial compose makes are not stored (`draft_articles` stores them)."""
    if issue.status != "draft":
        return None
    with core.sessions() as session:
        window = rebuild_window(session, core, issue)
        try:
            fresh = compose_content(
                session, core.config, window, top_article_id=issue.top_article_id, left_out=issue.left_out or []
            )
        except DigestError as exc:
            return f"a rebuild would fail: {exc}"
    if _cards_shown(fresh) != _cards_shown(issue.content):
        return "the draft differs from what a rebuild would make now (your changes, or newly gathered articles)"
    return None


def draft_articles(core: Digest, issue: Issue) -> list[DraftArticle]:
    """Every article the issue could hold, the top story first, then in the draft, then the rest.

    The editor reads and edits their teasers here, so their summaries are made now if missing or
    stale, and stored."""
    included = content_ids(issue.content)
    left_out = set(issue.left_out or [])
    with core.sessions.begin() as session:
        start, end = issue.window_start, issue.window_end
        if issue.status == "draft":  # what a rebuild would take in too
            window = rebuild_window(session, core, issue)
            start, end = min(start, window.start), max(end, window.end)
        articles = articles_in_window(session, start, end, sections=core.config.sections)
        ensure_summaries(articles, core.summary_limits)
    order = {article_id: i for i, article_id in enumerate(included)}
    rows = []
    for article in articles:
        state: ArticleState
        # The editor's choice shows at once, though the draft has it only after a rebuild.
        if article.id in left_out:
            state = "left_out"
        elif article.id in order:
            state = "top" if order[article.id] == 0 else "in"
        else:
            state = "out"
        rows.append(DraftArticle(article, state, pinned=article.id == issue.top_article_id))
    rank = {"top": 0, "in": 1, "out": 2, "left_out": 3}
    rows.sort(key=lambda r: (rank[r.state], order.get(r.article.id, 0)))
    return rows


def _editable(session: Session, issue_id: int, article_id: int | None = None) -> tuple[Issue, Article | None]:
    issue = session.get(Issue, issue_id, with_for_update=True)
    if issue is None:
        raise UsageError(f"no issue with id {issue_id}")
    if issue.status != "draft":
        raise UsageError(f"issue {issue.week} is {issue.status}; only a draft can change")
    article = None
    if article_id is not None:
        article = session.get(Article, article_id)
        if article is None:
            raise UsageError(f"no article with id {article_id}")
    return issue, article


def leave_out(core: Digest, issue_id: int, article_id: int) -> None:
    """Leave the article out of the issue; a pinned top story left out is unpinned."""
    with core.sessions.begin() as session:
        issue, _ = _editable(session, issue_id, article_id)
        if article_id not in (issue.left_out or []):
            issue.left_out = [*(issue.left_out or []), article_id]  # a new list, so the JSON column is saved
        if issue.top_article_id == article_id:
            issue.top_article_id = None


def put_back(core: Digest, issue_id: int, article_id: int) -> None:
    with core.sessions.begin() as session:
        issue, _ = _editable(session, issue_id)
        issue.left_out = [i for i in (issue.left_out or []) if i != article_id]


def pin(core: Digest, issue_id: int, article_id: int | None) -> None:
    """Make the article the top story on the next rebuild (None: the newest of the first section)."""
    with core.sessions.begin() as session:
        issue, article = _editable(session, issue_id, article_id)
        if article is not None:
            window = rebuild_window(session, core, issue)
            if not (window.start <= article.published_at < window.end) or article.section not in core.config.sections:
                raise UsageError(f"article {article_id} is not in issue {issue.week}'s window; it cannot be its top")
            issue.left_out = [i for i in (issue.left_out or []) if i != article_id]
        issue.top_article_id = article_id


def rebuild(core: Digest, issue: Issue) -> Issue:
    """Compose and render the draft again, as `digest build` would."""
    if issue.status != "draft":
        raise UsageError(f"issue {issue.week} is {issue.status}; it can no longer be rebuilt")
    return build(core, rebuild_week(core, issue))


def edit_draft_article(
    core: Digest, issue: Issue, article_id: int, teaser: str | None, excerpt: str | None, *, reset: bool = False
) -> None:
    """The preview's edit form: what the editor changed of an article's teaser and excerpt becomes an override.

    A field sent back as the article shows it now is no change: it keeps following the computed summary."""
    if issue.status != "draft":
        raise UsageError(f"issue {issue.week} is {issue.status}; its articles can no longer change here")
    if reset:
        edit_article(core, article_id, reset=True)
        return
    with core.sessions() as session:
        article = session.get(Article, article_id)
        if article is None:
            raise UsageError(f"no article with id {article_id}")
    for name, value in (("teaser", teaser), ("excerpt", excerpt)):
        if value is not None and not value.strip():
            raise UsageError(f"the {name} must not be empty; use 'Reset' to go back to the computed one")
    teaser = teaser.strip() if teaser is not None and teaser.strip() != article.shown_teaser else None
    excerpt = excerpt.strip() if excerpt is not None and excerpt.strip() != article.shown_excerpt else None
    if teaser is not None or excerpt is not None:
        edit_article(core, article_id, teaser=teaser, excerpt=excerpt)


def review(core: Digest, issue: Issue) -> IssueReview:
    """The preview's page around an issue: its articles, a pending rebuild, and a sent issue's figures."""
    figures, unknown = None, []
    if issue.status != "draft":
        with core.sessions() as session:
            figures = issue_figures(session, issue)
            unknown = unknown_batches(session, issue.id)
    return IssueReview(
        articles=draft_articles(core, issue),
        pending=pending_changes(core, issue),
        figures=figures,
        unknown=unknown,
        issues=recent_issues(core),
    )
