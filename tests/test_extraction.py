"""The one main-text extraction path: which candidate wins, what is rejected as boilerplate, how
bytes are decoded, and that gathering and `digest excerpt` read a page the same way."""

from __future__ import annotations

import json

import pytest

from digest.gather.pages import parse_page
from digest.summarize import summarize_html, summarize_page
from digest.summarize.extract import (
    ARTICLE,
    BLOCKS,
    JSON_LD,
    TRAFILATURA,
    decode_html,
    extract_article,
    is_boilerplate,
)
from digest.summarize.markup import page_paragraphs

URL = "https://harbour-news.example.org/2026/11/dredging-plan"
TITLE = "Harbour approves dredging plan"
STORY = [
    "The harbour authority approved a plan on Monday to dredge the northern channel, ending a dispute "
    "that had kept larger ships away from the port for most of the year.",
    "Engineers expect the work to take eleven weeks and to cost about four million euros, most of it "
    "paid by a regional fund set up after last winter's storms.",
    "Fishermen who use the channel at night said they had been consulted late, but most welcomed a "
    "decision that had been put off three times since the spring.",
    "The first dredger is due to arrive from Rotterdam next month, and the authority said shipping "
    "would be guided around the works by temporary buoys.",
]
PARAGRAPHS = "".join(f"<p>{p}</p>" for p in STORY)
COOKIES = (
    "We use cookies and similar technologies to improve your experience, to show you personalised "
    "content and ads, and to analyse our traffic. By clicking Accept you consent to our use of cookies "
    "as described in our privacy policy and cookie policy. You can change your consent settings at any "
    "time in the privacy settings."
)
COPYRIGHT = "Copyright © 2026 Harbour News Media Group Ltd. All rights reserved."
RELATED = ["Port strike ends after two weeks of talks", "New ferry route to open in June", "Storm bill hits a record"]


def page(body: str, head: str = "") -> str:
    return f"<html><head><meta charset='utf-8'><title>{TITLE}</title>{head}</head><body>{body}</body></html>"


def has_story(text: str) -> bool:
    return all(p in text for p in STORY)


def json_ld(body: str, kind: str = "NewsArticle") -> str:
    data = {"@context": "https://schema.org", "@type": kind, "headline": TITLE, "articleBody": body}
    return f"<script type='application/ld+json'>{json.dumps(data)}</script>"


def test_json_ld_article_body_wins_over_a_truncated_page_when_long_enough():
    full = "\n\n".join(STORY * 2)  # the publisher's whole text; the page shows two paragraphs
    shown = f"<p>{STORY[0]}</p><p>{STORY[1]}</p><p>Subscribe to read more.</p>"
    found = extract_article(page(f"<article><h1>{TITLE}</h1>{shown}</article>", json_ld(full)), URL)
    assert found.method == JSON_LD
    assert found.paragraphs == tuple(STORY * 2)


def test_json_ld_article_body_too_short_or_of_another_article_is_not_taken():
    short = extract_article(page(f"<article>{PARAGRAPHS}</article>", json_ld(STORY[0])), URL)
    assert short.method == TRAFILATURA and has_story(short.text)
    other_story = " ".join(["A different story about the city council budget and its long debate."] * 12)
    other = extract_article(page(f"<article>{PARAGRAPHS}</article>", json_ld(other_story)), URL)
    assert other.method == TRAFILATURA and has_story(other.text) and "city council" not in other.text


def test_json_ld_article_body_the_page_shows_wins_over_an_extraction_of_another_part_of_the_page():
    library = [
        "The city council voted on Tuesday to extend the opening hours of the central library until ten "
        "in the evening on weekdays, starting in January.",
        "Librarians said the change would cost about two hundred thousand euros a year, which the council "
        "plans to cover from its culture budget.",
        "The council will review the hours again after a year, when it has figures on how many people use "
        "the library in the late evening.",
    ]
    promo = "<div class='promo'>" + "".join(f"<p>{p}</p>" for p in library) + "</div>"
    # Without the publisher's signal the extractor takes the promoted story...
    assert extract_article(page(f"{promo}<aside>{PARAGRAPHS}</aside>"), URL).paragraphs == tuple(library)
    # ...with it, the text the page shows and JSON-LD names wins.
    found = extract_article(page(f"{promo}<aside>{PARAGRAPHS}</aside>", json_ld("\n\n".join(STORY))), URL)
    assert found.method == JSON_LD and found.paragraphs == tuple(STORY)


def test_json_ld_bounds_an_extraction_that_took_more_than_the_article():
    extra = "<p>Harbour News is a member of the regional press council and answers every reader who writes.</p>"
    html = page(f"<article>{PARAGRAPHS}{extra}</article>", json_ld("\n\n".join(STORY * 2)))
    found = extract_article(html, URL)
    assert has_story(found.text) and "press council" not in found.text


@pytest.mark.parametrize("wrapper", ["aside", "header", "figure"])
def test_an_article_inside_an_aside_or_header_is_still_extracted(wrapper):
    html = page(
        f"<nav><a href='/'>Home</a> <a href='/world'>World</a></nav>"
        f"<{wrapper}><article><h1>{TITLE}</h1>{PARAGRAPHS}</article></{wrapper}><footer>{COPYRIGHT}</footer>"
    )
    found = extract_article(html, URL)
    assert has_story(found.text)
    assert COPYRIGHT not in found.text


def test_a_cookie_banner_is_rejected_and_the_article_element_taken():
    banner = f"<div class='banner'><p>{COOKIES}</p><button>Accept</button></div>"
    html = page(f"{banner}<aside><article>{PARAGRAPHS}</article></aside>")
    found = extract_article(html, URL)
    assert TRAFILATURA in found.rejected and found.method == ARTICLE
    assert has_story(found.text) and "cookies" not in found.text


@pytest.mark.parametrize(
    "furniture",
    [
        f"<div><p>{COOKIES}</p></div>",
        f"<div><p>{COPYRIGHT}</p></div>",
        "<div><p>Click to Skip Ad</p></div>",
        "<div><h3>Related stories</h3><ul>"
        + "".join(f"<li><a href='/{i}'>{t}</a></li>" for i, t in enumerate(RELATED))
        + "</ul></div>",
        f"<div><h1>{TITLE}</h1></div>",
    ],
    ids=["cookies", "copyright", "ad label", "related list", "bare title"],
)
def test_boilerplate_that_outscores_the_article_is_rejected_and_the_next_candidate_taken(furniture):
    # The article sits where no extractor scores it (plain paragraphs in an <aside>); the
    # furniture is what trafilatura takes from the page.
    found = extract_article(page(f"{furniture}<aside>{PARAGRAPHS}</aside>"), URL)
    assert found.rejected == (TRAFILATURA,)
    assert found.method == BLOCKS
    assert found.paragraphs == tuple(STORY)


@pytest.mark.parametrize(
    "text",
    [
        COOKIES,
        COPYRIGHT,
        "Click to Skip Ad",
        "Advertisement",
        "Related\n\n" + "\n\n".join(RELATED),
        TITLE,
        "",
        "Wir verwenden Cookies. Mit der Nutzung stimmen Sie der Datenschutzerklärung und der Einwilligung zu.",
    ],
)
def test_is_boilerplate_knows_furniture(text):
    assert is_boilerplate(text, TITLE)


@pytest.mark.parametrize(
    "text",
    [
        "\n\n".join(STORY),
        "Regulators said on Tuesday that the company had shared personal data with advertisers without "
        "asking, and that its cookie banner had not offered a way to refuse. The company said it would "
        "appeal. Its shares fell four percent in early trading, and analysts said the fine was the "
        "largest the regulator had imposed this year.",
        "Charges related to the drug-related investigation were filed on Friday, prosecutors said, after "
        "a search of two warehouses near the port.",
    ],
    ids=["story", "prose about cookies", "prose saying related"],
)
def test_is_boilerplate_leaves_prose_alone(text):
    assert not is_boilerplate(text, TITLE)


def test_furniture_paragraphs_inside_the_text_are_left_out_and_short_prose_kept():
    prose = "The port declined to comment on the advertising deal."
    body = f"<p>{STORY[0]}</p><p>Advertisement</p><p>{STORY[1]}</p><p>Read also: Will the port strike again?</p>"
    body += f"<p>{prose}</p>" + "".join(f"<p>{p}</p>" for p in STORY[2:]) + f"<p>{COPYRIGHT}</p>"
    body += "<p>Filed under: Harbour, Shipping</p><p>View comments</p>"
    found = extract_article(page(f"<article>{body}</article>"), URL)
    assert found.paragraphs == (STORY[0], STORY[1], prose, *STORY[2:])


def test_a_lead_the_page_shows_is_recovered_apart_from_the_body():
    dek = "The northern channel will be dredged after a year of dispute over who pays for the work."
    head = f"<meta name='description' content='{dek}'>"
    html = page(f"<div class='top'><h1>{TITLE}</h1><p class='dek'>{dek}</p></div><article>{PARAGRAPHS}</article>", head)
    found = extract_article(html, URL)
    assert found.lead == dek and found.paragraphs == tuple(STORY)
    assert found.text == "\n\n".join([dek, *STORY])
    # A description the page does not show is no lead.
    assert extract_article(page(f"<article>{PARAGRAPHS}</article>", head), URL).lead is None


POLISH = (
    "Sejm zagłosował za ustawą. Źródła mówią, że głosowanie było zacięte i że żaden poseł nie wstrzymał się od głosu."
)
GERMAN = "Die Bürgermeisterin eröffnete am Montag die neue Brücke über die Dreisam, nach drei Jahren Bauzeit."


@pytest.mark.parametrize(
    ("declaration", "encoding", "text"),
    [
        ("<meta charset='windows-1250'>", "cp1250", POLISH),
        ("<meta http-equiv='Content-Type' content='text/html; charset=iso-8859-2'>", "iso-8859-2", POLISH),
        ("<meta http-equiv='Content-Type' content='text/html; charset=iso-8859-1'>", "cp1252", GERMAN),
        ("", "cp1252", GERMAN),  # no label and not UTF-8: what browsers assume
        ("<meta charset='iso-8859-1'>", "utf-8", GERMAN),  # mislabelled: the bytes are UTF-8
    ],
)
def test_a_page_in_another_charset_is_decoded_right(declaration, encoding, text):
    paragraphs = "".join(f"<p>{text} {p}</p>" for p in STORY)
    raw = (
        f"<html><head>{declaration}<title>Nachrichten</title></head><body><article>{paragraphs}</article></body></html>"
    )
    body = raw.encode(encoding)
    assert text in decode_html(body)
    found = extract_article(body, URL)
    assert found.paragraphs[0] == f"{text} {STORY[0]}"
    assert summarize_page(body).text.startswith(f"{text} {STORY[0]}")


def test_gathering_a_page_and_digest_excerpt_read_the_same_text():
    dek = "The northern channel will be dredged after a year of dispute over who pays for the work."
    head = f"<meta name='description' content='{dek}'><meta property='og:type' content='article'>"
    body = page(
        f"<nav><a href='/'>Home</a></nav><div class='banner'><p>{COOKIES}</p></div>"
        f"<article><h1>{TITLE}</h1><p class='dek'>{dek}</p><h2>What happens next</h2>{PARAGRAPHS}"
        f"<p>Advertisement</p></article><footer>{COPYRIGHT}</footer>",
        head,
    ).encode("utf-8")
    _, article = parse_page(body, URL)
    assert article is not None and article.content_html
    title, paragraphs = page_paragraphs(body)
    found = extract_article(body, URL)
    assert paragraphs == list(found.paragraphs) and title == TITLE
    assert summarize_html(article.content_html).text == summarize_page(body).text
    assert has_story(summarize_page(body).text)


def test_paragraphs_made_with_double_line_breaks_are_paragraphs_in_the_text_and_the_html():
    body = page(
        f"<article><h1>{TITLE}</h1><div>{'<br><br>'.join(STORY[:2])}<br><br><br>{STORY[2]}<br>{STORY[3]}</div></article>"
    )
    found = extract_article(body, URL)
    assert found.paragraphs[-3:] == (STORY[0], STORY[1], f"{STORY[2]} {STORY[3]}")
    assert found.html is not None and found.html.count("<p>") == 3 and "<br>" in found.html
    _, article = parse_page(body.encode("utf-8"), URL)
    assert article is not None and article.content_html
    assert summarize_html(article.content_html).text == summarize_page(body).text
