"""Tokenized text back to ordinary prose: "the club . However , he said" -> "the club. However, he said".

Research corpora and some exports store articles tokenized (Penn Treebank style): punctuation is
a word of its own, contractions are split ("did n't", "club 's"), quotation marks are `` and '',
brackets are -LRB- and -RRB-, and the text is sometimes lower-cased as well. Every later step
expects prose (the sentence splitter, the caption rule that reads " ." as a caption glued into
the text), so such a text is put back together first. Whether a text is tokenized is decided for
the whole text, from how its commas and full stops sit: one caption ending in " ." in an
ordinary article does not make it tokenized.
"""

from __future__ import annotations

import re

_SPACED = re.compile(r"\s[.,;:?!](?=\s|$)")
_ATTACHED = re.compile(r"[^\s.,;:?!][,;:?!](?=\s|$)|[a-z0-9)\"'”’]\.(?=\s|$)")
_MIN_SPACED = 3
_PTB = re.compile(r"-[LR][RSC]B-|``|\s''(?:\s|$)|\w n't\b|\w '(?:s|re|ve|ll|d|m)\b", re.IGNORECASE)

_BRACKETS = {
    "-lrb-": "(",
    "-rrb-": ")",
    "-lsb-": "[",
    "-rsb-": "]",
    "-lcb-": "{",
    "-rcb-": "}",
}
_BRACKET_RE = re.compile(r"-(?:lrb|rrb|lsb|rsb|lcb|rcb)-", re.IGNORECASE)
_CONTRACTION = re.compile(r"(\w) (n't|'s|'re|'ve|'ll|'d|'m)\b", re.IGNORECASE)
_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?%)\]}]|\.\.\.)(?=\s|$|[\"'.,;:!?)\]}])")
_AFTER_OPENER = re.compile(r"([(\[{$#])\s+")
_SINGLE_CLOSE = re.compile(r"(\S) '(?=\s|$|[.,;:!?])")
_SINGLE_OPEN = re.compile(r"(^|\s)` ?(?=\w)")
# A sentence-final stop is a word of its own; the word after it starts a sentence.
_SENTENCE_START = re.compile(r"(^|\s[.!?](?:\s(?:''|'|\"))?\s+)((?:``\s?|`|'\s?|\"\s?)?)([a-z])")


def is_tokenized(text: str) -> bool:
    spaced = len(_SPACED.findall(text))
    if spaced and _PTB.search(text):
        return True  # a short text, but in the treebank's own marks
    if spaced < _MIN_SPACED:
        return False
    return spaced > 2 * len(_ATTACHED.findall(text))


_LOWER = re.compile(r"[^\W\d_A-Z]", re.UNICODE)
_UPPER = re.compile(r"[A-Z]")


def is_lower_cased(text: str) -> bool:
    """Hardly a capital letter in a text long enough to have many (sentence starts, names)."""
    head = text[:5000]
    lower = len(_LOWER.findall(head))
    if lower < 40:
        return False
    return len(_UPPER.findall(head)) < 0.005 * lower


def _double_quotes(text: str) -> str:
    # Straight double quotes alternate: an opening one joins the word after it, a closing one
    # the word before it.
    out: list[str] = []
    opened = False
    parts = text.split(" ")
    for i, part in enumerate(parts):
        if part != '"':
            out.append(part)
            continue
        if opened and out:
            out[-1] += '"'
        elif not opened and i + 1 < len(parts):
            parts[i + 1] = '"' + parts[i + 1]
        else:
            out.append(part)
        opened = not opened
    return " ".join(out)


def detokenize(paragraph: str, *, capitalize: bool = False) -> str:
    """One paragraph of tokenized text as prose; capitalize: also start each sentence with a capital
    (for a lower-cased text, whose sentence starts the splitter could not otherwise see)."""
    t = paragraph.strip()
    if capitalize:
        t = _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2) + m.group(3).upper(), t)
    t = _BRACKET_RE.sub(lambda m: _BRACKETS[m.group(0).lower()], t)
    t = t.replace("``", '"').replace("''", '"')
    t = _CONTRACTION.sub(r"\1\2", t)
    t = _double_quotes(t)
    t = _SINGLE_OPEN.sub(r"\1'", t)
    t = _SINGLE_CLOSE.sub(r"\1'", t)
    t = _BEFORE_PUNCT.sub(r"\1", t)
    t = _AFTER_OPENER.sub(r"\1", t)
    return re.sub(r"\s{2,}", " ", t)


def restore(paragraphs: list[str]) -> list[str]:
    """The paragraphs as prose if the text is tokenized (or lower-cased throughout); else as they are."""
    joined = " ".join(paragraphs)
    tokenized = is_tokenized(joined)
    lower = is_lower_cased(joined)
    if not tokenized and not lower:
        return paragraphs
    if not tokenized:
        return [_capitalize_prose(p) for p in paragraphs]
    return [detokenize(p, capitalize=lower) for p in paragraphs]


_PROSE_START = re.compile(r"(^|[.!?][\"'”’)]*\s+)([a-z])")
_ABBREV_BEFORE = re.compile(r"(?:\b[a-z]\.[a-z]\.|\b(?:mr|mrs|ms|dr|st|vs|etc|e\.g|i\.e|gov|sen|rep|rev)\.)$")


def _capitalize_prose(paragraph: str) -> str:
    # A lower-cased text that is not tokenized: a stop that does not follow an abbreviation ends
    # a sentence.
    def up(m: re.Match[str]) -> str:
        before = paragraph[: m.start(2)].rstrip()
        if m.group(1) and _ABBREV_BEFORE.search(before.rstrip("\"'”’)")):
            return m.group(0)
        return m.group(1) + m.group(2).upper()

    return _PROSE_START.sub(up, paragraph)
