"""Plain text to paragraphs: blank lines separate paragraphs; single newlines are ambiguous.

A single newline is either a hard wrap inside a paragraph (e-mail, text files) or the only
separator between blocks of a page copied as text (a headline, a credit, a paragraph). Lines of a
block are joined when it looks wrapped: its lines are long and mostly do not end a sentence.
"""

from __future__ import annotations

import re
import unicodedata

_WS = re.compile(r"[ \t\r\f\v\u00a0\u2009\u200a\u202f]+")
_ENDS_SENTENCE = re.compile(r"[.!?…:][\"'”’)\]]*$")


def _wrapped(lines: list[str]) -> bool:
    body = lines[:-1]
    if not body:
        return True
    long_lines = sum(1 for ln in body if len(ln) >= 40)
    open_ends = sum(1 for ln in body if not _ENDS_SENTENCE.search(ln))
    return long_lines >= 0.8 * len(body) and open_ends >= 0.5 * len(body)


def paragraphs(text: str) -> list[str]:
    if not text:
        return []
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    out: list[str] = []
    for block in re.split(r"\n[ \t]*\n", text):
        lines = [_WS.sub(" ", ln).strip() for ln in block.split("\n")]
        lines = [ln for ln in lines if ln]
        if not lines:
            continue
        if _wrapped(lines):
            out.append(" ".join(lines))
        else:
            out.extend(lines)
    return out
