"""Quotation marks: balance checks, quoted spans and the pull quote with its speaker.

Double quotes (straight or curly) are unambiguous. Single quotes are not, because the same
character is an apostrophe: a straight ' opens a quotation only at the start of a word and
closes one only at the end of a word while a single quotation is open, so "players' boots"
outside a quotation is left alone. A curly ’ at the start of a word is an elision (’90s).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_OPENERS_BEFORE = set(' \t\n([{—–-/"“‘')
_SPEECH_VERBS = (
    r"said|says|added|adds|told|tells|noted|notes|explained|explains|wrote|writes|argued|argues|"
    r"warned|warns|insisted|insists|recalled|recalls|stated|states|continued|asked|asks|"
    r"declared|declares|admitted|admits|claimed|claims|replied|replies|acknowledged|"
    r"conceded|concluded|observed|remarked|tweeted|posted|put|according"
)
_ELISION = re.compile(r"(?:\d\d(?:s|\b)|em\b|til\b|cause\b|n'|tis\b|twas\b)", re.IGNORECASE)
_PRONOUNS = {"he", "she", "they", "i", "we", "it", "you"}
# A person or organisation named in an attribution: capitalised words, optionally joined by
# the lower-case particles found in names and titles ("Secretary of State Marco Rubio").
_NAME = r"(?:[A-Z][\w.'’-]*)(?:\s+(?:(?:of|de|da|del|van|von|der|al|bin|la|le)\s+)?[A-Z][\w.'’-]*){0,5}"
_AFTER = re.compile(
    r"^[\s,;:.!?—–-]*(?:(?:" + _SPEECH_VERBS + r")\s+(?P<n1>" + _NAME + r"|he|she|they)"
    r"|(?P<n2>" + _NAME + r"|[Hh]e|[Ss]he|[Tt]hey)\s+(?:has\s+|had\s+|also\s+|later\s+)?(?:" + _SPEECH_VERBS + r")\b)"
)
_BEFORE = re.compile(
    r"(?:^|[.!?]\s+|,\s*|\s)(?P<n>" + _NAME + r"|[Hh]e|[Ss]he|[Tt]hey)\s+(?:has\s+|had\s+|also\s+|then\s+|later\s+)?"
    r"(?:" + _SPEECH_VERBS + r")(?:\s+\w+){0,4}?\s*[:,]\s*$"
)
_ACCORDING = re.compile(r"[Aa]ccording to (?P<n>(?:the\s+)?" + _NAME + r")\s*,\s*$")


@dataclass(frozen=True)
class _Scan:
    balanced: bool
    open_at_end: bool  # a quotation is still open (it may close in a later sentence)
    reopened: bool  # a new quotation of the same kind began while one was open
    spans: tuple[tuple[int, int], ...]  # outermost quotations, marks included
    open_chars: tuple[str, ...] = ()  # the marks that opened quotations still open at the end


def _is_word(ch: str) -> bool:
    return ch.isalnum()


def scan(text: str) -> _Scan:
    stack: list[tuple[str, int]] = []
    spans: list[tuple[int, int]] = []
    stray_closer = reopened = False
    n = len(text)
    for i, ch in enumerate(text):
        if ch not in "\"“”'‘’":
            continue
        before = text[i - 1] if i else " "
        after = text[i + 1] if i + 1 < n else " "
        kind = None
        if ch == "“":
            kind = "open-d"
        elif ch == "”":
            kind = "close-d"
        elif ch == '"':
            kind = "close-d" if any(k == "d" for k, _ in stack) else "open-d"
        elif ch == "‘":
            kind = "open-s"
        else:  # ' or ’
            if _is_word(before) and _is_word(after):
                continue  # don't, it’s
            if (before in _OPENERS_BEFORE or i == 0) and (_is_word(after) or after in '"“'):
                if ch == "’" or _ELISION.match(text, i + 1):
                    continue  # ’90s, 'em, 'til
                kind = "open-s"
            elif before not in " \t\n" and any(k == "s" for k, _ in stack):
                kind = "close-s"
            else:
                continue  # plural possessive or a stray apostrophe
        mark, is_open = kind[-1], kind.startswith("open")
        if is_open:
            if stack and stack[-1][0] == mark:
                # The news convention for a quotation running over several paragraphs: each
                # paragraph reopens it without closing the previous one.
                reopened = True
                stack.pop()
            stack.append((mark, i))
        else:
            while stack and stack[-1][0] != mark:
                stack.pop()
                stray_closer = True
            if not stack:
                stray_closer = True
                continue
            _, start = stack.pop()
            if not stack:
                spans.append((start, i + 1))
    return _Scan(
        balanced=not stack and not stray_closer and not reopened,
        open_at_end=bool(stack),
        reopened=reopened,
        spans=tuple(spans),
        open_chars=tuple(text[i] for _, i in stack),
    )


_CLOSER = {"“": "”", '"': '"', "‘": "’", "'": "'"}


def closing_marks(text: str) -> str:
    """The marks that close the quotations still open at the end of text, innermost first."""
    return "".join(_CLOSER[c] for c in reversed(scan(text).open_chars))


def balanced(text: str) -> bool:
    return scan(text).balanced


def starts_with_opener(text: str) -> bool:
    return bool(text) and text[0] in "\"“‘'"


def is_bare_quote(sentence: str) -> bool:
    """The whole sentence is one quotation, with no attribution after it."""
    s = scan(sentence)
    if not s.spans or not starts_with_opener(sentence):
        return False
    start, end = s.spans[0]
    return start == 0 and len(sentence[end:].strip(" .!?")) == 0


@dataclass(frozen=True)
class PullQuote:
    quote: str
    speaker: str | None


def _clean_name(name: str | None) -> str | None:
    if not name:
        return None
    name = name.strip(" ,.")
    if name.lower() in _PRONOUNS:
        return None
    if (
        name.split()[0] in {"The", "A", "An", "In", "On", "But", "And", "So", "This", "That", "It"}
        and len(name.split()) == 1
    ):
        return None
    return name


_TITLES = frozenset(
    """Mr Mrs Ms Dr Sir Dame Lord Lady President Vice Secretary State Minister Prime Senator Sen
    Rep Representative Gov Governor Mayor General Gen Colonel Col Captain Capt Judge Justice
    Chief Coach Manager Director Chairman Chairwoman Professor Prof Officer Sergeant Sgt King
    Queen Prince Princess Pope Bishop Rev Father The A An In On But And Said By With Of""".split()
)


def _full_name(short: str, text: str) -> str:
    """Expand a surname ("Rubio") to the first-and-last form the text uses ("Marco Rubio")."""
    if " " in short:
        return short
    for m in re.finditer(r"\b([A-Z][\w'’-]+)\s+" + re.escape(short) + r"\b", text):
        first = m.group(1)
        if first.rstrip(".") not in _TITLES:
            return f"{first} {short}"
    return short


def _speaker(text: str, start: int, end: int, last_named: str | None) -> tuple[str | None, bool]:
    """The speaker named next to the quotation at text[start:end], and whether it was explicit."""
    m = _AFTER.match(text[end : end + 120])
    if m:
        raw = m.group("n1") or m.group("n2")
        name = _clean_name(raw)
        if name:
            return name, True
        if raw and raw.lower() in {"he", "she"}:
            return last_named, False
    head = text[max(0, start - 160) : start]
    m = _BEFORE.search(head) or _ACCORDING.search(head)
    if m:
        name = _clean_name(m.group("n"))
        if name:
            return name, True
        return last_named, False
    return None, False


def pull_quote(text: str, *, min_words: int = 8, max_words: int = 45) -> PullQuote | None:
    """The most quotable direct quotation: long enough, not too long, preferably attributed."""
    best: tuple[tuple[bool, bool, int], PullQuote] | None = None
    last_named: str | None = None
    for par in text.split("\n\n"):
        s = scan(par)
        if s.reopened:
            continue  # a quotation spanning paragraphs cannot be lifted whole from one
        for start, end in s.spans:
            quote = par[start:end]
            inner = quote[1:-1].strip()
            words = len(inner.split())
            name, explicit = _speaker(par, start, end, last_named)
            if explicit:
                last_named = name
            if words < min_words:
                continue
            # A trailing comma belongs to the sentence around the quotation, not the quotation.
            inner = re.sub(r"[,;:]$", "", inner)
            quote = quote[0] + inner + quote[-1]
            if not balanced(quote):
                continue
            full = _full_name(name, text) if name else None
            key = (name is not None, words <= max_words, -abs(words - 25) // 10)
            if best is None or key > best[0]:
                best = (key, PullQuote(quote, full))
    return best[1] if best else None
