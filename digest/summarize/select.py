"""Which sentences make the excerpt and the teaser.

News ledes are strong (Lead-3 is the baseline most unsupervised methods fail to beat), so the
excerpt starts from the lede and reads on, skipping what is not prose. Only when the lede is
uninformative (very short, a bare quotation, a question, a dateline alone) do sentences come
from the centrality ranking instead. Chosen sentences are always printed in document order.

Over-long sentences: a limit is never exceeded by adding sentences. If the first sentence alone
is over the limit, a later sentence that fits is preferred; only when no candidate fits at all
is a single over-long sentence used, because cutting it would break the rule never to cut a
sentence, and an empty excerpt or teaser tells the reader nothing.
"""

from __future__ import annotations

import re

from . import quotes, rank
from .sentences import PROSE, Sentence

_LEANS_BACK = re.compile(
    r"^(?:[\"'“‘]?(?:But|And|Or|So|Yet|Still|However|Meanwhile|Also|Instead|Then|This|That|These|"
    r"Those|It|He|She|They|His|Her|Their|Its|Such|Both|Even|Nevertheless|Moreover|Furthermore)\b"
    r"|\w+ly,)"
)
_SHORT_LEDE = 8  # words; a lede shorter than this is a tease or a label, not a summary
_LEAD_WINDOW = 6  # the lede path reads on through this many prose sentences at most
_RANK_POOL = 150  # centrality is computed over the first sentences only: cost grows as n²


def lede_is_weak(sentences: list[Sentence]) -> bool:
    lede = next((s for s in sentences if s.kind not in ("clutter", "caption")), None)
    if lede is None:
        return True
    return lede.kind != PROSE or lede.words < _SHORT_LEDE or quotes.is_bare_quote(lede.text)


def candidates(sentences: list[Sentence]) -> list[Sentence]:
    """Prose sentences; if a text has none (a list, a language syntok cannot split), relax."""
    for ok in (
        lambda s: s.kind == PROSE,
        lambda s: s.kind in (PROSE, "fragment", "question"),
        lambda s: s.kind != "clutter",
    ):
        # Punctuation alone is not a sentence, and a quotation mark is never left open.
        found = [s for s in sentences if ok(s) and quotes.balanced(s.text) and any(ch.isalnum() for ch in s.text)]
        if found:
            return found
    return []


def ranked(cands: list[Sentence]) -> list[Sentence]:
    pool = cands[:_RANK_POOL]
    score = rank.scores([s.text for s in pool])
    return [s for _, s in sorted(zip(score, pool, strict=True), key=lambda t: (-t[0], t[1].pos))]


def excerpt(sentences: list[Sentence], pool: list[Sentence], limit: int) -> list[Sentence]:
    if lede_is_weak(sentences):
        return fill(ranked(pool), limit)
    # An unattributed quotation after the lede reads as if the summary itself were speaking.
    lead = [s for i, s in enumerate(pool) if i == 0 or not quotes.is_bare_quote(s.text)]
    return fill(lead[:_LEAD_WINDOW], limit, contiguous=True)


def fill(
    order: list[Sentence], limit: int, *, max_count: int | None = None, contiguous: bool = False
) -> list[Sentence]:
    """Greedy: take sentences in priority order while they fit; return them in document order.

    contiguous (the lede path): once a sentence is taken, stop at the first one that does not
    fit, so the excerpt reads on without a gap; before that, over-long sentences are passed by.
    """
    chosen: list[Sentence] = []
    total = 0
    for s in order:
        if max_count is not None and len(chosen) >= max_count:
            break
        if total + s.words <= limit:
            chosen.append(s)
            total += s.words
        elif contiguous and chosen:
            break
    if not chosen and order:
        chosen = [order[0]]  # nothing fits: one whole over-long sentence (see module doc)
    return sorted(chosen, key=lambda s: s.pos)


def as_paragraphs(chosen: list[Sentence]) -> str:
    """Sentences joined, keeping the source's paragraph break between at most two paragraphs."""
    groups: list[list[str]] = []
    last_para = None
    for s in chosen:
        if s.para != last_para and len(groups) < 2:
            groups.append([])
        groups[-1].append(s.text)
        last_para = s.para
    return "\n\n".join(" ".join(g) for g in groups)


def teaser(excerpt: list[Sentence], pool: list[Sentence], limit: int) -> list[Sentence]:
    """One or two sentences: the excerpt's opening if it fits, else an early one that stands alone.

    A teaser is read on its own (the preheader, a compact card), so it must make sense without
    the sentences around it: two sentences are used only when they follow each other.
    """
    opening = fill(excerpt, limit, max_count=2, contiguous=True) if excerpt else []
    if opening and sum(s.words for s in opening) <= limit and opening[0] is excerpt[0]:
        return opening

    def stands_alone(s: Sentence) -> bool:
        return s.words <= limit and not _LEANS_BACK.match(s.text) and not quotes.is_bare_quote(s.text)

    # The lede is too long: the earliest sentence of the opening that fits and stands alone,
    # else the most central one that does (a summary sentence, wherever it sits).
    early = [s for s in pool[:_LEAD_WINDOW] if stands_alone(s)]
    first = early[0] if early else next((s for s in ranked(pool) if stands_alone(s)), None)
    if first is None:
        return fill(pool, limit, max_count=1)
    chosen = [first]
    following = next((s for s in pool if s.pos > first.pos), None)
    if following is not None and following.pos == first.pos + 1 and first.words + following.words <= limit:
        chosen.append(following)
    return chosen
