"""Stored articles' summaries, made when something first shows them, not when they are gathered.

Gathering stores an article's content and its `content_hash`; the teaser, excerpt, pull quote,
reading time and plain text (see `digest.summarize`) are made from that content only when an issue
is composed with the article in it, or an editor lists it (`digest articles list`, the preview). A
week holds thousands of articles and an issue shows a few dozen, so most are never summarized.

`summary_hash` on the row is the marker: a hash of the content_hash its summaries were made from,
the dek, the lengths asked for ([summary] in the newsletter file) and the summarizer's version. NULL
or different from what the current content and settings give means "summarize again": an article
changed upstream, or one shown after an editor asked for longer teasers, gets fresh summaries.
The caller's session writes the values with its own commit; a read-only caller just makes them
again next time. An editor's overrides (`teaser_override`, `excerpt_override`) are never touched.

The teaser is the one line a card shows under its headline (`Article.shown_teaser`: the editor's
override, else this teaser, else the dek). The publisher's own dek (the feed's description,
`og:description`) is that teaser when it is clean prose that stands alone (`teaser_problems`) and
fits the teaser's ceiling: it was written to be read on its own and is not repeated by the excerpt.
Otherwise the summarizer's teaser: the lede, up to its ceiling, before any later sentence.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from functools import partial

from digest.config import NewsletterConfig
from digest.store.models import Article
from digest.summarize import Summary, SummaryLimits, summarize_html
from digest.summarize.checks import teaser_problems
from digest.workers import Cpu, WorkerCrashed, default_workers

log = logging.getLogger(__name__)

INLINE_MAX = 50  # up to this many stale articles are summarized in this process; more on worker processes
# Raise when digest.summarize changes what it makes, so that stored summaries are made again.
SUMMARIZER_VERSION = 2


def summary_limits(config: NewsletterConfig) -> SummaryLimits:
    """The lengths the newsletter file asks for ([summary] in digest.toml)."""
    s = config.summary
    return SummaryLimits(
        teaser_words=s.teaser_words, excerpt_words=s.excerpt_words, pull_quote_min_words=s.pull_quote_min_words
    )


def summary_marker(content_hash: str, limits: SummaryLimits, dek: str | None = None) -> str:
    """What `summary_hash` holds for summaries of this content and dek made with these lengths."""
    made_with = f"{content_hash}|{limits!r}|{SUMMARIZER_VERSION}"  # the repr names every field
    if dek:
        made_with += f"|{dek}"
    return hashlib.sha256(made_with.encode()).hexdigest()


def clean_dek(dek: str | None, limits: SummaryLimits) -> str | None:
    """The dek, if it can be the teaser: prose that stands alone, within the teaser's ceiling."""
    dek = " ".join((dek or "").split())
    if not dek or len(dek.split()) > limits.teaser_ceiling or teaser_problems(dek, max_words=limits.teaser_ceiling):
        return None
    return dek


def summary_values(s: Summary, content_hash: str, dek: str | None, limits: SummaryLimits) -> dict[str, object]:
    """The article columns a summary fills in, marked as made from `content_hash` and `dek` with `limits`."""
    values: dict[str, object] = {
        "teaser": clean_dek(dek, limits) or s.teaser or None,
        "excerpt": s.excerpt or None,
        "pull_quote": s.pull_quote,
        "pull_quote_speaker": s.pull_quote_speaker,
        "reading_minutes": s.reading_minutes,
        "text": s.text,
        "summary_hash": summary_marker(content_hash, limits, dek),
    }
    return values


def is_stale(article: Article, limits: SummaryLimits) -> bool:
    return article.summary_hash != summary_marker(article.content_hash, limits, article.dek)  # NULL differs too


def ensure_summaries(articles: Iterable[Article], limits: SummaryLimits, *, workers: int | None = None) -> int:
    """Give every one of `articles` summaries of its current content; returns how many were made.

    The values go onto the rows (ORM objects), to be written by the caller's session. More than
    INLINE_MAX stale articles are summarized on worker processes (`workers`: how many; default
    `digest.workers.default_workers()`; 0 for inline).
    """
    stale = [a for a in dict.fromkeys(articles) if is_stale(a, limits)]  # a row listed twice is summarized once
    if not stale:
        return 0
    fragments = [a.content_html or "" for a in stale]
    if workers is None:
        workers = 0 if len(stale) <= INLINE_MAX else default_workers()
    summaries = _summarize(fragments, limits, workers)
    for article, summary in zip(stale, summaries, strict=True):
        for key, value in summary_values(summary, article.content_hash, article.dek, limits).items():
            setattr(article, key, value)
    return len(stale)


def summarize_job(fragments: list[str], limits: SummaryLimits) -> list[Summary]:
    """One chunk of fragments, on a worker process."""
    return [summarize_html(fragment, limits=limits) for fragment in fragments]


def _summarize(fragments: list[str], limits: SummaryLimits, workers: int) -> list[Summary]:
    if workers <= 0:
        return [summarize_html(fragment, limits=limits) for fragment in fragments]
    size = -(-len(fragments) // (workers * 4))  # about four chunks a worker, so none idles at the end
    chunks = [fragments[i : i + size] for i in range(0, len(fragments), size)]
    cpu = Cpu(workers, preload=[__name__])
    try:
        cpu.start()
        done = cpu.map(partial(summarize_job, limits=limits), chunks)
    except WorkerCrashed as exc:
        log.warning("summaries: %s; making them in this process instead", exc)
        return _summarize(fragments, limits, 0)
    finally:
        cpu.close()
    return [summary for chunk in done for summary in chunk]
