"""The headers that name the list and the issue (List-Id, Feedback-ID, List-Unsubscribe with its mailto),
through the outbox's .eml files and the SendGrid request; and the subject line, from its template."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from pydantic import SecretStr

from digest.config import DeliveryConfig, load_newsletter
from digest.content.subject import clip, subject_for
from digest.core import build_core
from digest.delivery import run
from digest.email.message import OutgoingIssue, Recipient, feedback_id, list_id_header, prepare
from digest.errors import ConfigError
from digest.jobs.weekly import build
from tests.conftest import EXAMPLE_CONFIG
from tests.fakes.sendgrid import FakeSendGrid
from tests.test_segments import W48, add_subscriber, outbox_by_recipient, seed_articles

LIST_ID = "The Meridian Review <weekly.meridian-review.example.org>"
FEEDBACK_ID = "2026-w48:the-meridian-review:newsletter:meridian-review.example.org"
MAILTO = "unsubscribe@meridian-review.example.org"


def with_list_address(**delivery):
    config = load_newsletter(EXAMPLE_CONFIG)
    return config.model_copy(update={"delivery": config.delivery.model_copy(update=delivery)})


@pytest.fixture
def listed_core(settings):
    core = build_core(settings, with_list_address(unsubscribe_mailto=MAILTO))
    yield core
    core.close()


def test_outbox_mail_names_the_list_the_issue_and_both_ways_to_unsubscribe(listed_core):
    titles = seed_articles(listed_core)
    add_subscriber(listed_core, "anne", [])
    issue = build(listed_core, W48)
    run.deliver(listed_core.mailer(), issue)
    message = outbox_by_recipient(listed_core)["anne@example.org"]
    assert message["List-Id"] == LIST_ID
    assert message["Feedback-ID"] == FEEDBACK_ID
    https, mailto = (target.strip() for target in str(message["List-Unsubscribe"]).split(","))
    assert https.startswith("<https://news.example.org/unsubscribe/") and https.endswith(">")
    assert mailto == f"<mailto:{MAILTO}?subject=unsubscribe>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # The subject is the top story's headline: the From name is not repeated in it.
    assert message["Subject"] == titles["Reporting"][0]
    assert message["From"].addresses[0].display_name == "The Meridian Review"


def test_the_sendgrid_request_carries_the_same_headers(settings):
    with FakeSendGrid(keep_bodies=True) as fake:
        values = {"provider": "sendgrid", "sendgrid_api_key": SecretStr(fake.api_key), "sendgrid_api_host": fake.url}
        sendgrid = settings.model_copy(update=values)
        core = build_core(sendgrid, with_list_address(unsubscribe_mailto=MAILTO))
        try:
            seed_articles(core)
            add_subscriber(core, "anne", [])
            add_subscriber(core, "bob", ["Opinion"])
            run.deliver(core.mailer(), build(core, W48))
        finally:
            core.close()
    assert fake.violations == []
    bodies = [r.body for r in fake.accepted]
    assert len(bodies) == 2  # one batch per segment: both carry the issue's headers
    assert all(body["headers"] == {"List-Id": LIST_ID, "Feedback-ID": FEEDBACK_ID} for body in bodies)
    delivered = fake.messages()
    assert len(delivered) == 2
    for message in delivered:
        assert message["headers"]["List-Id"] == LIST_ID and message["headers"]["Feedback-ID"] == FEEDBACK_ID
        assert message["headers"]["List-Unsubscribe"].endswith(f", <mailto:{MAILTO}?subject=unsubscribe>")


def test_without_a_list_address_list_unsubscribe_has_the_https_link_alone(core):
    seed_articles(core)
    add_subscriber(core, "anne", [])
    run.deliver(core.mailer(), build(core, W48))
    message = outbox_by_recipient(core)["anne@example.org"]
    assert "mailto:" not in str(message["List-Unsubscribe"]) and message["List-Id"] == LIST_ID


def test_list_id_and_feedback_sender_can_be_set_and_are_checked(tmp_path):
    config = with_list_address(list_id="digest.news.example.org", feedback_id_sender="news-example")
    assert config.list_id == "digest.news.example.org" and config.feedback_id_sender == "news-example"
    assert list_id_header("Weekly: the news, and more", config.list_id) == (
        '"Weekly: the news, and more" <digest.news.example.org>'
    )
    assert feedback_id("2026-w48", "a:b", "sender") == "2026-w48:a-b:newsletter:sender"
    for key, value in (("list_id", "no dots"), ("feedback_id_sender", "has:colon")):
        with pytest.raises(ConfigError, match=rf"delivery\.{key}"):
            load_newsletter(toml_with(tmp_path, f'\n{key} = ""\n', f'\n{key} = "{value}"\n'))
    with pytest.raises(ValueError):
        DeliveryConfig(list_id="example.org>")


def test_a_list_name_outside_ascii_goes_out_as_encoded_words_never_inside_quotes():
    issue = OutgoingIssue(
        1, "2026-w48", "s", "<p>x</p>", "x", "weekly@example.org", "Die Woche", None,
        list_id=list_id_header("Die Woche: Zürich \"extra\"", "weekly.example.org"),
    )  # fmt: skip
    reader = Recipient(1, "anne@example.org", None, {}, "https://news.example.org/unsubscribe/t")
    wire = prepare(issue, reader, now=datetime(2026, 11, 30, tzinfo=UTC)).data()
    raw = next(line for line in wire.decode("ascii").splitlines() if line.startswith("List-Id:"))
    assert '"' not in raw and raw.endswith(" <weekly.example.org>") and "=?utf-8?" in raw
    parsed = message_from_bytes(wire, policy=policy.default)
    assert parsed["List-Id"] == "Die Woche Zürich extra <weekly.example.org>"


# --- the subject line ---------------------------------------------------------------------------


def toml_with(tmp_path: Path, old: str, new: str) -> Path:
    text = EXAMPLE_CONFIG.read_text()
    assert old in text
    path = tmp_path / "digest.toml"
    path.write_text(text.replace(old, new, 1))
    return path


SUBJECT_LINE = 'subject = "{top_headline}"\n'
CONTENT = {
    "date": "2026-11-30",
    "date_display": "November 30, 2026",
    "top": {"title": "Bolivian lawmakers delay vote on lithium royalty law"},
    "sections": [{"name": "Reporting", "articles": [{"title": "a"}, {"title": "b"}]}],
}


def test_the_default_subject_is_the_top_headline_alone():
    assert subject_for(load_newsletter(EXAMPLE_CONFIG), CONTENT) == CONTENT["top"]["title"]


def test_a_subject_template_has_named_fields_and_the_older_names_still_work(tmp_path):
    template = 'subject = "{newsletter}: {top_headline} ({count} articles, {date})"\n'
    config = load_newsletter(toml_with(tmp_path, SUBJECT_LINE, template))
    # 103 characters: clipped on the last word that fits in 78 with its ellipsis.
    assert (
        subject_for(config, CONTENT) == "The Meridian Review: Bolivian lawmakers delay vote on lithium royalty law (3…"
    )
    config = load_newsletter(toml_with(tmp_path, SUBJECT_LINE, 'subject = "{top_headline} ({count})"\n'))
    assert subject_for(config, CONTENT) == "Bolivian lawmakers delay vote on lithium royalty law (3)"
    older = load_newsletter(toml_with(tmp_path, SUBJECT_LINE, 'subject = "{name}: {top_title}"\n'))
    assert subject_for(older, CONTENT) == "The Meridian Review: Bolivian lawmakers delay vote on lithium royalty law"


@pytest.mark.parametrize(
    ("template", "said"),
    [
        ("{headline}", "unknown field {headline}; the fields are {top_headline}, {newsletter}"),
        ("{top_headline.__class__}", "unknown field {top_headline.__class__}"),
        ("{}", "unknown field {}"),
        ("{top_headline", "is not a valid template"),
        ("{top_headline:d}", "cannot be filled in"),
    ],
)
def test_a_subject_template_with_an_unknown_field_is_refused_when_the_file_is_read(tmp_path, template, said):
    with pytest.raises(ConfigError) as caught:
        load_newsletter(toml_with(tmp_path, SUBJECT_LINE, f'subject = "{template}"\n'))
    assert "issue.subject" in str(caught.value) and said in str(caught.value)


def test_a_long_subject_is_clipped_on_a_word_at_78_characters():
    headline = (
        "Negotiators from five Central Asian states return to Geneva with a narrower agenda on water, "
        "energy and the summer release schedule"
    )
    clipped = clip(headline)
    assert len(clipped) <= 78 and clipped.endswith("…")
    kept = clipped.removesuffix("…")
    assert headline.startswith(kept) and headline[len(kept)] in " ,"  # cut between two words
    assert len(kept) > 60  # ... the last one that fits, not much earlier
    assert clip("Short and sweet") == "Short and sweet"
    assert clip("  Two\nlines  ") == "Two lines"  # never a header break
    exactly = "x" * 70 + " abcdefg"
    assert clip(exactly) == exactly  # 78 characters fit as they are


def test_a_single_word_longer_than_the_limit_is_cut_where_it_must_be():
    clipped = clip("Supercalifragilistic" * 6)
    assert len(clipped) == 78 and clipped.endswith("…")


def test_a_subject_with_no_top_story_falls_back_to_the_newsletter_name():
    assert subject_for(load_newsletter(EXAMPLE_CONFIG), {"date": "2026-11-30", "sections": []}) == "The Meridian Review"
