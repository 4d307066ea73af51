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

from sqlalchemy import Engine
from sqlalchemy.orm import Session, configure_mappers, sessionmaker

from digest.config import NewsletterConfig, Settings, load_newsletter, load_settings
from digest.content.summaries import summary_limits
from digest.delivery.providers import Provider, make_provider
from digest.email.links import Links
from digest.store import db
from digest.store.models import utcnow
from digest.summarize import SummaryLimits
from subscribers.models import Subscriber
from subscribers.tokens import Tokens


@dataclass
class Digest:
    settings: Settings
    config: NewsletterConfig
    engine: Engine
    sessions: sessionmaker[Session]
    clock: Callable[[], datetime] = field(default=utcnow)

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
        return summary_limits(self.config)

    @property
    def links(self) -> Links:
        return Links(self.settings.base_url)

    def url(self, path: str) -> str:
        return self.links.url(path)

    def issue_url(self, slug: str) -> str:
        return self.links.issue_url(slug)

    def unsubscribe_url(self, subscriber: Subscriber) -> str:
        return self.url(f"unsubscribe/{self.tokens.make('unsubscribe', subscriber)}")

    def preferences_url(self, subscriber: Subscriber) -> str:
        return self.url(f"preferences/{self.tokens.make('preferences', subscriber)}")

    def confirm_url(self, subscriber: Subscriber) -> str:
        return self.url(f"confirm/{self.tokens.make('confirm', subscriber)}")

    def recipient_values(self, subscriber: Subscriber) -> dict[str, str]:
        return {
            "unsubscribe_url": self.unsubscribe_url(subscriber),
            "preferences_url": self.preferences_url(subscriber),
            "first_name": subscriber.first_name or self.config.issue.first_name_fallback,
        }

    def close(self) -> None:
        self.engine.dispose()


def build_core(
    settings: Settings | None = None,
    config: NewsletterConfig | None = None,
    *,
    migrate: bool = True,
    clock: Callable[[], datetime] | None = None,
) -> Digest:
    settings = settings or load_settings()
    config = config or load_newsletter(settings.config)
    engine = db.make_engine(settings.database_url)
    if migrate:
        db.upgrade(engine)
    # SQLAlchemy sets the mappers up on the first ORM query (~60 ms); doing it here keeps that out of
    # whatever runs first - a gather's start, before its first request, or a web request.
    configure_mappers()
    return Digest(settings, config, engine, db.session_factory(engine), clock or utcnow)
