"""Upsert parsed articles: new ones inserted, changed ones updated in place, the rest left alone."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from digest.gather.feeds import ParsedArticle
from digest.models import Article, Source
from digest.summarize import SummaryLimits, summarize_html


@dataclass
class UpsertCounts:
    new: int = 0
    updated: int = 0
    unchanged: int = 0


def content_hash(parsed: ParsedArticle) -> str:
    digest = hashlib.sha256()
    for part in (parsed.title, parsed.summary or "", parsed.content_html or "", parsed.author or ""):
        digest.update(part.encode("utf-8", "replace"))
        digest.update(b"\0")
    return digest.hexdigest()


def section_for(source_section: str, category_map: dict[str, str], categories: list[str]) -> str:
    lowered = {k.casefold(): v for k, v in category_map.items()}
    for category in categories:
        if category.casefold() in lowered:
            return lowered[category.casefold()]
    return source_section


def _plain(text: str | None) -> str | None:
    if not text:
        return None
    import html2text

    converter = html2text.HTML2Text()
    converter.ignore_links = converter.ignore_images = True
    converter.body_width = 0
    return " ".join(converter.handle(text).split()) or None


def upsert_articles(
    session: Session,
    source: Source,
    parsed_articles: list[ParsedArticle],
    *,
    section_map: dict[str, str],
    limits: SummaryLimits,
    now: datetime,
) -> UpsertCounts:
    counts = UpsertCounts()
    for parsed in parsed_articles:
        conditions = [Article.url == parsed.url]
        if parsed.guid:
            conditions.append(Article.guid == parsed.guid)
        article = session.scalars(select(Article).where(or_(*conditions)).limit(1)).first()
        digest = content_hash(parsed)
        if article is not None and article.content_hash == digest:
            counts.unchanged += 1
            continue
        summary = summarize_html(parsed.content_html or parsed.summary or "", limits=limits)
        # A feed's separate summary reads as the dek when the full text is also present.
        dek = _plain(parsed.summary) if parsed.content_html and parsed.summary else None
        values = dict(
            title=parsed.title,
            url=parsed.url,
            guid=parsed.guid,
            dek=dek if dek and dek != summary.teaser else None,
            author=parsed.author,
            section=section_for(source.section, section_map, parsed.categories),
            categories=parsed.categories,
            content_html=parsed.content_html,
            content_hash=digest,
            image_url=parsed.image.url if parsed.image else None,
            image_alt=parsed.image.alt if parsed.image else None,
            image_credit=parsed.image.credit if parsed.image else None,
            teaser=summary.teaser,
            excerpt=summary.excerpt,
            pull_quote=summary.pull_quote,
            pull_quote_speaker=summary.pull_quote_speaker,
            reading_minutes=summary.reading_minutes,
            text=summary.text,
            updated_at=now,
        )
        if article is None:
            session.add(Article(source_id=source.id, published_at=parsed.published or now, first_seen_at=now, **values))
            counts.new += 1
        else:
            # Editor overrides and first_seen_at stay as they are.
            for key, value in values.items():
                setattr(article, key, value)
            if parsed.published:
                article.published_at = parsed.published
            counts.updated += 1
    return counts
