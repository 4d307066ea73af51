"""Upsert gathered articles: new ones inserted, changed ones updated in place, the rest left alone.

An article is the same article when its canonical URL matches, or its GUID does (within its source,
or anywhere when the GUID is globally unique in form: a URL, tag: or urn:). Change is detected by
the content hash of what the feed says; an update keeps the first-seen time, the editor's overrides
and the id. Writes go in as few statements as possible: one lookup per chunk of keys, one
executemany for the new rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from digest.gather.normalize import ParsedArticle
from digest.store.models import Article, Base

CHUNK = 400
T = TypeVar("T")


@dataclass
class UpsertCounts:
    new: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass
class Incoming:
    """One parsed article on its way to the store, with what was worked out for it on the way."""

    source_id: int
    section: str
    article: ParsedArticle
    content_hash: str  # of the feed's version, before any full text was merged in


@dataclass
class Known:
    id: int
    source_id: int
    url: str
    guid: str | None
    content_hash: str
    image_url: str | None = None
    image_width: int | None = None


@dataclass
class KnownIndex:
    by_url: dict[str, Known] = field(default_factory=dict)
    by_guid: dict[str, list[Known]] = field(default_factory=dict)

    def add(self, known: Known) -> None:
        self.by_url[known.url] = known
        if known.guid:
            self.by_guid.setdefault(known.guid, []).append(known)

    def find(self, source_id: int, article: ParsedArticle) -> Known | None:
        found = self.by_url.get(article.url)
        if found is not None:
            return found
        if article.guid:
            candidates = self.by_guid.get(article.guid) or []
            for known in candidates:
                if known.source_id == source_id or globally_unique(article.guid):
                    return known
        return None


def globally_unique(guid: str) -> bool:
    """Short GUIDs such as "1045" mean something only within their feed; URLs and URNs everywhere."""
    return guid.startswith(("http://", "https://", "tag:", "urn:")) and len(guid) > 12


def table_of(model: type[Base]) -> Table:
    """A model's Table, for Core statements: SQLAlchemy types `__table__` as any FromClause, but a
    declarative model without __table__ of its own is always mapped to a Table."""
    return cast(Table, model.__table__)


def section_for(source_section: str, category_map: dict[str, str], categories: Iterable[str]) -> str:
    lowered = {k.casefold(): v for k, v in category_map.items()}
    for category in categories:
        if category.casefold() in lowered:
            return lowered[category.casefold()]
    return source_section


def _chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def known_articles(session: Session, articles: Iterable[ParsedArticle]) -> KnownIndex:
    """What the store already holds under these articles' URLs and GUIDs."""
    articles = list(articles)  # read twice below: a generator would leave the GUIDs unlooked-up
    urls = sorted({a.url for a in articles})
    guids = sorted({a.guid for a in articles if a.guid})
    index = KnownIndex()
    columns = (
        Article.id,
        Article.source_id,
        Article.url,
        Article.guid,
        Article.content_hash,
        Article.image_url,
        Article.image_width,
    )
    for chunk in _chunks(urls):
        for row in session.execute(select(*columns).where(Article.url.in_(chunk))):
            index.add(Known(*row))
    for chunk in _chunks(guids):
        for row in session.execute(select(*columns).where(Article.guid.in_(chunk))):
            index.add(Known(*row))
    return index


def _values(item: Incoming, now: datetime) -> dict[str, object]:
    a = item.article
    return {
        "title": a.title,
        "url": a.url,
        "guid": a.guid,
        "dek": a.dek,
        "author": a.author,
        "section": item.section,
        "categories": list(a.categories),
        "content_html": a.content_html,
        "content_hash": item.content_hash,
        "image_url": a.image.url if a.image else None,
        "image_alt": a.image.alt if a.image else None,
        "image_credit": a.image.credit if a.image else None,
        "image_caption": a.image.caption if a.image else None,
        "image_width": a.image.width if a.image else None,
        "image_height": a.image.height if a.image else None,
        "updated_at": now,
    }


def upsert(session: Session, items: Sequence[Incoming], *, now: datetime) -> dict[int, UpsertCounts]:
    """Store the items; counts per source id. Duplicates within `items` count once, for the first."""
    counts: dict[int, UpsertCounts] = {}
    index = known_articles(session, (i.article for i in items))
    seen = KnownIndex()  # what this call has already written, for duplicates across sources
    new_rows: list[dict[str, object]] = []
    changed: dict[int, dict[str, object]] = {}
    sized: list[dict[str, object]] = []
    for item in items:
        c = counts.setdefault(item.source_id, UpsertCounts())
        a = item.article
        if seen.find(item.source_id, a) is not None:
            c.unchanged += 1
            continue
        known = index.find(item.source_id, a)
        seen.add(Known(known.id if known else -1, item.source_id, a.url, a.guid, item.content_hash))
        if known is not None and known.content_hash == item.content_hash:
            size = a.image.size if a.image is not None and a.image.url == known.image_url else None
            if size is not None and known.image_width is None:
                # The size is not part of the content hash (it changes nothing a reader reads), so an
                # article stored before sizes were kept, or before its feed gave one, gets it here.
                sized.append({"id": known.id, "image_width": size[0], "image_height": size[1]})
            c.unchanged += 1
            continue
        values = _values(item, now)
        if known is None:
            # An undated item is published when we first see it (this gather's time), not at each gather.
            values.update(source_id=item.source_id, published_at=a.published or now, first_seen_at=now)
            new_rows.append(values)
            c.new += 1
        else:
            if a.published:  # an undated article keeps the time it was first seen: dated once, never moved
                values["published_at"] = a.published
            if known.url != a.url and a.url in index.by_url:
                del values["url"]  # the new URL belongs to another stored article; keep this one's
            changed[known.id] = values
            c.updated += 1
    if new_rows:
        # A Core executemany (the ORM's bulk path costs several times more per row).
        session.execute(insert(table_of(Article)), new_rows)
    if sized:
        session.execute(update(Article), sized)  # an executemany by primary key
    if changed:
        for article in session.scalars(select(Article).where(Article.id.in_(list(changed)))):
            for key, value in changed[article.id].items():
                setattr(article, key, value)  # editor overrides and first_seen_at are not in values
    session.flush()
    return counts
