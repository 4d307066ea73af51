"""Leave out what is not the article's prose: captions, credits, bylines, promos, related links.

Works on paragraphs (and on single sentences, for texts with no paragraph breaks). Two kinds of
clutter: DROP is removed where it stands (a credit inside the article); END marks the end of
the article body ("keep reading", "This story has been updated", a "Related" heading): what
follows it on a page is usually other articles' teasers, which are prose and would otherwise
pass every sentence test.
"""

from __future__ import annotations

import re

DROP, END = "drop", "end"

_I = re.IGNORECASE
_DROP_PATTERNS = [
    # captions and credits
    r"^(?:top |main |header |featured |lead |cover )?"
    r"(?:photo|image|picture|video|graphic|illustration)s?(?: credits?)?\s*[:|]",
    r"^(?:photo|image|picture|illustration)s?\s+(?:by|via|courtesy)\b",
    r"^\(?(?:photo|image|picture|credit)s?(?: credits?)?\s*:",
    r"^\((?:photo|image|picture|pictured|credit|getty|ap photo|reuters)\b[^)]*\)\.?$",
    r"^credits?\s*:",
    r"^(?:pictured|above|below|left|right|inset)\s*:",
    r"\b(?:getty images|shutterstock(?:\.com)?|ap photo|afp via getty images|via reuters)\)?\.?$",
    # notes and disclaimers
    r"^editor[’']?s[’']? note\b",
    r"^the (?:views|opinions) expressed\b",
    r"^(?:the )?(?:views|opinions) expressed in this (?:commentary|article|column|piece)\b",
    r"^(?:correction|clarification|disclosure)\s*:",
    r"\bcontributed (?:to )?(?:this|the) (?:report|story|article)\.?$",
    # share prompts, promos and navigation
    r"^follow (?:us|@\w+|\w+ on)\b",
    r"^(?:share|tweet|email|print|save)(?: this)?(?: (?:article|story|page))?(?: (?:on|via) \w+)?\.?$",
    r"^share (?:on|via|this)\b",
    r"^(?:subscribe|sign up)\b",
    r"\b(?:subscribe|sign up) (?:now |today )?(?:to|for) (?:our|the)\b.{0,80}\bnewsletter\b",
    r"^(?:click here|scroll down|tap here|watch the video|watch:|video:|listen:|advertisement|sponsored)\b",
    r"^(?:published|updated|posted|last updated|last modified)\s*[:.]",
    r"^(?:find out|get|for) (?:the latest|more)\b.{0,60}"
    r"\b(?:with|on|at|from|visit|go to|click|follow|sign up|download)\b",
    r"^(?:download|get) (?:our|the) (?:free )?(?:\w+ )?app\b",
    r"^(?:like us|join us|find us|follow us|connect with us) on\b",
    r"^(?:read|see|watch|more)\s*(?:more|also|next|the video|video|photos?|gallery)?\s*:",
    r"^(?:scroll down|click through|swipe) (?:for|to|below)\b",
    r"^(?:just watched|must watch|story highlights)\b",
    r"»\s*$",  # a link to a video or gallery: "Watch the rescue »"
    r"^e-?mail to a friend\b",
    r"\b(?:just watched|must watch)$",
    r"^(?:photos?|gallery|interactive|map|slideshow|infographic)\s*:",
    r"^(?:home|menu|search|log ?in|sign in|close)$",
    r"^(?:©|copyright\b|all rights reserved)",
]
_END_PATTERNS = [
    r"^(?:keep reading|continue reading|read more|read the full (?:story|article)|show less|show more)\b",
    r"^this (?:story|article|post|piece|report) (?:has been|was|is being) (?:updated|corrected)\b",
    r"^(?:related|related (?:articles|stories|coverage|content|links|reading)|more from\b.*|more on this\b.*|"
    r"latest|latest news|recommended|recommended for you|you may also like|you might also like|"
    r"trending|most (?:read|popular|viewed)|read next|see also|read also|newsletter)\s*:?$",
]
_DROP_RE = [re.compile(p, _I) for p in _DROP_PATTERNS] + [
    # a byline is "By" and names only; "By then, it was over." is prose
    re.compile(
        r"^(?:[Bb]y|[Ww]ords by|[Ww]ritten by|[Rr]eporting by)\s+"
        r"[A-Z][\w.'’-]*(?:(?:\s+|,\s*|\s+and\s+)[A-Z][\w.'’-]*){0,5}$"
    ),
]
_END_RE = [re.compile(p, _I) for p in _END_PATTERNS]

# A section label or a breadcrumb: "Reporting | QiOSK", "News › World".
_LABEL_RE = re.compile(r"^[^.!?]{1,60}\s[|›»/]\s[^.!?]{1,60}$")

# Datelines: "(CNN) --", "Rome (CNN)", "WASHINGTON (AP) —", "LONDON, England (Reuters) --".
_AGENCIES = r"CNN|AP|AFP|Reuters|UPI|Bloomberg|EFE|dpa|ANSA|Xinhua|TASS|PA|CNS|JTA|RNS|BBC|NPR|AAP|IANS|PTI"
_DATELINE_RE = re.compile(
    r"^(?:[A-Z][\w.'’-]*(?:[ ,]+[A-Z][\w.'’-]*){0,4}\s*)?\((?:" + _AGENCIES + r")(?:\s+\w+)?\)\s*(?:--|—|–|-|:)?\s*"
    r"|^[A-Z]{2,}[A-Z .'’-]*(?:,\s*[A-Z][\w. ]{1,20})?\s*(?:\([^)]{1,30}\))?\s*(?:--|—|–)\s*"
)

# Daily Mail style bylines glued to the first sentence: "By . Daily Mail Reporter . ".
_BYLINE_RE = re.compile(r"^By\s*\.\s+[^.]{1,60}\s\.\s+(?:(?:PUBLISHED|UPDATED):\s*\.[^|]*\|\s*\.\s*)*", re.MULTILINE)

# Paragraphs longer than this are article prose even when they start like a note: in texts with
# no paragraph breaks the whole article is one "paragraph".
_MAX_CLUTTER_WORDS = 80


# Time stamps: "Updated Jul 7, 2012 6:40 PM ET", "PUBLISHED: 12:34 EST, 5 May 2013", "Posted 2 hours ago".
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DAY = r"(?:mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)[a-z]*\.?,?"
_STAMP_WORD = (
    r"(?:" + _MONTH + r",?|" + _DAY + r"|\d{1,2}:\d{2}(?::\d{2})?(?:[ap]\.?m\.?)?,?|\d{1,4}(?:st|nd|rd|th)?,?|"
    r"[ap]\.?m\.?,?|[ecmpg]s?[dst]?t,?|bst|utc|cet|cest|ist|aest|hkt|sgt|jst|at|on|of|\||/|-|—|–|"
    r"ago|hours?|hrs?|minutes?|mins?|seconds?|secs?|days?|weeks?|today|yesterday)"
)
_STAMP = r"(?:" + _STAMP_WORD + r"(?:\s+|$|(?=[.|]))){1,14}"
_STAMP_LEAD = re.compile(
    r"^(?:(?:last\s+|first\s+)?(?:updated|published|posted|modified|created)\s*(?:[:.]\s*)?(?:\.\s*)?)?"
    r"(?P<stamp>" + _STAMP + r")\s*[.|]?\s*",
    _I,
)
# Without "Updated" before it, a stamp must be a date or a time: "300 Spartans fought" is prose.
_IS_DATE_OR_TIME = re.compile(r"\d{1,2}:\d{2}|\b" + _MONTH + r"\s*\d|\d\s+" + _MONTH + r"(?:\s|$)", _I)
_STAMP_ANNOUNCED = re.compile(r"^(?:last\s+|first\s+)?(?:updated|published|posted|modified|created)\b", _I)
# A byline, with a date or dateline after it: "By DEXTER FORD MAY 9, 2014 MALIBU, CALIF."; it ends
# where prose starts (a capitalised word followed by a lower-case one) or at the end.
_NAME_WORD = r"[A-Z][\w.'’-]*"
# "By Christmas the town ...", "By Tuesday, ...": prose, not a byline.
_NOT_NAMES = (
    r"(?:(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day|January|February|March|April|June|July|August|September|"
    r"October|November|December|Christmas|Easter|Then|Now|Noon|Midnight|Dawn|Dusk|Nightfall|Night|Day|Tomorrow|"
    r"Today|Tonight|Year|Summer|Winter|Spring|Autumn|Fall|Evening|Morning|Lunchtime|Law|Far|Default|Design|"
    r"Nature|Comparison|Contrast|The|This|That|These|Those|All|Some|Most|Many|Using|Taking|Making|Doing|Being|"
    r"Having|Getting|Going|Adding|Putting|Comparing|Combining|Contrast|Mid|Late|Early|End|Next|Last)\b"
)
_BYLINE_LEAD = re.compile(
    r"^(?:By|BY|Words by|Written by|Reporting by)\s+(?!"
    + _NOT_NAMES
    + r")"
    + _NAME_WORD
    + r"(?:(?:\s+|,\s*|\s+and\s+|\s+(?:in|for)\s+)(?:"
    + _NAME_WORD
    + r"|\d{1,4},?|\||[-—–])){0,14}\s*[.,|]?\s*"
    r"(?=$|[-—–]+\s|[\"“‘']?[A-Z][a-z]*\s+[a-z]|(?:Updated|Published|Posted|UPDATED|PUBLISHED|POSTED)\b)"
)
# A news agency's dateline inside a sentence: "... MIAMI, Florida (CNN) -- A man ...".
_AGENCY_DATELINE = re.compile(
    r"(?:(?:[A-Z][\w.'’-]*[ ,]+){0,4})?\((?:" + _AGENCIES + r")(?:\s+\w+)?\)\s*(?P<dash>--|—|–|-|:)?\s*", _I
)
# A link to a video or gallery glued before a sentence: "Watch the rescue » Officials said ...".
_LINK_LEAD = re.compile(r"^(?:Watch|See|Read|Listen|Explore|Look|View)\b[^.!?»]{0,120}»\s*")
# A label glued before the first sentence: "Story highlights ...", "NEW: ...", "BREAKING: ...".
_LABEL_LEAD = re.compile(r"^(?:story highlights\b|(?:new|breaking(?: news)?|exclusive|update|live|latest)\s*:)\s*", _I)
# A share button or promo glued before a sentence: "Share this article The council agreed ...".
_PROMO_LEAD = re.compile(
    r"^(?:share this(?: article| story| page)?|advertisement|scroll down for (?:video|more)|"
    r"follow us on (?:twitter|facebook|instagram|social)|e-?mail to a friend)\s*[.:|]?\s+(?=[A-Z\"“‘'])",
    _I,
)
_LEADING_MARK = re.compile(r"^(?:[-—–•·*>|.]+\s*)+")


def strip_lead(sentence: str) -> str:
    """A sentence without what was glued before its first word: a stray dash, a byline, a time stamp,
    a dateline. Empty if nothing else was there."""
    t = sentence.strip()
    for _ in range(4):
        before = t
        t = _LEADING_MARK.sub("", t)
        t = _LINK_LEAD.sub("", t)
        t = _LABEL_LEAD.sub("", t)
        t = _PROMO_LEAD.sub("", t)
        m = _BYLINE_LEAD.match(t)
        if m:
            t = t[m.end() :]
        m = _STAMP_LEAD.match(t)
        if m and any(ch.isdigit() for ch in m.group("stamp")):
            rest = t[m.end() :]
            if _STAMP_ANNOUNCED.match(t) or (
                _IS_DATE_OR_TIME.search(m.group("stamp")) and (not rest or rest[:1].isupper() or rest[:1] in "\"“‘'")
            ):
                t = rest
        m = _AGENCY_DATELINE.search(t, 0, 300) if "(" in t[:300] else None
        if m and (m.start() == 0 or m.group("dash")) and m.end() < len(t):
            t = _capital(t[m.end() :])
        m = _DATELINE_RE.match(t)
        if m and m.end() < len(t):
            rest = t[m.end() :]
            # An all-capitals text has no datelines to tell apart from its sentences.
            if (rest[:1].isupper() or rest[:1] in "\"“‘'") and any(ch.islower() for ch in rest):
                t = rest
        if t == before:
            break
    return t.strip()


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:] if text[:1].islower() else text


_GOES_ON = re.compile(r"[.!?][\"'”’)]*\s+[\"'“‘(]?[A-Z][A-Za-z]+(?:\s+\S+){4,}")
_LONG_ENOUGH = 12  # words: a label glued to a sentence, in a text with nothing else ("Story highlights ...")


def kind(text: str, *, mixed: bool = False) -> str | None:
    """DROP, END or None (prose or an ordinary heading).

    mixed: a paragraph that goes on after its clutter is None, to be judged sentence by sentence.
    """
    t = text.strip()
    if not t:
        return DROP
    if len(t.split()) > _MAX_CLUTTER_WORDS:
        return None
    for rx in _END_RE:
        if rx.search(t):
            return None if mixed and len(t.split()) >= _LONG_ENOUGH else END
    for rx in _DROP_RE:
        m = rx.search(t)
        if m:
            # Clutter at the end of a paragraph that says more before it (a credit, a link to a
            # video) goes sentence by sentence; so does any clutter when nothing else is left.
            goes_on = _GOES_ON.search(t)
            if goes_on and (mixed or m.start() > goes_on.start()):
                return None
            return None if mixed and len(t.split()) >= _LONG_ENOUGH else DROP
    if _LABEL_RE.match(t) and len(t.split()) <= 8:
        return DROP
    m = _DATELINE_RE.match(t)
    if m and m.end() >= len(t.rstrip()):
        return DROP  # a dateline on a line of its own
    return None


def strip_dateline(text: str) -> str:
    text = _BYLINE_RE.sub("", text, count=1)
    m = _DATELINE_RE.match(text)
    if m and m.end() < len(text):
        rest = text[m.end() :]
        if rest[:1].isupper() or rest[:1] in "\"“‘'":
            return rest
    return text


def is_prose_paragraph(text: str) -> bool:
    """Ends like a sentence and is long enough to be one (headings, kickers and names are not)."""
    t = text.rstrip()
    if t.endswith("»"):  # prose that ends in a link to a video: judged without the link
        t = t[: max(t.rfind(". "), t.rfind("? "), t.rfind("! ")) + 1]
    t = t.rstrip(" \"'”’)]")
    return len(text.split()) >= 6 and t[-1:] in ".!?…:;"


def main_body(paragraphs: list[str]) -> list[str]:
    """The article's own paragraphs, in order, without clutter.

    Paragraphs are cut into runs at END markers; the run with the most prose words is the
    article. Inside it, DROP paragraphs go, and so does everything before the first prose
    paragraph (title, dek, byline, section label) and after the last one.
    """
    body = _main_body(paragraphs, mixed=False)
    if any(is_prose_paragraph(p) for p in body):
        return body
    # No prose left: the clutter was glued to the article ("Photo: ... . The council agreed ...",
    # a whole article without breaks behind "Story highlights"); judge its sentences instead.
    return _main_body(paragraphs, mixed=True)


def _main_body(paragraphs: list[str], *, mixed: bool) -> list[str]:
    runs: list[list[str]] = [[]]
    for p in paragraphs:
        k = kind(p, mixed=mixed)
        if k == END:
            runs.append([])
        elif k is None:
            runs[-1].append(p)

    def prose_words(run: list[str]) -> int:
        return sum(len(p.split()) for p in run if is_prose_paragraph(p))

    best = max(runs, key=prose_words)  # max keeps the first of equals: deterministic
    flags = [is_prose_paragraph(p) for p in best]
    if not any(flags):
        return best
    first = flags.index(True)
    last = len(flags) - 1 - flags[::-1].index(True)
    body = best[first : last + 1]
    if body:
        body[0] = strip_dateline(body[0])
    return body
