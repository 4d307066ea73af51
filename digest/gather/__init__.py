"""Gather: read every configured source, parse its articles and keep them in the store.

    fetch       bytes from http(s) (one AsyncClient, bounded and per-host limits, deadlines, size cap)
                or from a local path / file:// URL
    sniff       what the bytes are (JSON, XML, HTML, empty); entity-expansion bombs refused
    feeds       RSS/Atom through feedparser, JSON Feed as JSON, a single article page
    fastfeed    plain UTF-8 RSS 2.0 / Atom 1.0 read with lxml into what feedparser would give
                (about 4x cheaper on the benchmark feeds; what it does not reproduce goes to feedparser)
    pages       an article page's main text (digest.summarize.extract) and metadata, for pages and full text
    normalize   canonical URLs, sanitized HTML (nh3), UTC times, images
    work        what the worker processes (digest.workers) run: parsing and page extraction, off the event loop
    store       idempotent batched upsert (summaries are made later, when shown: digest.content.summaries)
    run         the whole gather; inspect   parse without the store; status   each source's state
    ondemand    the pages of short articles, fetched when they first enter a draft (full_text
                sources have theirs fetched by run), remembered on the article

One bad source is recorded on its row and never stops the others.
"""

from digest.gather.run import GatherReport, SourceReport, gather_sources

__all__ = ["GatherReport", "SourceReport", "gather_sources"]
