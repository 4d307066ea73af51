"""The one core object (`Digest`, named `core` where it is held): settings, newsletter, store, provider
and links, built in one place (`build_core`).

The CLI, the web app and the scheduler each call `build_core()` and hand the core to the use cases
(digest.jobs); the layers below get only the pieces they need (sessions, config sections, links, a clock).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, configure_mappers, sessionmaker

from digest.config import NewsletterConfig, Settings, load_newsletter
from digest.delivery.providers import Provider, make_provider
from digest.delivery.run import Addresses, Mailer
from digest.email.links import Links
from digest.email.message import list_id_header
from digest.email.segments import SegmentRendering, render_segment
from digest.folder import folder_settings
from digest.store import db
from digest.store.models import Issue, utcnow
from subscribers.audience import StoredAudience
from subscribers.confirmation import OptIn

# Importing the audience's models also registers its tables in the store's `Base.metadata`.
from subscribers.models import Subscriber
from subscribers.tokens import SignedLinks, Tokens

if TYPE_CHECKING:
    from digest.summarize import SummaryLimits


@dataclass
class Digest:
    settings: Settings
    config: NewsletterConfig
    engine: Engine
    sessions: sessionmaker[Session]
    clock: Callable[[], datetime] = field(default=utcnow)
    # The SQLite file this core created, empty, when it opened the store; None when it was there already.
    new_store: Path | None = None

    def now(self) -> datetime:
        return self.clock()

    @cached_property
    def provider(self) -> Provider:
        return make_provider(self.settings, self.config.delivery)

    @cached_property
    def tokens(self) -> Tokens:
        return Tokens(self.settings.require_secret_key(), self.settings.old_secret_key_list())

    @property
    def summary_limits(self) -> SummaryLimits:
        # Imported here: the summarizer (numpy among others) is for gathering, not for every command.
        from digest.content.summaries import summary_limits

        return summary_limits(self.config)

    @property
    def links(self) -> Links:
        return Links(self.settings.base_url)

    def url(self, path: str) -> str:
        return self.links.url(path)

    def issue_url(self, slug: str) -> str:
        return self.links.issue_url(slug)

    def unsubscribe_url(self, subscriber: Subscriber) -> str:
        return self.signed_links.unsubscribe(subscriber)

    def preferences_url(self, subscriber: Subscriber) -> str:
        return self.signed_links.preferences(subscriber)

    def confirm_url(self, subscriber: Subscriber) -> str:
        return self.signed_links.confirm(subscriber)

    # --- the pieces delivery and the audience are given ---------------------------------------------

    @cached_property
    def signed_links(self) -> SignedLinks:
        return SignedLinks(self.tokens, self.links)

    @cached_property
    def audience(self) -> StoredAudience:
        return StoredAudience(self.signed_links, self.config.issue.first_name_fallback)

    def mailer(self) -> Mailer:
        """What a send is made with (digest.delivery.run)."""
        audience = self.audience  # first: without the secret key, fail before planning, not halfway
        config = self.config

        def render(issue: Issue, left_out: list[str]) -> SegmentRendering | None:
            return render_segment(config, issue, left_out, view_url=self.issue_url(issue.slug))

        return Mailer(
            engine=self.engine,
            sessions=self.sessions,
            provider=self.provider,
            audience=audience,
            addresses=Addresses(
                config.from_email,
                config.from_name or config.name,
                config.reply_to,
                config.delivery.unsubscribe_mailto,
                list_id=list_id_header(config.name, config.list_id),
                newsletter_slug=config.slug,
                feedback_sender=config.feedback_id_sender,
            ),
            settings=config.delivery,
            render_segment=render,
            now=self.now,
        )

    def opt_in(self) -> OptIn:
        """What sign-up and the confirmation mail are made with (subscribers.signup, .confirmation)."""
        return OptIn(
            self.sessions, self.config, self.signed_links, self.provider, self.settings.double_opt_in, self.now
        )

    def close(self) -> None:
        self.engine.dispose()


def build_core(
    settings: Settings | None = None,
    config: NewsletterConfig | None = None,
    *,
    migrate: bool = True,
    clock: Callable[[], datetime] | None = None,
) -> Digest:
    settings = settings or folder_settings()
    config = config or load_newsletter(settings.config)
    store_file = db.sqlite_file(settings.database_url)
    new_store = store_file if store_file is not None and not store_file.exists() else None
    engine = db.make_engine(settings.database_url)
    if migrate:
        db.upgrade(engine)
    # SQLAlchemy sets the mappers up on the first ORM query (~60 ms); doing it here keeps that out of
    # whatever runs first - a gather's start, before its first request, or a web request.
    configure_mappers()
    return Digest(settings, config, engine, db.session_factory(engine), clock or utcnow, new_store)
