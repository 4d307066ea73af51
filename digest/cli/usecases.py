"""Use cases the command line needs that the layers below do not offer yet, with typed results.

They belong with the other use cases (digest/jobs, or the audience's own interface) and live here only
until those packages take them: each opens its own session and returns dataclasses, so the commands
only parse, call and print. The dataclasses' fields are the keys of the commands' `--json` output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Self

from digest.config import load_newsletter, load_settings
from digest.errors import ConfigError, UsageError
from digest.summarize import SummaryLimits

if TYPE_CHECKING:  # the commands import this module at start; what they use is imported when they run
    from digest.content.periods import Week
    from digest.core import Digest
    from digest.email.render import Rendered
    from subscribers.models import Subscriber, SubscriberChange
    from subscribers.store import ImportReport

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
    from digest.gather.run import sync_sources
    from digest.gather.status import source_statuses

    start, end = week.window(core.config.tz)
    with core.sessions.begin() as session:
        sync_sources(session, core.config)
        rows = source_statuses(session, [s.name for s in core.config.sources], start, end)
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
        for r in rows
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
    from digest.core import issue_url
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
        view_url=issue_url(settings.base_url, slug),
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


# --- the audience -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriberRecord:
    """A subscriber with their consent record and preferences."""

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
            s.excluded_sections,
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
class SubscriberHistory(SubscriberRecord):
    """A subscriber and every change of their status, oldest first."""

    history: list[StatusChange] = field(default_factory=list)


@dataclass(frozen=True)
class Added:
    outcome: str  # added, updated, unchanged, reactivated or kept_out
    status: str  # the subscriber's status now ("erased": only the hash of an erased address is left)


def add_subscriber(core: Digest, address: str, name: str | None, *, force_consent: bool) -> Added:
    from subscribers.store import add

    with core.sessions.begin() as session:
        subscriber, outcome = add(
            session,
            address,
            name,
            now=core.now(),
            force_consent=force_consent,
            cause="added with digest subscribers add",
        )
        return Added(outcome, subscriber.status if subscriber else "erased")


def import_subscribers(core: Digest, path: Path, *, force_consent: bool) -> ImportReport:
    from subscribers.store import import_csv

    with core.sessions.begin() as session:
        return import_csv(session, path, now=core.now(), force_consent=force_consent)


def export_subscribers(core: Digest, handle: IO[str], status: str | None) -> int:
    from subscribers.store import export_csv

    with core.sessions() as session:
        return export_csv(session, handle, status)


def count_subscribers(core: Digest) -> dict[str, int]:
    from subscribers.store import count_by_status

    with core.sessions() as session:
        return count_by_status(session)


def list_subscribers(core: Digest, status: str | None, limit: int | None) -> list[SubscriberRecord]:
    from subscribers import store

    with core.sessions() as session:
        return [SubscriberRecord.of(s) for s in store.list_subscribers(session, status, limit)]


def subscriber_history(core: Digest, address: str) -> SubscriberHistory | None:
    from subscribers.store import find, history

    with core.sessions() as session:
        subscriber = find(session, address)
        if subscriber is None:
            return None
        changes = [StatusChange.of(c) for c in history(session, subscriber)]
        return replace(SubscriberHistory.of(subscriber), history=changes)


def remove_subscriber(core: Digest, address: str) -> str | None:
    """Unsubscribe them (kept with their history); returns their status now, None if there is no such subscriber."""
    from subscribers import store

    with core.sessions.begin() as session:
        subscriber = store.find(session, address)
        if subscriber is None:
            return None
        store.unsubscribe(session, subscriber, "removed with digest subscribers remove", now=core.now())
        return subscriber.status


def erase_subscriber(core: Digest, address: str) -> bool:
    """Delete their personal data, keeping a hash of the address as a suppression; False if we never had them."""
    from subscribers import store

    with core.sessions.begin() as session:
        return store.erase(session, address, now=core.now())
