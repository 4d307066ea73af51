"""Parse feeds without touching the store: what `digest inspect-feed` shows, one result per input."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Iterator
from typing import TypedDict

from digest.gather.feeds import parse_document
from digest.gather.fetch import Fetcher, FetchError, FetchOptions
from digest.gather.normalize import NotAFeed, ParsedArticle

log = logging.getLogger(__name__)


class ImageJson(TypedDict):
    url: str
    alt: str | None
    credit: str | None
    width: int | None  # in pixels, both or neither, as the source gave them
    height: int | None


class ArticleJson(TypedDict):
    """One article as `digest inspect-feed --json` prints it."""

    title: str
    url: str
    guid: str | None
    published: str | None  # ISO 8601, UTC, with a Z
    author: str | None
    summary: str | None
    content_html: str | None
    image: ImageJson | None
    categories: list[str]
    link_from: str  # "link" (the item's own), "guid" (its GUID, a URL) or "channel" (the feed's link + an anchor)


class InspectResult(TypedDict):
    """One input's result: `error` is set, or `format`, `title` and `articles` are."""

    input: str
    format: str | None
    title: str | None
    error: str | None
    articles: list[ArticleJson]


def article_dict(a: ParsedArticle) -> ArticleJson:
    return {
        "title": a.title,
        "url": a.url,
        "guid": a.guid,
        "published": a.published.isoformat().replace("+00:00", "Z") if a.published else None,
        "author": a.author,
        "summary": a.summary,
        "content_html": a.content_html,
        "image": (
            {
                "url": a.image.url,
                "alt": a.image.alt,
                "credit": a.image.credit,
                "width": a.image.width,
                "height": a.image.height,
            }
            if a.image
            else None
        ),
        "categories": list(a.categories),
        "link_from": a.link_from,
    }


async def _inspect_one(fetcher: Fetcher, location: str) -> InspectResult:
    result: InspectResult = {"input": location, "format": None, "title": None, "error": None, "articles": []}
    try:
        fetched = await fetcher.fetch(location)
        # Parsing is quick next to fetching here, and one input at a time keeps memory flat.
        feed = parse_document(fetched.body, url=fetched.url, content_type=fetched.content_type)
    except (FetchError, NotAFeed) as exc:
        result["error"] = " ".join(str(exc).split())
        return result
    except Exception as exc:  # noqa: BLE001 - an input that breaks a parser gets its line, like any other
        log.debug("inspecting %s failed", location, exc_info=True)
        result["error"] = f"unexpected error: {type(exc).__name__}: {' '.join(str(exc).split())}"[:500]
        return result
    result["format"], result["title"] = feed.format, feed.title
    result["articles"] = [article_dict(a) for a in feed.articles]
    return result


async def _inspect_all(locations: list[str], options: FetchOptions) -> AsyncGenerator[InspectResult]:
    async with Fetcher(options) as fetcher:
        tasks = [asyncio.ensure_future(_inspect_one(fetcher, location)) for location in locations]
        for task in tasks:  # in input order, each as soon as it and those before it are done
            yield await task


def inspect_inputs(locations: list[str], options: FetchOptions = FetchOptions()) -> Iterator[InspectResult]:
    """Yield one result dict per input, in input order."""
    loop = asyncio.new_event_loop()
    agen = _inspect_all(locations, options)
    try:
        while True:
            try:
                yield loop.run_until_complete(agen.__anext__())
            except StopAsyncIteration:
                break
    finally:
        loop.run_until_complete(agen.aclose())
        loop.close()
