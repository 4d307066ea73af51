"""The plain-text part: wrapped at spaces only, every link whole and clickable, articles told apart, each
article's link a numbered reference; for the whole issue, a segment, and a message as it is sent."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import message_from_bytes, policy
from html.parser import HTMLParser

import pytest

from digest.email import placeholders
from digest.email.message import OutgoingIssue, Recipient, prepare
from digest.email.segments import render_segment
from digest.email.templates import wrap_text
from digest.store.models import Issue
from tests.render_sample import VIEW_URL, all_articles, example_config, render_sample, sample_content

URL = re.compile(r"https?://\S+")
REF_LINE = re.compile(r"^\[(\d+)\] (https?://\S+)$", re.M)
# A reader's values as the outbox fills them: signed links longer than any line.
VALUES = {
    "unsubscribe_url": "https://meridian-review.example.org/unsubscribe/" + "Ab3-_x" * 20,
    "preferences_url": "https://meridian-review.example.org/preferences/" + "Zy9-_q" * 20,
    "first_name": "Anne-Marie",
}


class Links(HTMLParser):
    def __init__(self, html: str):
        super().__init__()
        self.hrefs: set[str] = set()
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "a" and dict(attrs).get("href"):
            self.hrefs.add(dict(attrs)["href"])


@pytest.fixture(scope="module")
def content():
    return sample_content()


@pytest.fixture(scope="module")
def rendered(content):
    return render_sample(content=content)


@pytest.fixture(scope="module")
def sent(rendered):
    """The text and HTML parts of one reader's message, serialized and parsed back as a client would."""
    issue = OutgoingIssue(
        issue_id=1,
        slug="2026-w48",
        subject="A subject",
        html=rendered.html,
        text=rendered.text,
        from_email="weekly@meridian-review.example.org",
        from_name="The Meridian Review",
        reply_to=None,
    )
    reader = Recipient(1, "anne@example.org", "Anne-Marie", VALUES, VALUES["unsubscribe_url"])
    parsed = message_from_bytes(
        prepare(issue, reader, now=datetime(2026, 11, 30, tzinfo=UTC)).data(), policy=policy.default
    )
    text = parsed.get_body(("plain",)).get_content()
    html = parsed.get_body(("html",)).get_content()
    return text, html


def test_every_url_in_the_sent_text_part_is_whole_and_is_a_link_of_the_html_part(sent, content):
    text, html = sent
    hrefs = Links(html).hrefs
    found = URL.findall(text)
    assert found and set(found) <= hrefs, set(found) - hrefs
    # Nothing the HTML links to is missing (the reader's signed links included), and no URL was cut.
    web = {h for h in hrefs if h.startswith("http")}
    assert web <= set(found), web - set(found)
    assert VALUES["unsubscribe_url"] in found and VALUES["preferences_url"] in found
    for line in text.splitlines():
        for url in URL.findall(line):
            # A URL ends its line or is followed by a space: a client links all of it.
            assert line.endswith(url) or f"{url} " in line


def test_each_article_link_is_a_numbered_reference_under_it_in_order(rendered, content):
    articles = all_articles(content)
    refs = REF_LINE.findall(rendered.text)
    assert [int(n) for n, _ in refs] == list(range(1, len(articles) + 1))
    for (number, url), article in zip(refs, articles, strict=True):
        assert url.split("?")[0] == article["url"].split("?")[0]
        assert "utm_campaign=2026-w48" in url
        # The headline carries the same number, held to its last word.
        headline = article["title"].split()[-1] + f"\u00a0[{number}]"
        assert rendered.text.count(headline) == 1
        # ... and the reference comes after the headline, before the next article's.
        assert rendered.text.index(headline) < rendered.text.index(f"[{number}] {url}")


def test_text_is_wrapped_at_spaces_only_never_inside_a_word_or_hyphenated_name(rendered):
    for line in rendered.text.splitlines():
        if not URL.search(line) and set(line) - {"-", "="}:
            assert len(line) <= 72, line
            # textwrap's hyphen breaks leave a line ending in "-" before the word goes on.
            assert not re.search(r"\w-$", line), line
    assert "Quispe-Moreno" in rendered.text and "long-awaited" in rendered.text


def test_the_headline_the_dek_and_the_byline_are_paragraphs_of_their_own(rendered, content):
    for article in all_articles(content):
        standfirst = article.get("teaser") or article.get("dek")
        if standfirst:
            first_words = " ".join(standfirst.split()[:4])
            assert f"]\n\n{first_words}" in rendered.text, article["title"]
        if article.get("author"):
            # In full, with the reading time (the top story's, here); a compact row's, alone.
            assert re.search(rf"\n\nBy {re.escape(article['author'])}( · \d+ min read)?\n\n", rendered.text)


def test_sections_have_headings_and_articles_in_full_are_separated_by_a_rule(rendered, content):
    rule, heading = "\n" + "-" * 72 + "\n", "=" * 72
    for section in content["sections"]:
        assert f"{heading}\n{section['name'].upper()}\n{heading}" in rendered.text
    assert f"{heading}\nTOP STORY · REPORTING\n{heading}" in rendered.text
    # Compact rows (the default layout) stand a blank line apart; articles in full (cards) a rule apart.
    assert rendered.text.count(rule) == 0
    config = example_config()
    cards = render_sample(config.model_copy(update={"issue": config.issue.model_copy(update={"layout": "cards"})}))
    assert cards.text.count(rule) == sum(len(s["articles"]) - 1 for s in content["sections"])


def test_a_segment_numbers_its_own_articles_and_keeps_every_link_whole(content):
    config = example_config()
    issue = Issue(slug="2026-w48", subject="s", preheader="p", content=content)
    made = render_segment(config, issue, ["Reporting"], view_url=VIEW_URL)
    assert made is not None
    refs = REF_LINE.findall(made.text)
    kept = [a for a in all_articles(content)[1:] if a["section"] != "Reporting"]
    assert [int(n) for n, _ in refs] == list(range(1, len(kept) + 1))
    filled = placeholders.fill(made.text, VALUES, html_part=False)
    assert set(URL.findall(filled)) <= Links(placeholders.fill(made.html, VALUES, html_part=True)).hrefs


def test_the_wrap_filter_breaks_only_at_spaces():
    url = "https://meridian-review.example.org/2026/11/a-very-long-slug-of-an-article/?utm_source=x&utm_medium=email"
    text = f"A well-known writer said so. Read it at {url} today, or ask Jean-Baptiste Quispe-Moreno."
    wrapped = wrap_text(text, 30)
    assert url in wrapped.splitlines()
    assert all(len(line) <= 30 for line in wrapped.splitlines() if line != url)
    assert " ".join(wrapped.split()) == text and "well-known" in wrapped and "Quispe-Moreno" in wrapped
    assert wrap_text("one\n\ntwo", 10) == "one\n\ntwo"
