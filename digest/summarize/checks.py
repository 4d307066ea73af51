"""What is wrong with a teaser read on its own: `teaser_problems`.

A teaser is the line under a headline and the inbox preheader: it is read with nothing before it.
So it must not point back to a sentence the reader has not seen ("That's according to ...", "The
company, which ..."), must be prose (not a byline, a dateline, a time stamp, a caption or a
promo), and must be whole sentences. The summarizer uses the same checks, sentence by sentence,
to choose the teaser; the tests and `bench/summaries.py` use them to find bad teasers.
"""

from __future__ import annotations

import re

from . import clean, quotes
from .sentences import label, split_text

# Openings that refer to something said before: a connective, a definite description of an earlier
# event or of a person already introduced ("The report ...", "The company, which ...", "The 19-year-old").
LEANS_BACK = re.compile(
    r"^(?:"
    r"(?:But|And|Or|Nor|So|Yet|Still|However|Meanwhile|Also|Instead|Then|Thus|Hence|Therefore|Otherwise|"
    r"That's|That is|Him|Them|Such|Both|Either|"
    r"Neither|Even|Nevertheless|Nonetheless|Moreover|Furthermore|Additionally|Likewise|Similarly|Indeed|"
    r"Besides|Consequently|Accordingly|Afterwards|Later|Earlier|Again|Too|Rather|Anyway|Regardless)\b"
    r"|In (?:addition|contrast|comparison|turn|response|the meantime|fact|other words|that case)\b"
    r"|As (?:a result|such|well|for (?:him|her|them|that|this))\b"
    r"|Despite (?:this|that|these|the move)\b"
    r"|According to (?:the|this|that|these) (?:report|statement|study|survey|data|figures|document|source)s?\b"
    r"|On the other hand\b|At the same time\b|For (?:his|her|their|its) part\b|Not only\b|After that\b"
    r"|The (?:[A-Z][\w.'’-]* )?(?:report|statement|comments?|remarks|announcement|move|decision|news|findings?|"
    r"letter|memo|ruling|deal|incident|attack|plan|proposal|bill|measure|change|development|claims?|allegations?|"
    r"revelations?|video|footage|photos?|post|tweet|interview|meeting|talks|call|latter|former|same|above|"
    r"following|previous|aforementioned|episode|event|accident|crash|shooting|case|trend|figure|number|step|"
    r"agreement|result|outcome|response|reaction)s?\b(?! of\b)"
    r"|The \d+-year-old\b"
    r"|The (?:[A-Z][\w.'’-]* ){0,3}(?:[a-z-]+ )?(?:coach|manager|boss|star|striker|forward|midfielder|defender|"
    r"goalkeeper|keeper|stopper|singer|actor|actress|model|player|youngster|teenager|veteran|pair|couple|duo|"
    r"billionaire|businessman|businesswoman|tycoon|mother-of-\w+|father-of-\w+|grandmother|grandfather)\b(?! [A-Z])"
    r"|The \w+(?: \w+)?, which\b"
    r"|\w+ly,"
    r")"
)
# A pronoun or demonstrative points back, unless the sentence itself names whom or what it is about
# (a lede's "He may not be playing much at Manchester United but Anders Lindegaard ...").
_PRONOUN = re.compile(r"^(?:This|That|These|Those|It|It's|He|She|They|His|Her|Their|Its|He's|She's|They're)\b")
_NAMED = re.compile(r"\s[A-Z][\w'’-]+(?:\s+(?:of\s+|de\s+|van\s+)?[A-Z][\w'’-]+)+")


def points_back(text: str) -> bool:
    t = text.strip()
    if LEANS_BACK.match(t):
        return True
    if _PRONOUN.match(t):
        return not _NAMED.search(t[t.find(" ") :])
    return False


_TIME = re.compile(
    r"\b\d{1,2}[:.]\d{2}\s*(?:[AaPp]\.?[Mm]\.?)?\s*(?:[ECMP][SD]?T|GMT|BST|UTC|CET|CEST)\b|\b\d{1,2}:\d{2}\s*[AaPp]\.?[Mm]\b"
)
_PROMO = re.compile(
    r"\b(?:click here|sign up|subscribe|find out (?:the latest|more)|read more|download (?:our|the) app|"
    r"follow (?:us|@\w+)|like us on|watch the video|scroll down|newsletter|for the latest|live blog|"
    r"tap here|get the latest|appeared first on|continue reading)\b",
    re.IGNORECASE,
)
_TERMINAL = re.compile(r"[.!?…][\"'”’)\]]*$")
# A feed's description cut short: "... the council said it would […]", "... and the…".
_TRAILS_OFF = re.compile(r"(?:…|\.\.\.|\[…\]|\[\.\.\.\])[\"'”’)\]]*$")
# A sentence cut at a title: "... paparazzi photos of the Rev."
_ENDS_AT_TITLE = re.compile(
    r"\b(?:Rev|Gov|Sen|Rep|Lt|Gen|Col|Capt|Cmdr|Adm|Maj|Sgt|Dr|Mr|Mrs|Ms|Prof|Hon|Fr|Msgr|Supt|Det|Atty|Mt|St|No)\.[\"'”’)]*$"
)


def sentence_problems(text: str) -> list[str]:
    """Why this sentence cannot open a teaser; [] when it can."""
    t = text.strip()
    if not t:
        return ["empty"]
    out: list[str] = []
    if points_back(t):
        out.append("points back")
    if clean.strip_lead(t) != t or _TIME.search(t[:80]):
        out.append("byline, dateline or time stamp")
    kind = label(t)
    if kind == "clutter" or _PROMO.search(t):
        out.append("promo or credit")
    elif kind == "caption":
        out.append("caption")
    if not _TERMINAL.search(t) or _ENDS_AT_TITLE.search(t) or _TRAILS_OFF.search(t):
        out.append("cut")
    if not quotes.balanced(t):
        out.append("unbalanced quotation")
    elif quotes.is_bare_quote(t) or (t[0] in "\"“‘'" and t.rstrip(".!?")[-1:] in "\"”’'"):
        out.append("quotation without its speaker")
    return out


def teaser_problems(text: str, *, max_words: int = 50) -> list[str]:
    """Why this teaser does not stand alone; [] for a good one.

    The first sentence must open a text (nothing points back); every sentence must be prose (no
    byline, dateline, time stamp, caption, promo) and whole; the teaser must fit max_words unless
    it is a single sentence.
    """
    t = text.strip()
    if not t:
        return ["empty"]
    sents = split_text(t) or [t]
    out = list(sentence_problems(sents[0]))
    for s in sents[1:]:
        out += [p for p in sentence_problems(s) if p != "points back" and p not in out]
    if len(t.split()) > max_words and len(sents) > 1:
        out.append("too long")
    return out
