"""The step before a draft is composed: fetch the pages of the articles it will hold.

Gathering stores what feeds give; a short item's page is fetched only when the item first enters a
draft (digest.gather.ondemand): the weekly build, `digest build`, the preview's rebuild. The articles
are chosen as composing will choose them (digest.content.compose.draft_article_ids), their
pages fetched with no transaction open, then the draft is composed and the summaries are made from
the pages. A page that fails leaves the feed's text and a note; the build goes on.
"""

from __future__ import annotations

import logging

from digest.content.compose import draft_article_ids
from digest.content.weeks import Week
from digest.core import Digest
from digest.errors import DigestError
from digest.gather.ondemand import PagesReport, fetch_pages

log = logging.getLogger(__name__)


def fetch_draft_pages(core: Digest, week: Week | None, *, pin: int | None = None, unpin: bool = False) -> PagesReport:
    """Fetch the pages the draft's articles want (composed with these arguments, as `build` will)."""
    with core.sessions() as session:
        try:
            ids = draft_article_ids(session, core.config, week, now=core.now(), pin=pin, unpin=unpin)
        except DigestError:
            return PagesReport()  # nothing to compose (or a bad pin): composing says so
    return fetch_pages(core.sessions, core.config, ids, now=core.now())
