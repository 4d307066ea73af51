"""Teasers that stand alone: what `teaser_problems` flags, and which sentence the summarizer picks."""

from __future__ import annotations

from pathlib import Path

import pytest

from digest.content.summaries import clean_dek
from digest.summarize import SummaryLimits, summarize_text
from digest.summarize.checks import teaser_problems

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "000_08c6c7b936ebf9b5.txt"


@pytest.mark.parametrize(
    "teaser, problem",
    [
        ("By DEXTER FORD MAY 9, 2014 MALIBU, CALIF.", "byline, dateline or time stamp"),
        ("MIAMI, Florida (CNN) -- A man was arrested after a chase on Monday.", "byline, dateline or time stamp"),
        ("Updated Jul 7, 2012 6:40 PM ET. Find out the latest with our live blog.", "byline, dateline or time stamp"),
        ("The storm hit the coast overnight. Find out the latest with our live blog.", "promo or credit"),
        ("Reporters waited outside the church for paparazzi photos of the Rev.", "cut"),
        ("The council said the ferry would run every hour from June and", "cut"),
        ("Ministers met in the capital to settle a long quarrel over […]", "cut"),
        ("Devastated: Dawn, who has had seven miscarriages, said she would try again.", "caption"),
        ("— Mike Glass, who ran the hardware store for 40 years, died on Friday.", "byline, dateline or time stamp"),
        ("That's according to figures released on Tuesday by the regulator.", "points back"),
        ("The company, which makes chips for phones, said profits fell by a third.", "points back"),
        ("The Reuters report did not indicate what, if anything, sparked the turn.", "points back"),
        ("This is the embarrassing moment a guard slipped and fell.", "points back"),
        ("It was the worst storm in a decade, officials said.", "points back"),
        ("He opened the store in 1962 with a loan from his father.", "points back"),
        ("She said the decision was unfair.", "points back"),
        ("They will file papers with the league this week.", "points back"),
        ("These figures are the highest since records began.", "points back"),
        ("But the council said it had no money for the repairs.", "points back"),
        ("And the operator has hired eight new crew members.", "points back"),
        ("However, the manager said the decision was unfair.", "points back"),
        ("He told Reuters the plan would fail.", "points back"),
        ("The 19-year-old has been announced as the face of the campaign.", "points back"),
        ("The French coach admits Liverpool could use their interest as leverage.", "points back"),
        ("'It is a long way off, but it is a night to celebrate.'", "quotation without its speaker"),
        ("The post Harbour talks resume appeared first on Coastal News.", "promo or credit"),
        ("", "empty"),
    ],
)
def test_bad_teasers_are_flagged(teaser, problem):
    assert problem in teaser_problems(teaser)


@pytest.mark.parametrize(
    "teaser",
    [
        "The European Central Bank raised interest rates on Thursday for the third time this year.",
        "Italy is coping with a rising wave of migrants from Africa and the Middle East.",
        "Heat waves in southern Europe have become longer and more frequent, a study found.",
        "Theresa May will meet the leaders of the devolved governments on Monday.",
        "Gov. Jay Nixon said the state would pay for the repairs. Work starts in April.",
        "The U.S. Army said it would send three more companies to the region.",
        "Three harbour towns agreed to build a tidal plant. It will power a third of their homes.",
        '"We are not going anywhere," the mayor said after the vote on Tuesday.',
        "Thousands of people marched through the capital on Saturday.",
        # A pronoun that points forward, to a name in the same sentence, opens a lede.
        "He may not be playing much at Manchester United but Anders Lindegaard has a lot to smile about.",
        "It's crunch time at the top of the Premier League as Arsenal host Chelsea on Sunday.",
        "There's not been a lot to laugh about this season at Doncaster Rovers.",
        "The England coach John Peacock has named his squad for next month's championship.",
    ],
)
def test_good_teasers_are_not_flagged(teaser):
    assert teaser_problems(teaser) == []


def test_a_multi_sentence_teaser_over_the_ceiling_is_too_long():
    teaser = " ".join(["The council met on Tuesday to discuss the harbour wall and the ferry timetable."] * 5)
    assert "too long" in teaser_problems(teaser)


# -- which sentence the summarizer picks ----------------------------------------------------------------

LONG_LEDE = (
    "In a statement early on Friday, the foreign minister said the government would give the talks a few "
    "more days to see whether progress could be made on a ceasefire between the two sides, and if not, "
    "it would move on."
)  # 41 words: over the 35-word teaser limit, under the 50-word ceiling


def test_a_lede_over_the_teaser_limit_but_under_the_ceiling_is_the_teaser_whole():
    text = (
        f"{LONG_LEDE} The report did not say what had sparked the turn. Officials in the capital "
        "declined to comment on the statement."
    )
    s = summarize_text(text)
    assert s.teaser == LONG_LEDE
    assert teaser_problems(s.teaser) == []


def test_a_lede_that_points_back_gives_way_to_the_first_sentence_that_stands_alone():
    text = (
        "That's according to figures released on Tuesday by the regulator in Brussels. "
        "Acme Corp cut 2,000 jobs in Europe last year after demand for its phone chips fell by a third. "
        "It plans to cut more."
    )
    s = summarize_text(text)
    assert s.teaser.startswith("Acme Corp cut 2,000 jobs")
    assert teaser_problems(s.teaser) == []


def test_a_sentence_that_points_back_is_used_only_when_nothing_else_exists():
    s = summarize_text("It was the worst storm in a decade, officials in the three coastal counties said on Monday.")
    assert s.teaser.startswith("It was the worst storm")


def test_teasers_stand_alone_with_small_limits_too():
    limits = SummaryLimits(teaser_words=12, excerpt_words=30)
    text = (
        "The council agreed on Tuesday to rebuild the harbour wall that collapsed in the January storms. "
        "It will cost four million pounds. Work will start in April."
    )
    s = summarize_text(text, limits=limits)
    assert s.teaser.startswith("The council agreed on Tuesday")  # 16 words: within the 17-word ceiling
    assert teaser_problems(s.teaser, max_words=limits.teaser_ceiling) == []


@pytest.mark.skipif(not REFERENCE.exists(), reason="../shared (the reference page) is not checked out here")
def test_the_reference_pages_teaser_is_its_first_real_sentence():
    s = summarize_text(REFERENCE.read_text(encoding="utf-8"))
    assert s.teaser.startswith("In a dramatic statement early this morning, Secretary of State Marco Rubio")
    assert teaser_problems(s.teaser) == []


# -- the publisher's dek ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dek, clean",
    [
        ("Four coastal states settle a long quarrel over fishing quotas.", True),
        ("  Four coastal states settle a long\nquarrel over fishing quotas.  ", True),
        ("But if we are going to threaten, there needs to be some clear demands first", False),
        ("Ministers from four coastal states met in the capital to settle a […]", False),
        ("Ministers from four coastal states met in the capital to…", False),
        ("The post Harbour talks resume appeared first on Coastal News.", False),
        ("Updated Jul 7, 2012 6:40 PM ET", False),
        (" ".join(["Ministers met again."] * 20), False),
        (None, False),
        ("", False),
    ],
)
def test_a_dek_is_the_teaser_only_when_it_is_clean_prose(dek, clean):
    got = clean_dek(dek, SummaryLimits())
    assert (got is not None) == clean
    if clean:
        assert got == "Four coastal states settle a long quarrel over fishing quotas."
