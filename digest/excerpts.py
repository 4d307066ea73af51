"""`digest excerpt`: summarize files and URLs without the store, one record per input."""

from __future__ import annotations

from pathlib import Path

from digest.gather.fetch import FetchError, fetch, local_path
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
            body = fetch(item).body
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


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        # Plain text of unknown origin: Latin-1 never fails and keeps most Western text readable.
        return path.read_text(encoding="latin-1")
    except OSError as exc:
        raise OSError(f"cannot read {path}: {exc.strerror or exc}") from None
