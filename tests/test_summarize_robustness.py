"""The summarizer on text as it really arrives: tokenized, in capitals, without paragraph breaks, with
datelines, bylines, time stamps, captions and promos glued in, and with abbreviations that look like
sentence ends. Whatever the input, an article with a prose sentence gets a teaser and an excerpt."""

from __future__ import annotations

import re

import pytest

from digest.summarize import SummaryLimits, summarize_html, summarize_text
from digest.summarize.checks import teaser_problems
from digest.summarize.tokens import detokenize, is_tokenized

# -- tokenized text ----------------------------------------------------------------------------

TOKENIZED = (
    "The club said on Monday that it would appeal against the three-match ban . However , the manager said "
    "the decision was `` unfair and wrong '' and that his players had done nothing to deserve it . The "
    "players ' union did n't comment on the ruling . The club 's lawyers -LRB- who met on Sunday -RRB- will "
    "file papers with the league this week . Fans gathered outside the ground on Tuesday to protest ."
)


def test_tokenized_text_gets_an_excerpt_of_whole_prose_sentences():
    s = summarize_text(TOKENIZED)
    assert s.excerpt.startswith("The club said on Monday that it would appeal against the three-match ban.")
    assert s.teaser.startswith("The club said on Monday")
    for part in (s.teaser, s.excerpt):
        assert not re.search(r" [.,;:!?]|-LRB-|-RRB-|``|''| n't| 's\b", part), part
    assert "didn't comment" in s.excerpt and "club's lawyers (who met on Sunday)" in s.excerpt
    assert '"unfair and wrong"' in s.excerpt


def test_lower_cased_tokenized_text_is_split_into_sentences_that_start_with_capitals():
    s = summarize_text(TOKENIZED.lower())
    assert s.excerpt.startswith("The club said on monday")
    # Split into sentences (not one run-on sentence over the limit), each starting with a capital.
    assert len(s.excerpt.split()) <= 90 and s.excerpt.count(". ") >= 2
    assert all(sent[0].isupper() for sent in re.split(r"(?<=[.!?]) ", s.excerpt))


def test_every_sentence_ending_in_a_spaced_stop_is_not_read_as_a_caption():
    # A caption rule for scraped pages ("... in March .") must not drop a whole tokenized article.
    sentences = [
        f"Officials in district {n} said on Tuesday that the {n} new schools would open in autumn ." for n in "abcdefgh"
    ]
    s = summarize_text(" ".join(sentences))
    assert s.excerpt and s.teaser
    assert s.excerpt.startswith("Officials in district a said")


def test_one_spaced_stop_in_an_ordinary_article_does_not_make_it_tokenized():
    text = (
        "The ferry will run every hour from June, the council said. Scroll down for video . "
        "Residents had asked for a better service for years, and the operator has hired new crew."
    )
    assert not is_tokenized(text)
    s = summarize_text(text)
    assert "Scroll down" not in s.excerpt


def test_a_caption_that_restates_the_lede_is_left_out_where_nothing_marks_it_as_one():
    # Tokenized, a glued caption ends in " ." like every sentence: it is left out for repeating the lede.
    text = (
        "Usain Bolt will compete at the World Relays in the Bahamas next month , the Jamaica athletics body "
        "said . Usain Bolt has confirmed he will run for Jamaica at the World Relays in the Bahamas . The "
        "six-time Olympic champion will run in the sprint relay on May 2 . Bolt said he was fit ."
    )
    s = summarize_text(text)
    assert s.excerpt.startswith("Usain Bolt will compete at the World Relays")
    assert "has confirmed" not in s.excerpt
    assert "The six-time Olympic champion will run" in s.excerpt and "Bolt said he was fit." in s.excerpt


def test_detokenize_joins_punctuation_clitics_quotes_and_brackets():
    assert detokenize("He did n't say , `` It 's over '' -LRB- at first -RRB- .") == (
        "He didn't say, \"It's over\" (at first)."
    )
    assert detokenize("The players ' union paid $ 5 .") == "The players' union paid $5."


# -- capitals, paragraph breaks --------------------------------------------------------------------


def test_all_capitals_with_a_dateline_and_title_abbreviations():
    text = (
        "WASHINGTON (AP) — GOV. JERRY BROWN SIGNED THE WATER BILL ON MONDAY AFTER MONTHS OF TALKS WITH FARMERS. "
        "THE BILL SETS LIMITS ON PUMPING FROM RIVERS IN THE NORTH OF THE STATE. SEN. JOHN SMITH SAID IT WAS A "
        "GOOD DAY FOR FARMERS AND FOR FISH."
    )
    s = summarize_text(text)
    assert s.teaser.startswith("GOV. JERRY BROWN SIGNED THE WATER BILL")
    assert "(AP)" not in s.excerpt and "SEN. JOHN SMITH SAID" in s.excerpt


def test_a_whole_article_on_one_line_keeps_its_sentences_and_loses_its_byline():
    text = (
        "By DEXTER FORD MAY 9, 2014 MALIBU, CALIF. — The new electric motorcycle from a small Los Angeles "
        "company can reach 60 miles an hour in under three seconds. It costs about $20,000. The company said "
        "it would build 500 of them this year in a former aircraft hangar."
    )
    s = summarize_text(text)
    assert s.teaser.startswith("The new electric motorcycle")
    assert s.excerpt.startswith("The new electric motorcycle")
    assert "DEXTER" not in s.excerpt and not s.excerpt.startswith("—")


# -- datelines, bylines, time stamps, captions, promos ---------------------------------------------

RAW_STORY = """Story highlights
NEW: Suspect in custody after chase

By John Smith, CNN

MIAMI, Florida (CNN) -- A man who led police on a two-hour chase through Miami in a stolen truck was arrested
on Monday, officials said.

The chase began when officers tried to stop the truck on Interstate 95 for speeding near the airport.

Photo: A police helicopter follows the truck over downtown Miami on Monday.

No one was hurt, police said, though two patrol cars were damaged when the truck swerved across three lanes.
"""


def test_a_raw_news_story_loses_its_highlights_byline_dateline_and_caption():
    s = summarize_text(RAW_STORY)
    assert s.excerpt.startswith("A man who led police on a two-hour chase")
    assert s.teaser.startswith("A man who led police")
    for junk in ("(CNN)", "MIAMI, Florida", "By John Smith", "highlights", "Photo:", "helicopter"):
        assert junk not in s.excerpt and junk not in s.teaser, junk


@pytest.mark.parametrize(
    "dateline",
    [
        "MIAMI, Florida (CNN) -- ",
        "(CNN)",
        "Rome (CNN) ",
        "LONDON, England (Reuters) - ",
        "WASHINGTON (AP) — ",
        "NEW YORK — ",
    ],
)
def test_datelines_are_left_out_of_every_paragraph(dateline):
    text = (
        "Harbour talks resume\n\n"
        f"{dateline}Three harbour towns agreed on Tuesday to build a shared tidal plant after years of studies.\n\n"
        f"{dateline}The plant would supply about a third of the electricity used by the towns, the councils said."
    )
    s = summarize_text(text)
    assert s.excerpt.startswith("Three harbour towns agreed")
    assert "(" not in s.excerpt and "—" not in s.excerpt and " -- " not in s.excerpt
    assert "The plant would supply" in s.excerpt


def test_links_to_videos_and_galleries_are_not_summary():
    text = (
        "LONDON, England (CNN) -- Rescuers pulled two climbers from a crevasse on Mont Blanc on Sunday, "
        "French police said. Watch the rescue » Both were taken to hospital in Chamonix with broken legs. "
        "See photos of the mountain »\n\nE-mail to a friend\n\nThe climbers had been missing since Friday."
    )
    s = summarize_text(text)
    assert s.excerpt.startswith("Rescuers pulled two climbers")
    assert "Both were taken to hospital" in s.excerpt
    for junk in ("»", "Watch the rescue", "See photos", "E-mail"):
        assert junk not in s.excerpt and junk not in s.teaser, junk


def test_a_glued_dateline_after_highlights_in_a_text_without_breaks():
    text = (
        "Story highlights Police say the suspect was armed NEW: Suspect in custody MIAMI, Florida (CNN) -- A man "
        "who led police on a chase through Miami was arrested on Monday, officials said. The chase began on "
        "Interstate 95. No one was hurt."
    )
    s = summarize_text(text)
    assert s.excerpt.startswith("A man who led police on a chase")


def test_time_stamps_and_promos_are_not_summary():
    text = (
        "Updated Jul 7, 2012 6:40 PM ET\n\n"
        "The storm that hit the Gulf Coast on Saturday knocked out power to 200,000 homes, utility companies said. "
        "Crews from six states were on their way to help restore it.\n\n"
        "Find out the latest with our live storm tracker.\n\n"
        "Last updated at 4:05 PM on 12th May 2011 . The governor declared an emergency in four counties."
    )
    s = summarize_text(text)
    assert s.teaser.startswith("The storm that hit the Gulf Coast")
    for junk in ("Updated", "6:40", "Find out the latest", "4:05"):
        assert junk not in s.excerpt and junk not in s.teaser, junk


def test_a_time_stamp_glued_to_the_first_sentence_is_cut_off():
    s = summarize_text(
        "Updated Jul 7, 2012 6:40 PM ET The storm hit the coast on Saturday, officials said. Crews came."
    )
    assert s.teaser.startswith("The storm hit the coast")


def test_captions_are_not_summary():
    html = (
        "<p>The council voted on Tuesday to close the old library and move its books to the school, ending a "
        "year of argument over the building's future.</p>"
        "<p>Devastated: Margaret Hill, 81, who has used the library for sixty years, said she would miss it.</p>"
        "<p>The old library pictured in 1950 (Photo: Getty Images)</p>"
        "<p>The school will open its doors to the public on weekday evenings from September.</p>"
    )
    s = summarize_html(html)
    assert s.excerpt.startswith("The council voted on Tuesday")
    assert "Devastated:" not in s.excerpt and "Getty" not in s.excerpt
    assert "The school will open" in s.excerpt


def test_a_daily_mail_byline_and_stamps_glued_before_the_first_sentence():
    text = (
        "By . Daily Mail Reporter . PUBLISHED: . 12:34 EST, 5 May 2013 . | . UPDATED: . 15:36 EST, 5 May 2013 . "
        "The bishop of a rural diocese has resigned after a report criticised his handling of complaints. "
        "He had led the diocese for eleven years."
    )
    s = summarize_text(text)
    assert s.teaser.startswith("The bishop of a rural diocese")


# -- abbreviations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sentence",
    [
        "Reporters waited for hours to get paparazzi photos of the Rev. Jesse Jackson and his family on Sunday.",
        "Gov. Jay Nixon said on Monday that the state would pay for the repairs to the flooded roads.",
        "Lawmakers led by Sen. Claire McCaskill asked the agency to explain the delays at the border.",
        "The U.S. Army said it would send three more companies to the region before the end of the year.",
        "The company ranked No. 3 in the list of the country's largest employers for the second year.",
        "The parade will pass through St. Louis on its way to the river on Saturday afternoon.",
        "Police said Lt. Gen. Mark Adams had been told about the complaints in March.",
    ],
)
def test_abbreviations_do_not_cut_a_sentence(sentence):
    text = f"{sentence} Officials said more details would follow. The next meeting is in June."
    s = summarize_text(text)
    assert s.teaser.startswith(sentence)
    assert s.excerpt.startswith(sentence)
    assert not teaser_problems(s.teaser)


# -- never empty -------------------------------------------------------------------------------------

PROSE = (
    "The council agreed on Tuesday to rebuild the harbour wall that collapsed in the January storms. "
    "Work will start in April and is expected to take two years. "
    "Fishermen said the decision came too late for the winter season."
)


def _variants(text: str) -> list[str]:
    tokenized = re.sub(r"([.,])(\s|$)", r" \1\2", text)
    return [
        text,
        text.upper(),
        text.lower(),
        tokenized,
        tokenized.lower(),
        text.replace(". ", ".\n\n"),
        "MIAMI, Florida (CNN) -- " + text,
        "By JANE DOE MAY 9, 2014 MALIBU, CALIF. — " + text,
        "Updated Jul 7, 2012 6:40 PM ET " + text,
        "— " + text,
        "Photo: A view of the harbour. " + text,
        text + " Find out the latest with our live blog.",
        "That's according to the council. " + text,
        re.sub(r"\.( |$)", r" .\1", text),  # stops spaced, commas not
        # Labels glued to the text with no stop between (a page copied as one line of text).
        "Share this article " + text,
        "Read more: Something else " + text,
        "Story highlights " + tokenized.lower(),
        "BY JOHN SMITH " + text.upper(),
        "Editor's note: This is a note. " + text.upper(),
        'He said "the wall would be rebuilt. ' + text,  # a quotation never closed
        "-LRB- CNN -RRB- The council agreed on Tuesday to rebuild the harbour wall . ",  # one tokenized sentence
    ]


@pytest.mark.parametrize("variant", range(len(_variants(PROSE))))
@pytest.mark.parametrize("limits", [SummaryLimits(), SummaryLimits(teaser_words=12, excerpt_words=20)])
def test_an_article_with_prose_always_gets_a_teaser_and_an_excerpt(variant, limits):
    text = _variants(PROSE)[variant]
    s = summarize_text(text, limits=limits)
    assert s.teaser.strip() and s.excerpt.strip(), text
    if not text.startswith("Read more"):  # where a glued link's title ends cannot be told
        assert "harbour" in (s.teaser + s.excerpt).lower()
    assert summarize_html(f"<p>{text}</p>", limits=limits).excerpt.strip()


def test_a_tease_before_the_lede_gives_way_to_the_lede_and_the_excerpt_reads_on_from_it():
    text = (
        "(CNN) -- Ever wondered who drives in the old town? The city council voted on Tuesday to ban cars "
        "from the old town from next spring, after two years of public meetings. Residents with permits may "
        "still drive to their homes. Shop owners fear that delivery vans will be stuck at the gates each "
        "morning. Delivery vans already queue at the gates, shop owners told the council. Shop owners want "
        "delivery vans allowed in before ten each morning. The council said delivery vans could use the "
        "gates at night."
    )
    s = summarize_text(text)
    # The lede and what follows it, in order, as Lead-3 would read it: not the most central sentences.
    assert s.excerpt.startswith(
        "The city council voted on Tuesday to ban cars from the old town from next spring, after two years "
        "of public meetings. Residents with permits may still drive to their homes. Shop owners fear"
    )
    assert s.teaser.startswith("The city council voted on Tuesday")


@pytest.mark.parametrize(
    "lede",
    [
        "12 Years a Slave won the award for best picture at the ceremony in Los Angeles on Sunday.",
        "300 Spartans held the pass at Thermopylae for three days, the museum's new exhibition recalls.",
        "By Christmas Day the town had run out of turkeys, the butchers' association said on Friday.",
        "By Monday, the storm had passed and the ferries were running to the islands again.",
        "May 9 was the busiest day the airport has ever had, with more than 200,000 passengers.",
        "A spokesman told the Associated Press (AP) that the company would appeal against the fine.",
        "NATO — the alliance of 32 countries — said on Friday it would send more ships to the Baltic.",
    ],
)
def test_prose_that_starts_like_a_stamp_byline_or_dateline_is_kept_whole(lede):
    s = summarize_text(f"{lede} Officials said more details would follow on Monday.")
    assert s.excerpt.startswith(lede) and s.teaser.startswith(lede)
