"""The `wrap` filter of the text part: textwrap.fill's lines, at spaces only, made faster."""

from __future__ import annotations

import random
import textwrap

import pytest

from digest.email.templates import wrap_text

URL = "https://meridian-review.example.org/2026/11/a-very-long-slug-of-an-article/?utm_source=x"
# Words, hyphenated names, a URL longer than any width, and every kind of white space textwrap treats
# apart: ASCII ones (made spaces), tabs (expanded), and no-break and em spaces (words to its regex,
# blank to str.strip).
PIECES = ["a", "bb", "word", "Jean-Baptiste", URL, " ", " ", "  ", "\t", "\xa0", "\x0b", "\x0c", "\r", "\n", "é"]
PIECES += ["\u2003", "-", "[3]", "\xa0[12]", "   "]


def textwrap_fill(text: str, width: int) -> str:
    return "\n".join(
        textwrap.fill(line, width, break_long_words=False, break_on_hyphens=False) if line.strip() else ""
        for line in text.splitlines()
    )


@pytest.mark.parametrize("width", [1, 4, 10, 30, 68, 72])
def test_wrap_text_gives_textwrap_s_lines(width):
    rng = random.Random(width)
    for _ in range(3000):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 40)))
        assert wrap_text(text, width) == textwrap_fill(text, width), repr(text)


@pytest.mark.parametrize("width", [1, 4, 10, 30, 68, 72])
def test_words_parted_by_single_spaces_wrap_as_textwrap_wraps_them(width):
    # The common case (prose), which the filter wraps without splitting the line into chunks.
    rng = random.Random(width)
    words = ["a", "bb", "word", "Jean-Baptiste", URL, "é", "[3]", "\xa0[12]", "x" * 9, "y" * 30, "\u2003z"]
    for _ in range(3000):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 40)))
        assert wrap_text(text, width) == textwrap_fill(text, width), repr(text)


def test_the_sample_issue_s_paragraphs_wrap_as_textwrap_wraps_them():
    from tests.render_sample import all_articles, sample_content

    for article in all_articles(sample_content()):
        for text in (article["title"], article.get("teaser") or "", article.get("excerpt") or ""):
            for width in (68, 72):
                assert wrap_text(text, width) == textwrap_fill(text, width)


def test_a_width_of_zero_is_refused_as_textwrap_refuses_it():
    with pytest.raises(ValueError, match="width"):
        wrap_text("a b", 0)
