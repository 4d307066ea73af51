"""Article pages on demand: an article's page is fetched when the article first enters a draft.

Gathering stores what a feed gives. Most articles never enter an issue, so the pages of short items
(fewer words than `[gather] full_text_min_words`) are not fetched then, but here, for the articles an
issue is about to show (digest.jobs.pages calls this before composing). Sources with
`full_text = true` still have every page fetched at gather time (digest.gather.run).

* Concurrently, under the gather's limits: one Fetcher, so `concurrency` at once, `per_host` to a
  host, its timeouts and size cap, and one deadline (`total_timeout`) for the whole step.
* The links come from feeds: fetched from public addresses only unless the source is `internal`.
* Remembered on the article row: `page_for` is the content_hash (the feed's version) the page was
  tried for, so a page is fetched once, and again only when the feed changes the item (gathering
  then stores the feed's text again). Its ETag and Last-Modified are kept with it, for a refresh of
  pages still held; the refetch after a feed change is not conditional, since that change replaced
  the page's text on the row and a 304 would leave nothing to show.
* A failure keeps the feed's text and is stored on the row (`page_error`, `page_fetched_at`); it is
  tried again when the article enters a draft at least PAGE_RETRY after the last try, not on every
  rebuild. `digest sources` counts a source's failed pages; the preview notes them on the article.
* The page's text replaces the feed's when longer (digest.gather.run.merge_page: the feed's title,
  URL and date stay), and the summaries are marked stale so that they are made from the page.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from digest.config import NewsletterConfig
from digest.gather.fetch import Fetcher, FetchError, FetchOptions
from digest.gather.normalize import Image, ParsedArticle, plain_text
from digest.gather.run import merge_page
from digest.gather.work import page_job
from digest.store.models import Article, Source

log = logging.getLogger(__name__)

# A page that failed is tried again when its article enters a draft this long after the last try:
# a rebuild a minute later does not knock on a server that just answered 500 or timed out.
PAGE_RETRY = timedelta(hours=1)


@dataclass(frozen=True)
class PageFailure:
    article_id: int
    url: str
    error: str


@dataclass
class PagesReport:
    """What one on-demand step did: the pages wanted (of the articles given), fetched and failed."""

    articles: int = 0
    wanted: int = 0
    fetched: int = 0
    failures: list[PageFailure] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return len(self.failures)


@dataclass(frozen=True)
class _Wanted:
    article_id: int
    url: str
    content_hash: str
    internal: bool


@dataclass
class _Result:
    wanted: _Wanted
    page: ParsedArticle | None = None
    error: str | None = None
    etag: str | None = None
    last_modified: str | None = None


def words(fragment: str | None) -> int:
    return len(plain_text(fragment).split())


def page_wanted(article: Article, min_words: int, now: datetime, *, source_url: str | None = None) -> bool:
    """Whether the article's page should be fetched now: a short item whose page was not tried for
    this version of it, or failed at least PAGE_RETRY ago."""
    url = article.url
    if not url.startswith(("http://", "https://")) or "#" in url or url == source_url:
        # A #fragment names a part of a page (see feeds._told_apart); a page source is its own page.
        return False
    if article.page_for == article.content_hash:
        if article.page_error is None:
            return False
        return article.page_fetched_at is None or now - article.page_fetched_at >= PAGE_RETRY
    return words(article.content_html) < min_words


def fetch_pages(
    sessions: sessionmaker[Session], config: NewsletterConfig, article_ids: Collection[int], *, now: datetime
) -> PagesReport:
    """Fetch the pages the articles want (see page_wanted) and store them on the rows, one transaction.

    No transaction is open while the pages are fetched. One page's failure is stored on its row and
    never stops the others."""
    started = time.monotonic()
    report = PagesReport(articles=len(article_ids))
    with sessions() as session:
        wanted = _wanted(session, config, article_ids, now)
    report.wanted = len(wanted)
    if not wanted:
        return report
    log.info("fetching the pages of %d articles", len(wanted))
    results = asyncio.run(_fetch_all(config, wanted))
    with sessions.begin() as session:
        ids = [result.wanted.article_id for result in results]
        stored = {a.id: a for a in session.scalars(select(Article).where(Article.id.in_(ids)))}
        for result in results:
            article = stored.get(result.wanted.article_id)
            if article is None or article.content_hash != result.wanted.content_hash:
                continue  # deleted, or regathered meanwhile: the new version wants its page next time
            _store(article, result, now)
            if result.error is None:
                report.fetched += 1
            else:
                report.failures.append(PageFailure(article.id, result.wanted.url, result.error))
    report.seconds = time.monotonic() - started
    log.info("article pages: %d fetched, %d failed in %.2f s", report.fetched, report.failed, report.seconds)
    if report.failures:
        first = report.failures[0]
        more = f" (and {report.failed - 1} more)" if report.failed > 1 else ""
        log.warning(
            "the page of article %d could not be fetched%s: %s: %s; the feed's text is used (see digest sources)",
            first.article_id,
            more,
            first.url,
            first.error,
        )
    return report


def _wanted(session: Session, config: NewsletterConfig, article_ids: Collection[int], now: datetime) -> list[_Wanted]:
    if not article_ids:
        return []
    internal = {s.name for s in config.sources if s.internal}
    rows = session.execute(
        select(Article, Source.name, Source.url)
        .join(Source, Source.id == Article.source_id)
        .where(Article.id.in_(list(article_ids)))
    ).all()
    min_words = config.gather.full_text_min_words
    return [
        _Wanted(article.id, article.url, article.content_hash, name in internal)
        for article, name, source_url in rows
        if page_wanted(article, min_words, now, source_url=source_url)
    ]


async def _fetch_all(config: NewsletterConfig, wanted: list[_Wanted]) -> list[_Result]:
    deadline = config.gather.total_timeout
    # Extraction holds the GIL: one thread does it, off the event loop, while the other pages download.
    with ThreadPoolExecutor(1, thread_name_prefix="page-extract") as extract:
        async with Fetcher(FetchOptions.from_config(config.gather)) as fetcher:
            tasks = [asyncio.create_task(_one(fetcher, extract, w)) for w in wanted]
            done, late = await asyncio.wait(tasks, timeout=deadline)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
    results = []
    for w, task in zip(wanted, tasks, strict=True):
        if task in done:
            results.append(task.result())
        else:
            results.append(_Result(w, error=f"not fetched within {deadline:g} s (total_timeout) with the others"))
    return results


async def _one(fetcher: Fetcher, extract: ThreadPoolExecutor, wanted: _Wanted) -> _Result:
    try:
        page = await fetcher.fetch_link(wanted.url, internal=wanted.internal)
        loop = asyncio.get_running_loop()
        _canonical, found = await loop.run_in_executor(extract, page_job, page.body, page.url)
    except FetchError as exc:  # a refusal (non-public address) is one too, and says what to do
        log.info("no page for article %d (%s): %s", wanted.article_id, wanted.url, exc)
        return _Result(wanted, error=str(exc))
    except Exception as exc:  # one page must never stop the others
        log.exception("article %d: its page %s could not be read", wanted.article_id, wanted.url)
        return _Result(wanted, error=f"unexpected error reading the page: {type(exc).__name__}: {exc}")
    if found is None:
        return _Result(wanted, error="the page holds no article text that could be read")
    return _Result(wanted, page=found, etag=page.etag, last_modified=page.last_modified)


def _store(article: Article, result: _Result, now: datetime) -> None:
    article.page_for = result.wanted.content_hash
    article.page_fetched_at = now
    article.page_error = None if result.error is None else result.error[:2000]
    if result.page is None:
        return
    article.page_etag, article.page_last_modified = result.etag, result.last_modified
    merge_into(article, result.page)


def merge_into(article: Article, page: ParsedArticle) -> None:
    """The page's text and metadata onto the stored article, by the gather's rule (merge_page); the
    article keeps its URL, date and section, so that the next gather still knows it and the issue
    being composed does not change shape. Its summaries are made again from the new text."""
    image = None
    if article.image_url:
        image = Image(
            article.image_url,
            article.image_alt,
            article.image_credit,
            article.image_caption,
            article.image_width,
            article.image_height,
        )
    item = ParsedArticle(
        title=article.title,
        url=article.url,
        guid=article.guid,
        published=article.published_at,
        author=article.author,
        summary=None,
        content_html=article.content_html,
        image=image,
        categories=list(article.categories),
        feed_hash=article.content_hash,
    )
    merge_page(item, None, page)
    if item.image is not None:
        article.image_url, article.image_alt = item.image.url, item.image.alt
        article.image_credit, article.image_caption = item.image.credit, item.image.caption
        article.image_width, article.image_height = item.image.width, item.image.height
    # The image's size alone is no reason to summarize again.
    same = (item.content_html, _unsized(item.image), item.author, item.categories)
    if same == (article.content_html, _unsized(image), article.author, article.categories):
        return  # the page added nothing to summarize: the summaries stand
    article.content_html = item.content_html
    article.dek = article.dek or item.dek
    article.author = item.author
    article.categories = list(item.categories)
    article.summary_hash = None  # "summarize again" (digest.content.summaries)


def _unsized(image: Image | None) -> Image | None:
    return None if image is None else replace(image, width=None, height=None)
