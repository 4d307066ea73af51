"""Sentences (syntok, offline), merged so that no quotation is split, each labelled prose or not.

A "sentence" here is the smallest piece the summary may use: syntok splits a quotation of
several sentences into pieces, and a piece with an open quotation mark cannot stand alone, so
pieces are joined until the quotation closes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from syntok import segmenter

from . import clean, quotes

PROSE = "prose"

_MAX_QUOTE_JOIN = 8  # a quotation longer than this many sentences is not a summary candidate
# Scraped pages with many captions stay under this share of sentences (three in four at most seen).
_MAX_CAPTION_SHARE = 0.8
_TERMINAL = re.compile(r"[.!?…][\"'”’)\]]*$")
# Scraped pages glue captions into the text with a space before the full stop ("... in March .").
_CAPTION_TAIL = re.compile(r"\s[.!?][\"'”’]?$")
# Picture captions often open with a short label and a colon ("Patient satisfaction: A ...");
# a speaker's colon ("Carragher said: ...") is not one.
_CAPTION_LABEL = re.compile(r"^[A-Z][\w'’-]*(?:\s+[\w'’&-]+){0,2}:\s+[A-Z\"'“‘]")
_SPEECH = re.compile(
    r"\b(?:said|says|say|told|tells|added|adds|wrote|writes|asked|explained|insisted|claimed|declared|warned|according)\b",
    re.I,
)
_QUESTION = re.compile(r"\?[\"'”’)\]]*$")


@dataclass(frozen=True)
class Sentence:
    text: str
    para: int  # paragraph index in the cleaned text
    pos: int  # position among all sentences
    words: int
    kind: str  # PROSE, or why it is not prose


def _split(paragraph: str) -> list[str]:
    out = []
    for par in segmenter.analyze(paragraph):
        for sent in par:
            if not sent:
                continue
            start = sent[0].offset
            last = sent[-1]
            out.append(paragraph[start : last.offset + len(last.value)].strip())
    return [s for s in out if s]


# Titles and other abbreviations that do not end a sentence when a name or number follows; the
# splitter ends sentences at some of them ("... photos of the Rev." | "Jesse Jackson ...").
_TITLE_ABBREV = re.compile(
    r"(?:^|[\s(\"“‘'])(?:Rev|Gov|Sen|Sens|Rep|Reps|Lt|Gen|Col|Capt|Cmdr|Adm|Maj|Sgt|Cpl|Pvt|Dr|Mr|Mrs|Ms|Mx|"
    r"Prof|Hon|Fr|Msgr|Supt|Insp|Det|Atty|Amb|Brig|Rt|Mt|Ft|Gens|Drs|Messrs)\.$",
    re.IGNORECASE,
)
_NUMBER_ABBREV = re.compile(r"(?:^|\s)(?:No|Nos|Vol|Art|Fig|pp|Ch|Sec)\.$", re.IGNORECASE)
# "St." is a saint before a name ("in St. Louis") but a street after one ("on Main St. Then ...").
_SAINT = re.compile(r"(?:^|[\s(])[a-z][\w'’-]*\s+St\.$|^St\.$")


def _join_abbreviations(pieces: list[str]) -> list[str]:
    out: list[str] = []
    for piece in pieces:
        if out:
            prev = out[-1]
            joins = piece[:1].isupper() and (_TITLE_ABBREV.search(prev) or _SAINT.search(prev))
            if joins or (piece[:1].isdigit() and _NUMBER_ABBREV.search(prev)):
                out[-1] = prev + " " + piece
                continue
        out.append(piece)
    return out


def _join_quotations(pieces: list[str], *, drop_captions: bool = True) -> list[str]:
    # Scraped captions can sit in the middle of a quotation; leave them out before joining so
    # that they are not swallowed by it.
    if drop_captions:
        pieces = [p for p in pieces if not _CAPTION_TAIL.search(p)]
    out: list[str] = []
    i = 0
    while i < len(pieces):
        cur, j = pieces[i], i + 1
        while j < len(pieces) and j - i < _MAX_QUOTE_JOIN:
            s = quotes.scan(cur)
            if not s.open_at_end or s.reopened:
                break
            if quotes.starts_with_opener(pieces[j]) and not quotes.scan(cur + " " + pieces[j]).balanced:
                # The next piece reopens the quotation: by the news convention it ran over a
                # paragraph break, so this paragraph of it ends here and is closed here.
                cur += quotes.closing_marks(cur)
                break
            cur, j = cur + " " + pieces[j], j + 1
        out.append(cur)
        i = j
    return out


def label(text: str, *, spaced_stop_is_caption: bool = True) -> str:
    words = text.split()
    if clean.kind(text) is not None:
        return "clutter"
    if spaced_stop_is_caption and _CAPTION_TAIL.search(text):
        return "caption"
    head = _CAPTION_LABEL.match(text)
    if head and not _SPEECH.search(head.group(0)):
        return "caption"
    if len(words) < 4 or not _TERMINAL.search(text):
        return "fragment"
    if _QUESTION.search(text):
        return "question"
    if not quotes.balanced(text):
        return "unbalanced"
    return PROSE


def prefix(paragraphs: list[str], max_chars: int) -> tuple[list[str], bool]:
    """The first paragraphs up to about max_chars; True if text was left out.

    Summaries come from the beginning of an article, and splitting is the slow step, so a very
    long text is only split as far as this: the cost stays flat however long the input.
    """
    out, total = [], 0
    for par in paragraphs:
        if total + len(par) > max_chars:
            room = max_chars - total
            cut = par.rfind(" ", 0, max(room, 0))
            if cut > 0:
                out.append(par[:cut])
            return out, True
        out.append(par)
        total += len(par)
    return out, False


def split_text(text: str) -> list[str]:
    """The sentences of one short text (a teaser), as the summarizer would cut it, captions kept."""
    return _join_quotations(_join_abbreviations(_split(text)), drop_captions=False)


def split(paragraphs: list[str], *, truncated: bool = False) -> list[Sentence]:
    """Sentences of the paragraphs in order. If the last paragraph was cut short (truncated),
    its last sentence is dropped, since it may be incomplete."""
    out: list[Sentence] = []
    split_pars = [_join_abbreviations(_split(par)) for par in paragraphs]
    if truncated and split_pars and split_pars[-1]:
        split_pars[-1] = split_pars[-1][:-1]
    # A stop after a space marks a caption glued into a scraped text only where it is the
    # exception; where many sentences end so, the text is spaced that way throughout.
    pieces = [p for par in split_pars for p in par]
    spaced = sum(1 for p in pieces if _CAPTION_TAIL.search(p))
    captions = spaced <= _MAX_CAPTION_SHARE * len(pieces)
    for p_index, par_pieces in enumerate(split_pars):
        for piece in _join_quotations(par_pieces, drop_captions=captions):
            text = clean.strip_lead(piece)
            if text:
                kind = label(text, spaced_stop_is_caption=captions)
                out.append(Sentence(text, p_index, len(out), len(text.split()), kind))
    return out
