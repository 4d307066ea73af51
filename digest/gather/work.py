"""What a gather's worker processes run (see digest.workers): parse a feed, extract a page."""

from __future__ import annotations

from digest.gather.feeds import parse_document
from digest.gather.normalize import ParsedArticle, ParsedFeed
from digest.gather.pages import parse_page


def parse_job(body: bytes, url: str, content_type: str | None) -> ParsedFeed:
    return parse_document(body, url=url, content_type=content_type)


def page_job(body: bytes, url: str) -> tuple[str | None, ParsedArticle | None]:
    return parse_page(body, url)
