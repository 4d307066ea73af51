"""Which sentences make the excerpt and the teaser.

News ledes are strong (Lead-3 is the baseline most unsupervised methods fail to beat), so the
excerpt starts from the lede and reads on, skipping what is not prose. When the opening is
uninformative (very short, a bare quotation, a question, a dateline alone), the lede is the first
informative sentence after it; only when none follows soon do sentences come from the centrality
ranking instead. Chosen sentences are always printed in document order. A
sentence that mostly says again what a chosen one said (a photo caption restating the lede, where
nothing marks it as a caption) is passed over.

The teaser is the lede when it stands alone (checks.sentence_problems), whole up to a ceiling
above the teaser limit; only then a later sentence, because one read alone often points back to
what the lede said.

Over-long sentences: a limit is never exceeded by adding sentences. If the first sentence alone
is over the limit, a later sentence that fits is preferred; only when no candidate fits at all
is a single over-long sentence used, because cutting it would break the rule never to cut a
sentence, and an empty excerpt or teaser tells the reader nothing.
"""

from __future__ import annotations

from dataclasses import replace

from . import checks, quotes, rank
from .sentences import PROSE, Sentence

_SHORT_LEDE = 8  # words; a lede shorter than this is a tease or a label, not a summary
_LEAD_WINDOW = 6  # the lede path reads on through this many prose sentences at most
# A sentence half of whose content words were already said adds too little to an excerpt.
REPEATS = 0.5
_MIN_REPEATED = 3  # content words; a short sentence naming the same people is not a repeat
_GLUED_SENTENCE = 12  # words
_WEAK_OPENING = 3  # sentences; a tease longer than this is not followed by a lede
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
        # Clutter glued to a sentence with no stop between ("Share this article Jamie Carragher
        # believes ..."): a long one is a sentence behind a label.
        lambda s: s.words >= _GLUED_SENTENCE,
    ):
        # Punctuation alone is not a sentence, and a quotation mark is never left open.
        found = [s for s in sentences if ok(s) and quotes.balanced(s.text) and any(ch.isalnum() for ch in s.text)]
        if found:
            return found
    # Only sentences with a quotation left open (a text with stray quotation marks): closed here,
    # because an article with prose never gets an empty summary.
    closed = [replace(s, text=s.text + quotes.closing_marks(s.text)) for s in sentences if s.kind != "clutter"]
    return [s for s in closed if quotes.balanced(s.text) and any(ch.isalnum() for ch in s.text)]


def ranked(cands: list[Sentence]) -> list[Sentence]:
    pool = cands[:_RANK_POOL]
    score = rank.scores([s.text for s in pool])
    return [s for _, s in sorted(zip(score, pool, strict=True), key=lambda t: (-t[0], t[1].pos))]


def _strong(s: Sentence) -> bool:
    return s.kind == PROSE and s.words >= _SHORT_LEDE and not quotes.is_bare_quote(s.text)


def excerpt(sentences: list[Sentence], pool: list[Sentence], limit: int) -> list[Sentence]:
    if lede_is_weak(sentences):
        # A tease before the lede ("Ever wondered ...?", "It's official."): the lede is the first
        # informative sentence just after it; only without one do central sentences stand in.
        start = next((i for i, s in enumerate(pool[:_WEAK_OPENING]) if _strong(s)), None)
        if start is None:
            return fill(ranked(pool), limit)
        pool = pool[start:]
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
    seen: set[str] = set()
    total = 0
    for s in order:
        if max_count is not None and len(chosen) >= max_count:
            break
        terms = rank.terms(s.text)
        repeated = len(terms & seen)
        if chosen and repeated >= _MIN_REPEATED and repeated >= REPEATS * len(terms):
            continue  # says again what a chosen sentence said (a caption restating the lede, say)
        if total + s.words <= limit:
            seen |= terms
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


def teaser(
    sentences: list[Sentence], excerpt: list[Sentence], pool: list[Sentence], limit: int, *, ceiling: int
) -> list[Sentence]:
    """One or two whole sentences that stand alone (see checks): the excerpt's opening if it fits;
    else its first sentence whole up to `ceiling` words; only then a later sentence.

    A teaser is read on its own (the preheader, a compact card), so it must make sense without
    the sentences around it: a later sentence read alone often points back to the lede ("The
    report did not say ..."), which is why a somewhat long lede is preferred to it. Two sentences
    are used only when they follow each other.
    """

    def stands_alone(s: Sentence) -> bool:
        return not checks.sentence_problems(s.text) and not quotes.is_bare_quote(s.text)

    def with_next(first: Sentence) -> list[Sentence]:
        following = next((s for s in pool if s.pos > first.pos), None)
        if (
            following is not None
            and following.pos == first.pos + 1
            and first.words + following.words <= limit
            and set(checks.sentence_problems(following.text)) <= {"points back"}  # it follows the first
        ):
            return [first, following]
        return [first]

    lede = excerpt[0] if excerpt else None
    if lede is not None and stands_alone(lede) and lede.words <= ceiling:
        return with_next(lede) if lede.words <= limit else [lede]
    # The lede cannot open a teaser: the earliest sentence up to the ceiling that stands alone, else
    # the most central one that fits and does (a summary sentence, wherever it sits), else any one
    # up to the ceiling that does.
    early = [s for s in pool[:_LEAD_WINDOW] if s.words <= ceiling and stands_alone(s)]
    first = early[0] if early else next((s for s in ranked(pool) if s.words <= limit and stands_alone(s)), None)
    if first is None:
        first = next((s for s in pool if s.words <= ceiling and stands_alone(s)), None)
    if first is None:
        # Nothing stands alone: the excerpt's opening as it is, never nothing (see module doc).
        opening = fill(excerpt or pool, limit, max_count=2, contiguous=True)
        return opening or fill(pool, limit, max_count=1)
    return with_next(first) if first.words <= limit else [first]
