"""Stored issues as the edges ask for them: one by its week or slug, the archive's pages, the editor's list.

The one place that looks an issue up: the CLI by `--week`, the preview and the archive by the slug in
their URLs (the archive only among the public ones).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from digest.content.weeks import Week, default_week
from digest.core import Digest
from digest.store.models import Issue

# Only an issue that is sending or sent is public (the archive, its feed, the front page).
PUBLIC = ("sending", "sent")


@dataclass(frozen=True)
class IssuePage:
    issues: list[Issue]
    total: int  # public issues in all


def issue_week(core: Digest, week: Week | None) -> Week:
    """`week`, or when none is given the week of the issue built now (`digest.content.weeks.default_week`)."""
    return week if week is not None else default_week(core.now(), core.config.tz)


def find_issue(core: Digest, ref: Week | str, *, public: bool = False) -> Issue | None:
    """The issue of a week, or of a slug (2026-w48) or week as text (2026-W48); `public`: only if sending or sent."""
    query = select(Issue)
    if isinstance(ref, Week):
        query = query.where(Issue.week == str(ref))
    else:
        query = query.where(Issue.slug == ref.strip().lower())
    if public:
        query = query.where(Issue.status.in_(PUBLIC))
    with core.sessions() as session:
        return session.scalars(query).first()


def count_public(core: Digest) -> int:
    with core.sessions() as session:
        return session.scalar(select(func.count()).select_from(Issue).where(Issue.status.in_(PUBLIC))) or 0


def public_issues(core: Digest, *, offset: int = 0, limit: int) -> IssuePage:
    """Sent (and sending) issues, newest first: `limit` of them from `offset`."""
    query = (
        select(Issue)
        .where(Issue.status.in_(PUBLIC))
        .order_by(Issue.window_end.desc(), Issue.id.desc())
        .offset(offset)
        .limit(limit)
    )
    with core.sessions() as session:
        total = session.scalar(select(func.count()).select_from(Issue).where(Issue.status.in_(PUBLIC))) or 0
        return IssuePage(list(session.scalars(query)), total)


def recent_issues(core: Digest, limit: int = 30) -> list[Issue]:
    """Every kind of issue, drafts too, newest first (the editor's list)."""
    with core.sessions() as session:
        return list(session.scalars(select(Issue).order_by(Issue.window_end.desc()).limit(limit)))


def unfinished_sends(core: Digest) -> list[Issue]:
    """Issues whose send started and did not finish (a stop or a crash), oldest first."""
    with core.sessions() as session:
        return list(session.scalars(select(Issue).where(Issue.status == "sending").order_by(Issue.id)))
