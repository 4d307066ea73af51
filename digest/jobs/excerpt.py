"""`digest excerpt`: summarize files and URLs without the store, one record per input."""

from __future__ import annotations

import asyncio
from pathlib import Path

from digest.gather.fetch import Fetcher, FetchError, FetchOptions, local_path, read_local
from digest.summarize import SummaryLimits, summarize_page, summarize_text

PAGE_SUFFIXES = (".html", ".htm")


def excerpt_input(item: str, limits: SummaryLimits) -> dict:
    """The summary of one input, or its error; never raises for a bad input."""
    record = {
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
            summary = summarize_page(body.decode("utf-8", errors="replace"), limits=limits)
        else:
            summary = summarize_text(_read_text(path), limits=limits)
    except (FetchError, OSError, UnicodeError) as exc:
        record["error"] = str(exc) or type(exc).__name__
        return record
    record.update(
        title=summary.title,
        teaser=summary.teaser,
        excerpt=summary.excerpt,
        pull_quote=summary.pull_quote,
        reading_minutes=summary.reading_minutes,
        text=summary.text,
    )
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
