"""Summaries of articles: teaser, excerpt and pull quote, as an editor would pick them.

The pipeline, one module per step:

    markup / plain   input (feed HTML, a whole page, plain text) -> paragraphs
    tokens           tokenized or lower-cased text ("the club . however , he") -> prose
    clean            leave out captions, credits, bylines, promos, related links -> main text;
                     datelines, bylines and time stamps glued before a sentence
    sentences        syntok sentences, quotations and titles ("the Rev. Jesse Jackson") kept
                     whole, each labelled prose or not
    select           lede first, centrality (rank) when the lede is uninformative; no repeats
    checks           teaser_problems: what keeps a teaser from standing alone
    quotes           balanced quotation marks, the pull quote and its speaker

Every function here is deterministic and returns a Summary for any input, empty or odd.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import clean, markup, plain, quotes, select, sentences, tokens

__all__ = ["Summary", "SummaryLimits", "summarize_html", "summarize_page", "summarize_text"]

WORDS_PER_MINUTE = 230
# Only the beginning of a very long text is split into sentences (see sentences.prefix).
_MAX_SPLIT_CHARS = 30_000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class SummaryLimits:
    teaser_words: int = 35
    excerpt_words: int = 90
    pull_quote_min_words: int = 8

    @property
    def teaser_ceiling(self) -> int:
        """A lede longer than teaser_words is still the teaser up to this length (50 for 35): a later
        sentence read alone often points back to what the lede said."""
        return max(self.teaser_words, self.teaser_words * 10 // 7)


@dataclass(frozen=True)
class Summary:
    title: str | None
    teaser: str  # 1-2 whole sentences, <= teaser_words words
    excerpt: str  # whole sentences, <= excerpt_words, one or two paragraphs separated by "\n\n"
    pull_quote: str | None  # the quotation itself, with its quotation marks balanced
    pull_quote_speaker: str | None
    reading_minutes: int  # max(1, round(words / 230))
    text: str  # the cleaned main text, paragraphs separated by "\n\n"


def _as_text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return _CONTROL.sub("", str(value))


def _summarize(paragraphs: list[str], title: str | None, limits: SummaryLimits) -> Summary:
    paragraphs = tokens.restore(paragraphs)
    body = clean.main_body(paragraphs)
    text = "\n\n".join(body)
    head, truncated = sentences.prefix(body, _MAX_SPLIT_CHARS)
    sents = sentences.split(head, truncated=truncated)
    pool = select.candidates(sents)
    excerpt = select.excerpt(sents, pool, limits.excerpt_words)
    teaser = select.teaser(sents, excerpt, pool, limits.teaser_words, ceiling=limits.teaser_ceiling)
    quote = quotes.pull_quote("\n\n".join(head), min_words=limits.pull_quote_min_words)
    return Summary(
        title=title,
        teaser=" ".join(s.text for s in teaser),
        excerpt=select.as_paragraphs(excerpt),
        pull_quote=quote.quote if quote else None,
        pull_quote_speaker=quote.speaker if quote else None,
        reading_minutes=max(1, round(len(text.split()) / WORDS_PER_MINUTE)),
        text=text,
    )


def summarize_html(html: str, *, limits: SummaryLimits = SummaryLimits()) -> Summary:
    """Article body HTML as found in a feed's content (a fragment)."""
    title, paragraphs = markup.fragment_paragraphs(_as_text(html))
    return _summarize(paragraphs, title, limits)


def summarize_page(html: str | bytes, *, limits: SummaryLimits = SummaryLimits()) -> Summary:
    """A whole article page; main text and title through extract_article (offline). Bytes are
    decoded there, with the charset the page declares."""
    title, paragraphs = markup.page_paragraphs(html if isinstance(html, bytes) else _as_text(html))
    return _summarize(paragraphs, title, limits)


def summarize_text(text: str, *, limits: SummaryLimits = SummaryLimits()) -> Summary:
    """Plain text: paragraphs split by blank lines; also text with no paragraph breaks at all."""
    return _summarize(plain.paragraphs(_as_text(text)), None, limits)
