"""What the command line needs from the use cases that digest.jobs does not offer yet: typed results.

The records the commands print (a dataclass's fields are the keys of its `--json` line), made from the
rows digest.jobs returns, and three small use cases of the commands' own (render content given as
JSON, the summary lengths of `digest excerpt`, the store's migrations). They belong in digest.jobs and
live here until it takes them, so that the commands only parse, call and print.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Self

from digest.config import load_newsletter, load_settings
from digest.errors import ConfigError, UsageError
from digest.summarize import SummaryLimits

if TYPE_CHECKING:  # for the types only: rendering loads when a command renders
    from digest.content.periods import Week
    from digest.core import Digest
    from digest.email.render import Rendered
    from subscribers.models import Subscriber, SubscriberChange

# --- sources ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceState:
    """A source as `digest sources` shows it: last success, last error, articles in the week and in all."""

    name: str
    url: str
    section: str
    last_success: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    failing: bool
    articles_this_week: int
    articles: int


def source_states(core: Digest, week: Week) -> list[SourceState]:
    """Every source of the newsletter file, in file order (the store's rows made to match it first)."""
    from digest.jobs.sources import sources_in_week

    return [
        SourceState(
            r.name,
            r.url,
            r.section,
            r.last_success_at,
            r.last_error,
            r.last_error_at,
            r.failing,
            r.articles_this_week,
            r.articles_total,
        )
        for r in sources_in_week(core, week).sources
    ]


# --- articles ---------------------------------------------------------------------------------------


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
    from digest.jobs.articles import articles_in_week

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


def excerpt_limits() -> SummaryLimits:
    """The summary lengths of the newsletter file; the defaults when there is no such file (a look at a
    page needs none). A file that is there but wrong is reported like everywhere else."""
    from digest.content.summaries import summary_limits

    settings = load_settings()
    try:
        return summary_limits(load_newsletter(settings.config))
    except ConfigError:
        if settings.config.exists():
            raise
        return SummaryLimits()


# --- rendering content given as JSON ----------------------------------------------------------------


@dataclass(frozen=True)
class RenderedDocument:
    rendered: Rendered
    articles: int  # the top story and every section's articles
    base_url: str
    first_name_fallback: str


def render_document(path: Path) -> RenderedDocument:
    """Content given as a JSON file, rendered with the newsletter's templates; the store is not used.
    The view link is the one the issue would have if it were stored under the file's name."""
    from digest.content.compose import content_from_document, subject_for
    from digest.email.links import Links
    from digest.email.render import render_issue

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid JSON: {exc}") from None
    settings = load_settings()
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


# --- the store --------------------------------------------------------------------------------------


def upgrade_store(core: Digest) -> str | None:
    """Apply the migrations; returns the store's revision."""
    from digest.store import db

    db.upgrade(core.engine)
    return db.current_revision(core.engine)


# --- the audience ---------------------------------------------------------------------------------
# The work is digest.jobs.audience's; these turn its rows into the records the commands print.


@dataclass(frozen=True)
class SubscriberLine:
    """A subscriber with their consent record and preferences: one line of `subscribers list --json`."""

    id: int
    email: str
    name: str | None
    status: str
    consent_source: str | None
    consent_at: datetime | None
    consent_ip: str | None
    consent_user_agent: str | None
    confirmed_at: datetime | None
    exclude_sections: list[str]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, s: Subscriber) -> Self:
        return cls(
            s.id,
            s.email,
            s.name,
            s.status,
            s.consent_source,
            s.consent_at,
            s.consent_ip,
            s.consent_user_agent,
            s.confirmed_at,
            s.left_out_sections,
            s.created_at,
            s.updated_at,
        )


@dataclass(frozen=True)
class StatusChange:
    at: datetime
    from_status: str | None = field(metadata={"json": "from"})
    to_status: str = field(metadata={"json": "to"})
    cause: str

    @classmethod
    def of(cls, c: SubscriberChange) -> StatusChange:
        return cls(c.at, c.from_status, c.to_status, c.cause)


@dataclass(frozen=True)
class SubscriberShown(SubscriberLine):
    """What `subscribers show` prints: the subscriber and every change of their status, oldest first."""

    history: list[StatusChange] = field(default_factory=list)


def subscriber_lines(core: Digest, status: str | None, limit: int | None) -> list[SubscriberLine]:
    from digest.jobs.audience import list_subscribers

    return [SubscriberLine.of(s) for s in list_subscribers(core, status, limit)]


def subscriber_shown(core: Digest, address: str) -> SubscriberShown | None:
    from digest.jobs.audience import show_subscriber

    record = show_subscriber(core, address)
    if record is None:
        return None
    history = [StatusChange.of(c) for c in record.history]
    return replace(SubscriberShown.of(record.subscriber), history=history)
