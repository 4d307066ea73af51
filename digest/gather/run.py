"""Gather every configured source into the store, concurrently; one source's failure never stops the rest.

For each source, as soon as its response arrives: parse (on a worker process) and store what the feed
gives. Article pages are fetched later, when an article first enters a draft (digest.gather.ondemand),
except for sources marked `full_text = true`, whose items' pages are fetched here (unless the store
already holds them unchanged); those links come from the feed, so they are fetched from public
addresses only unless the source is marked `internal` (Fetcher.fetch_link), and a refusal is noted on
the source.
Finished sources go to the store in batches, one transaction each; when one fails, source by source,
so that one bad row costs only its own source. A source's error and its time are stored on its row; the rest of
the run goes on. Summaries are not made here but when an article is first shown (digest.content.summaries).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import BindParameter, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from digest.config import NewsletterConfig, SourceConfig
from digest.gather.fetch import Fetcher, FetchError, FetchOptions, RefusedFetch, prepare_tls
from digest.gather.normalize import NotAFeed, ParsedArticle, plain_text
from digest.gather.store import Incoming, UpsertCounts, known_articles, section_for, table_of, upsert
from digest.gather.work import page_job, parse_job
from digest.store.models import Source, utcnow
from digest.workers import Cpu, WorkerCrashed, default_workers

log = logging.getLogger(__name__)


@dataclass
class SourceReport:
    name: str
    ok: bool
    new: int = 0
    updated: int = 0
    error: str | None = None
    not_modified: bool = False
    items: int | None = None  # in the document this time, kept or not; None when no document was read
    articles: int = 0  # kept: read from those items (one without a usable link is not)
    warning: str | None = None  # a best-effort parse of a malformed feed; article pages refused
    refused: list[str] = field(default_factory=list)  # item links not fetched (internal addresses)

    @property
    def refused_note(self) -> str | None:
        """The first refusal, and how many more: one line for the source's record and the CLI."""
        if not self.refused:
            return None
        more = f" (and {len(self.refused) - 1} more article pages)" if len(self.refused) > 1 else ""
        return f"{self.refused[0]}{more}"


@dataclass
class GatherReport:
    sources: list[SourceReport] = field(default_factory=list)
    seconds: float = 0.0
    store_seconds: float = 0.0  # the last store write, after the last response was in

    @property
    def ok(self) -> int:
        return sum(r.ok for r in self.sources)

    @property
    def failed(self) -> int:
        return sum(not r.ok for r in self.sources)

    @property
    def new(self) -> int:
        return sum(r.new for r in self.sources)

    @property
    def updated(self) -> int:
        return sum(r.updated for r in self.sources)


@dataclass(frozen=True)
class _Planned:
    """A source to fetch, with the fetch state its row holds."""

    source_id: int
    config: SourceConfig
    url: str
    etag: str | None
    last_modified: str | None


@dataclass
class _Outcome:
    source_id: int
    config: SourceConfig
    report: SourceReport
    items: list[Incoming] = field(default_factory=list)
    etag: str | None = None
    last_modified: str | None = None


def _sources_plan(sessions: sessionmaker[Session], config: NewsletterConfig) -> list[_Planned]:
    for attempt in (1, 2):
        try:
            with sessions.begin() as session:
                rows = sync_sources(session, config)
                planned = []
                for sc in config.sources:
                    row = rows[sc.name]
                    planned.append(_Planned(row.id, sc, row.url, row.etag, row.last_modified))
                return planned
        except IntegrityError:
            # Another gather (a second scheduler, a manual run) added the same new sources just now.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def sync_sources(session: Session, config: NewsletterConfig) -> dict[str, Source]:
    """Make the sources table match the newsletter file (rows are kept for their fetch state)."""
    rows = {s.name: s for s in session.scalars(select(Source))}
    new = []
    for sc in config.sources:
        url = config.resolve_location(sc.url)
        row = rows.get(sc.name)
        if row is None:
            new.append({"name": sc.name, "url": url, "section": sc.section})
            continue
        if row.url != url:
            row.url, row.etag, row.last_modified = url, None, None
        row.section = sc.section
    session.flush()
    if new:
        # One executemany rather than an INSERT ... RETURNING per source: a first gather of 200
        # sources spent ~40 ms here before its first request could go out.
        session.execute(insert(Source), new)
        rows.update(
            (s.name, s) for s in session.scalars(select(Source).where(Source.name.in_([n["name"] for n in new])))
        )
    return rows


def gather_sources(
    sessions: sessionmaker[Session],
    config: NewsletterConfig,
    *,
    progress: Callable[[SourceReport], None] | None = None,
    workers: int | None = None,
    now: datetime | None = None,
) -> GatherReport:
    """Fetch every source now and store new and changed articles (not summarized: see digest.content.summaries)."""
    started = time.monotonic()
    now = now or utcnow()
    if workers is None:
        workers = default_workers() if len(config.sources) > 4 else 0
    cpu = Cpu(workers, preload=["digest.gather.work"])
    try:
        cpu.start()  # first: forking is safest (and fastest) before any thread starts
        prepare_tls()
        plan = _sources_plan(sessions, config)
        outcomes, fetched_at = asyncio.run(_fetch_all(sessions, config, plan, cpu, progress, now))
        report = GatherReport(sources=[o.report for o in outcomes])
        stored_at = time.monotonic()
    finally:
        cpu.close()
    report.store_seconds = stored_at - fetched_at
    report.seconds = time.monotonic() - started
    return report


async def _fetch_all(
    sessions: sessionmaker[Session],
    config: NewsletterConfig,
    plan: list[_Planned],
    cpu: Cpu,
    progress: Callable[[SourceReport], None] | None,
    now: datetime,
) -> tuple[list[_Outcome], float]:
    """Every source's outcome, stored; and when the last response was in (the rest is the last write).

    Finished sources are written on a thread while the event loop goes on fetching, so the store's
    time hides behind the network's. The writer takes whatever has finished each time it is free:
    batches grow while the store is slower than the network and stay small near the end, so little
    is left to write after the last response.
    """
    options = FetchOptions.from_config(config.gather)
    pending: list[_Outcome] = []
    writer: asyncio.Task[None] | None = None

    async def write_pending() -> None:
        nonlocal pending
        while pending:
            batch, pending = pending, []
            await asyncio.to_thread(_store, sessions, batch, now)

    async with Fetcher(options) as fetcher:

        async def one(entry: _Planned) -> _Outcome:
            nonlocal writer
            outcome = await _gather_one(sessions, config, cpu, fetcher, entry)
            pending.append(outcome)
            if writer is None or writer.done():
                if writer is not None:
                    writer.result()  # a store failure _store could not contain stops the gather here
                writer = asyncio.create_task(write_pending())
            if progress:
                progress(outcome.report)
            return outcome

        outcomes = list(await asyncio.gather(*(one(entry) for entry in plan)))
    fetched_at = time.monotonic()
    if writer is not None:
        await writer
    await write_pending()
    return outcomes, fetched_at


async def _gather_one(
    sessions: sessionmaker[Session], config: NewsletterConfig, cpu: Cpu, fetcher: Fetcher, entry: _Planned
) -> _Outcome:
    source_id, sc = entry.source_id, entry.config
    outcome = _Outcome(source_id, sc, SourceReport(sc.name, ok=False))
    try:
        fetched = await fetcher.fetch(entry.url, etag=entry.etag, last_modified=entry.last_modified)
        outcome.etag, outcome.last_modified = fetched.etag, fetched.last_modified
        if fetched.not_modified:
            outcome.report.ok = outcome.report.not_modified = True
            return outcome
        feed = await cpu.run(parse_job, fetched.body, fetched.url, fetched.content_type)
        del fetched
        outcome.report.articles, outcome.report.warning = len(feed.articles), feed.warning
        # A feed whose items could none of them be kept does not get here: the parse raised NotAFeed.
        outcome.report.items = len(feed.articles) if feed.items is None else feed.items
        # A page source is its own full text; a full_text source's items get their pages, unless the
        # store already holds them unchanged (other sources' pages are fetched on demand: see ondemand).
        # Everything else goes straight to the store, whose upsert tells new from changed from
        # unchanged in one lookup per batch, off the event loop.
        short = [] if feed.format == "page" else [a for a in feed.articles if _needs_page(config, sc, a)]
        if short:
            with sessions() as session:
                known = known_articles(session, short)
            wanted = []
            for article in short:
                found = known.find(source_id, article)
                if found is None or found.content_hash != article.feed_hash:
                    wanted.append(article)
            outcome.report.refused = await _full_text(config, sc, cpu, fetcher, wanted)
            if outcome.report.refused:
                outcome.report.warning = "; ".join(filter(None, [outcome.report.warning, outcome.report.refused_note]))
        for article in feed.articles:
            section = section_for(sc.section, sc.categories, article.categories)
            outcome.items.append(Incoming(source_id, section, article, article.feed_hash))
        outcome.report.ok = True
    except NotAFeed as exc:
        outcome.report.error = str(exc)
        if exc.items is not None:  # a feed none of whose items could be kept: its counts are news
            outcome.report.items, outcome.report.articles = exc.items, 0
    except (FetchError, WorkerCrashed) as exc:
        outcome.report.error = str(exc)
    except Exception as exc:  # one bad source must never stop the others
        log.exception("source %r failed unexpectedly", sc.name)
        outcome.report.error = f"unexpected error: {type(exc).__name__}: {exc}"
    return outcome


def _needs_page(config: NewsletterConfig, sc: SourceConfig, article: ParsedArticle) -> bool:
    if not article.url.startswith(("http://", "https://")) or "#" in article.url:
        # A URL kept with its #fragment names a part of a page (a comment, a status entry; see
        # feeds._told_apart): the page is not its text, and the page's canonical URL would merge them.
        return False
    # Only `full_text` sources fetch pages while gathering; the short items of the others get theirs
    # when they first enter a draft (digest.gather.ondemand), so the pages of articles no issue shows
    # are never fetched.
    return sc.full_text


async def _full_text(
    config: NewsletterConfig, sc: SourceConfig, cpu: Cpu, fetcher: Fetcher, wanted: list[ParsedArticle]
) -> list[str]:
    """Replace the items' content with their page's main text; a page that fails leaves the item as is.

    The links come from the feed, so whoever writes it chooses them: unless the source is marked
    internal, a link to a non-public address is refused (see Fetcher.fetch_link). Returns those refusals.
    """
    refused: list[str] = []

    async def one(article: ParsedArticle) -> None:
        try:
            page = await fetcher.fetch_link(article.url, internal=sc.internal)
            canonical, found = await cpu.run(page_job, page.body, page.url)
        except RefusedFetch as exc:
            log.warning("source %r: %s", sc.name, exc)
            refused.append(str(exc))
            return
        except (FetchError, WorkerCrashed) as exc:
            log.info("source %r: no full text for %s: %s", sc.name, article.url, exc)
            return
        if found is not None:
            merge_page(article, canonical, found)

    if not wanted:
        return refused
    # One deadline for all of a source's pages, so twenty slow pages cannot hold the gather for
    # twenty deadlines; the items whose pages did not arrive in time keep the feed's text.
    try:
        async with asyncio.timeout(config.gather.total_timeout):
            await asyncio.gather(*(one(a) for a in wanted))
    except TimeoutError:
        log.info("source %r: full text of some articles not fetched within %g s", sc.name, config.gather.total_timeout)
    return refused


def merge_page(article: ParsedArticle, canonical: str | None, page: ParsedArticle) -> None:
    """The page's full text and metadata fill in what the feed item lacks; the feed's title wins."""
    if page.content_html and len(plain_text(page.content_html)) > len(plain_text(article.content_html)):
        if article.summary is None and article.content_html:
            article.summary = article.content_html  # the short feed text becomes the dek
        article.content_html = page.content_html
    if canonical:
        article.url = canonical
    article.author = article.author or page.author
    article.published = article.published or page.published
    if article.image is None:
        article.image = page.image
    elif page.image is not None and page.image.url == article.image.url:
        article.image = type(page.image)(
            article.image.url,
            article.image.alt or page.image.alt,
            article.image.credit or page.image.credit,
            page.image.caption,
        ).with_size(article.image.size or page.image.size)
    for category in page.categories:
        if category not in article.categories:
            article.categories.append(category)
    article.finish()  # words and dek anew; feed_hash stays that of the feed's version


def _store(sessions: sessionmaker[Session], outcomes: list[_Outcome], now: datetime) -> None:
    """One transaction for everything; if it fails, one per source, recording who could not be stored."""
    try:
        with sessions.begin() as session:
            _write(session, outcomes, now)
        return
    except IntegrityError:
        # Another gather of the same store (a second scheduler, a manual run) inserted some of these
        # articles a moment ago; source by source, the upsert finds them and updates instead.
        log.info("another gather stored some of the same articles just now; storing source by source")
    except Exception:  # noqa: BLE001 - find the culprit source by source below
        log.info("storing all sources at once failed; storing them one by one", exc_info=True)
    for outcome in outcomes:
        try:
            with sessions.begin() as session:
                _write(session, [outcome], now)
        except Exception as exc:  # noqa: BLE001
            log.exception("source %r: its articles could not be stored", outcome.config.name)
            outcome.report.ok, outcome.items = False, []
            outcome.report.new = outcome.report.updated = 0
            outcome.report.error = f"its articles could not be stored: {type(exc).__name__}: {exc}"[:500]
            with sessions.begin() as session:
                _write(session, [outcome], now)


def _write(session: Session, outcomes: list[_Outcome], now: datetime) -> None:
    items = [item for o in outcomes if o.report.ok for item in o.items]
    counts = upsert(session, items, now=now) if items else {}
    shapes: dict[tuple[str, ...], list[dict[str, object]]] = {}
    for o in outcomes:
        c = counts.get(o.source_id, UpsertCounts())
        o.report.new, o.report.updated = c.new, c.updated
        row: dict[str, object]
        if o.report.ok:
            row = {"source_id": o.source_id, "etag": o.etag, "last_modified": o.last_modified,
                   "last_success_at": now, "last_fetched_at": now}  # fmt: skip
            note = o.report.refused_note
            if note is not None:
                # Kept where `digest sources` shows it; at the success's own time, so not "failing".
                row.update(last_error=note[:2000], last_error_at=now)
        else:
            row = {"source_id": o.source_id, "last_error": o.report.error, "last_error_at": now, "last_fetched_at": now}
        if o.report.items is not None:
            # A 304 or a failed fetch read no document: the counts of the last one read stay.
            row.update(last_items=o.report.items, last_kept=o.report.articles)
        shapes.setdefault(tuple(row), []).append(row)
    # One Core executemany per shape: a statement per source, or the ORM's bulk path, cost more.
    table = table_of(Source)
    for rows in shapes.values():
        columns: dict[str, BindParameter[object]] = {key: bindparam(key) for key in rows[0] if key != "source_id"}
        session.execute(update(table).where(table.c.id == bindparam("source_id")).values(columns), rows)
