"""The store's tables: sources, articles, issues, batches, deliveries and events.

The audience's tables (subscribers and their history, suppressions) live in `subscribers.models` on the
same metadata; the composition root (digest.core) imports them, so `Base.metadata` is complete wherever
a core is built, and this layer never imports the one above it.

Every time is stored in UTC; `UTCDateTime` hands back aware datetimes on SQLite too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: SQLite keeps no offsets, PostgreSQL would shift them."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}


class Source(Base):
    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    url: Mapped[str] = mapped_column(Text)
    section: Mapped[str] = mapped_column(String(200))
    etag: Mapped[str | None] = mapped_column(String(500))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    last_fetched_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    # The last document read (not a 304, not a failed fetch): its items, and how many of them were kept.
    last_items: Mapped[int | None] = mapped_column(Integer)
    last_kept: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    articles: Mapped[list[Article]] = relationship(back_populates="source")


class Article(Base):
    __tablename__ = "articles"
    __table_args__ = (Index("ix_articles_published_at", "published_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), index=True)
    guid: Mapped[str | None] = mapped_column(String(1000), index=True)
    url: Mapped[str] = mapped_column(String(2000), unique=True)  # canonical URL
    title: Mapped[str] = mapped_column(Text)
    dek: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(String(500))
    section: Mapped[str] = mapped_column(String(200))
    categories: Mapped[list[str]] = mapped_column(default=list)
    published_at: Mapped[datetime]
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    content_html: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    image_url: Mapped[str | None] = mapped_column(String(2000))
    image_alt: Mapped[str | None] = mapped_column(Text)
    image_credit: Mapped[str | None] = mapped_column(Text)
    image_caption: Mapped[str | None] = mapped_column(Text)
    # The image's size in pixels as the feed or page gave it (both or neither; digest.gather.normalize.image_size).
    image_width: Mapped[int | None] = mapped_column(Integer)
    image_height: Mapped[int | None] = mapped_column(Integer)
    # Summaries: computed when the article is first shown (an issue, the editor's lists: digest.content.summaries),
    # not on gather; an editor's overrides win and survive regathering.
    teaser: Mapped[str | None] = mapped_column(Text)
    excerpt: Mapped[str | None] = mapped_column(Text)
    pull_quote: Mapped[str | None] = mapped_column(Text)
    pull_quote_speaker: Mapped[str | None] = mapped_column(String(500))
    reading_minutes: Mapped[int | None] = mapped_column(Integer)
    text: Mapped[str | None] = mapped_column(Text)
    teaser_override: Mapped[str | None] = mapped_column(Text)
    excerpt_override: Mapped[str | None] = mapped_column(Text)
    # Marks what the summaries above were made from: content_hash, lengths, summarizer version
    # (digest.content.summaries.summary_marker); differing (or NULL) means "summarize again".
    summary_hash: Mapped[str | None] = mapped_column(String(64))
    # The article's page, fetched when the article first enters a draft (digest.gather.ondemand):
    # `page_for` is the content_hash it was tried for (another one means "wanted again"), then when,
    # what went wrong (NULL after a success) and the page's validators for a conditional refetch.
    page_for: Mapped[str | None] = mapped_column(String(64))
    page_fetched_at: Mapped[datetime | None]
    page_error: Mapped[str | None] = mapped_column(Text)
    page_etag: Mapped[str | None] = mapped_column(String(500))
    page_last_modified: Mapped[str | None] = mapped_column(String(100))

    source: Mapped[Source] = relationship(back_populates="articles")

    @property
    def shown_teaser(self) -> str:
        return self.teaser_override or self.teaser or self.dek or ""

    @property
    def shown_excerpt(self) -> str:
        return self.excerpt_override or self.excerpt or ""


class Issue(Base):
    """One edition, keyed by its week (an ISO week such as 2026-W48): one issue per week."""

    __tablename__ = "issues"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored in the column `period` (its name since the first migration).
    week: Mapped[str] = mapped_column("period", String(20), unique=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="draft")  # draft, sending, sent
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    subject: Mapped[str] = mapped_column(Text)
    preheader: Mapped[str] = mapped_column(Text, default="")
    content: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the composed sections, as rendered
    html: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    mjml: Mapped[str | None] = mapped_column(Text)
    rendered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    send_started_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    # An editor's pinned top story; None means the newest article of the first section.
    top_article_id: Mapped[int | None] = mapped_column(ForeignKey("articles.id", ondelete="SET NULL"))
    # Ids of articles an editor left out; kept on rebuilds (the weekly run's too) until put back.
    left_out: Mapped[list[int]] = mapped_column(JSON, default=list, server_default="[]")
    # Local-time delivery: the waves the plan made (zones, local date and time, UTC instant; see
    # digest.delivery.waves), and the provider's id for the issue's scheduled sends (SendGrid's batch id).
    waves: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    provider_batch_id: Mapped[str | None] = mapped_column(String(100))

    batches: Mapped[list[Batch]] = relationship(back_populates="issue", order_by="Batch.number")


class Batch(Base):
    """Up to N recipients sent in one provider request. Status moves only by compare-and-set."""

    __tablename__ = "batches"
    __table_args__ = (UniqueConstraint("issue_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), index=True)
    number: Mapped[int]
    # The rendering this batch carries: "" is the issue's own html/text, any other key an IssueRendering.
    segment: Mapped[str] = mapped_column(String(64), default="", server_default="")
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    # Local-time delivery: the wave (1, 2, ... by UTC instant) and the instant the batch may go; None: at once.
    wave: Mapped[int | None] = mapped_column(Integer)
    send_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None]
    # The frozen plan (migrations 0017, 0020): the readers of this batch not settled yet, their subscriber
    # ids in order (a JSON array), and how many. Each settled reader has a deliveries row instead (those
    # who left, at the claim; everyone else with the request's outcome); None once the batch is settled
    # whole (`recipients` then keeps its last count).
    recipients: Mapped[int] = mapped_column(default=0, server_default="0")
    members: Mapped[str | None] = mapped_column(Text)

    issue: Mapped[Issue] = relationship(back_populates="batches")


class IssueRendering(Base):
    """The issue rendered without some sections, for the subscribers who left them out (see digest.email.segments).

    One row per distinct set of left-out sections among an issue's planned recipients, created with the
    plan (html NULL) and rendered right after it; the full issue stays on `issues` (segment "")."""

    __tablename__ = "issue_renderings"
    __table_args__ = (UniqueConstraint("issue_id", "segment"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    segment: Mapped[str] = mapped_column(String(64))
    # In the issue's order. The column keeps the name migration 0007 gave it.
    left_out_sections: Mapped[list[str]] = mapped_column("excluded_sections", default=list)
    subject: Mapped[str | None] = mapped_column(Text)
    preheader: Mapped[str | None] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    rendered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Delivery(Base):
    """One recipient of one issue once settled (sent, skipped, failed, cancelled), written with that
    status; until then the reader is one of their batch's members. The unique key makes 'at most once'
    hold."""

    __tablename__ = "deliveries"
    # Each row is written once, with its outcome (0020); no index holds `status` (0019). Counts by status
    # come from delivery_counts (0018).
    __table_args__ = (UniqueConstraint("issue_id", "subscriber_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # No foreign key (0016): the batch's issue is this issue, and deleting the issue deletes the batch and so this.
    issue_id: Mapped[int]
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), index=True)
    # No foreign key (0020): a check per row written cost a send more than the row; erasing a person
    # deletes their rows itself (`subscribers.store.erase`), and rows are written only for people present.
    # No index of its own (0021): erasing finds a person's rows through the unique key, issue by issue.
    subscriber_id: Mapped[int]
    status: Mapped[str] = mapped_column(String(20), default="sent")  # sent, skipped, failed, cancelled
    message_id: Mapped[str | None] = mapped_column(String(500))
    sent_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)  # why this recipient failed, when they did


class DeliveryCount(Base):
    """One batch's deliveries in one status, kept by the store's triggers on `deliveries` (migration 0018)
    in the statement that writes them, so an issue's figures add up a row per batch instead of counting
    a million deliveries. Nothing in Python writes it."""

    __tablename__ = "delivery_counts"
    __table_args__ = (Index("ix_delivery_counts_issue_id_status", "issue_id", "status"),)

    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    issue_id: Mapped[int]
    deliveries: Mapped[int] = mapped_column(BigInteger)


class Event(Base):
    """A provider event (delivered, open, click, bounce, ...), stored before the webhook answers."""

    __tablename__ = "events"
    # An issue's figures read its events by type and count distinct addresses (`digest.jobs.figures`): this
    # one index finds them and answers those counts by itself. It also serves lookups by issue alone.
    __table_args__ = (Index("ix_events_issue_id_type_email", "issue_id", "type", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_event_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    type: Mapped[str] = mapped_column(String(50))
    email: Mapped[str | None] = mapped_column(String(320))
    # No foreign keys (0022): the webhook's INSERT joins each event to its issue and subscriber, and erasing
    # a person clears their events itself.
    issue_id: Mapped[int | None]
    subscriber_id: Mapped[int | None] = mapped_column(index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[datetime | None]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class EventCount(Base):
    """An issue's running count of one kind of event, kept by the webhook in the transaction that stores
    the events (`subscribers.events.count_events`), so that an issue's figures read a few rows instead of
    all its events. `kind` is an event type, or `status:<status>` for the people an event bounced,
    complained or unsubscribed; `link` is 0, or for clicks the hash of one cleaned URL (`link_key`).
    `events` counts the events stored, `people` the distinct people among them (`EventPerson`)."""

    __tablename__ = "event_counts"

    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(60), primary_key=True)
    link: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    events: Mapped[int] = mapped_column(BigInteger, default=0)
    people: Mapped[int] = mapped_column(BigInteger, default=0)


class EventPerson(Base):
    """The first event of one kind (and link) from one person for an issue: the row whose insertion adds
    one to `EventCount.people`, so a second open by the same reader adds nothing. A person is a 64-bit
    hash of the address (no address is kept here), or a subscriber id for the `status:` kinds."""

    __tablename__ = "event_people"

    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(60), primary_key=True)
    link: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    person: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)


class RateLimitHit(Base):
    """Hits on one rate limit from one client in one fixed window, shared by every web process.

    Each hit is one INSERT … ON CONFLICT DO UPDATE … RETURNING (digest.store.counters); windows past
    `expires_at` (epoch seconds) are deleted now and then by whichever process notices first.
    """

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)  # the limit's name and the client's address
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # epoch seconds
    hits: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)  # epoch seconds
