"""`digest excerpt`: summarize files and URLs without the store, one record per input."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TypedDict

from digest.config import load_newsletter
from digest.content.summaries import summary_limits
from digest.errors import ConfigError
from digest.folder import NoFolder, folder_settings
from digest.gather.fetch import Fetcher, FetchError, FetchOptions, local_path, read_local
from digest.summarize import SummaryLimits, summarize_page, summarize_text

PAGE_SUFFIXES = (".html", ".htm")


class ExcerptRecord(TypedDict):
    """One input's line of `digest excerpt --json`: its summary, or its error."""

    input: str
    title: str | None
    teaser: str | None
    excerpt: str | None
    pull_quote: str | None
    reading_minutes: int | None
    text: str | None
    error: str | None


def excerpt_input(item: str, limits: SummaryLimits) -> ExcerptRecord:
    """The summary of one input, or its error; never raises for a bad input."""
    record: ExcerptRecord = {
        "input": item,
        "title": None,
        "teaser": None,
        "excerpt": None,
        "pull_quote": None,
        "reading_minutes": None,
        "text": None,
        "error": None,
    }
    try:
        path = local_path(item)
        if path is None or path.suffix.lower() in PAGE_SUFFIXES:
            body = read_local(path, FetchOptions.max_bytes).body if path else _download(item)
            summary = summarize_page(body, limits=limits)
        else:
            summary = summarize_text(_read_text(path), limits=limits)
    except (FetchError, OSError, UnicodeError) as exc:
        record["error"] = str(exc) or type(exc).__name__
        return record
    record["title"] = summary.title
    record["teaser"] = summary.teaser
    record["excerpt"] = summary.excerpt
    record["pull_quote"] = summary.pull_quote
    record["reading_minutes"] = summary.reading_minutes
    record["text"] = summary.text
    return record


def _download(url: str) -> bytes:
    """One page, with the same limits (size, redirects, timeouts) as gathering."""

    async def get() -> bytes:
        async with Fetcher() as fetcher:
            return (await fetcher.fetch(url)).body

    return asyncio.run(get())


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        # Plain text of unknown origin: Latin-1 never fails and keeps most Western text readable.
        return path.read_text(encoding="latin-1")
    except OSError as exc:
        raise OSError(f"cannot read {path}: {exc.strerror or exc}") from None


def excerpt_limits() -> SummaryLimits:
    """The summary lengths of the newsletter file; the defaults when there is no such file (a look at a
    page needs none). A file that is there but wrong is reported like everywhere else."""
    try:
        settings = folder_settings()
    except NoFolder:
        return SummaryLimits()
    try:
        return summary_limits(load_newsletter(settings.config))
    except ConfigError:
        if settings.config.exists():
            raise
        return SummaryLimits()
