"""Feeds cannot fill our placeholders: items whose title, link, image and text hold `%%unsubscribe_url%%`,
`%%preferences_url%%`, `%%first_name%%` or an unknown `%%gdp%%` go through the real weekly run
(gather from a feed on loopback, build, send) with the outbox, SMTP (aiosmtpd) and SendGrid (the fake,
which substitutes every key anywhere in the subject and content, as SendGrid does). No reader's signed
link may appear anywhere but the template's own unsubscribe and preferences spots, the reader still
sees the feed's text as written, and nothing stops the send."""

from __future__ import annotations

import json
import re
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, update

from digest.config import load_newsletter
from digest.core import build_core
from digest.email import placeholders
from digest.store.models import Delivery
from subscribers.models import Subscriber
from tests.cli_helpers import run_cli
from tests.conftest import ROOT
from tests.fakes.feed_server import FeedServer, Reply
from tests.fakes.sendgrid import FakeSendGrid
from tests.gather_helpers import LONG_BODY, rss
from tests.hostile_helpers import WEEK, newsletter_file, outbox_mail, sendgrid_mail, smtp_mail, smtp_server

SIGNED = re.compile(r"https://news\.example\.org/(?:unsubscribe|preferences)/[^\s\"'<>&]+")
EVIL = "evil.example.net"
TOP_TITLE = "Growth at 3%%gdp%% as %%unsubscribe_url%% rises"
SECOND_TITLE = "Ask %%first_name%% about %%preferences_url%%, 50%"
HOSTILE_TEXT = (
    "Dear %%first_name%%, your link is %%unsubscribe_url%% and %%preferences_url%%; growth was %%gdp%% "
    "and 100%% of the delegates agreed. "
)


def _item(title: str, path: str, date: str) -> dict:
    link = f"https://{EVIL}/{path}?u=%%unsubscribe_url%%&amp;p=%%preferences_url%%"
    image = f'<media:content url="https://{EVIL}/pixel.gif?u=%%unsubscribe_url%%" medium="image"/>'
    return {
        "title": title,
        "link": link,
        "guid": path,
        "date": date,
        "description": HOSTILE_TEXT,
        "content": f"<p>{HOSTILE_TEXT}</p>" + LONG_BODY,  # long: the gatherer does not fetch the page
        "extra": image,
    }


FEEDS = {
    "/reporting.rss": rss(
        [
            _item(TOP_TITLE, "growth", "Thu, 26 Nov 2026 15:00:00 +0000"),
            _item("A quiet day at the talks", "quiet", "Tue, 24 Nov 2026 15:00:00 +0000"),
        ]
    ),
    "/analysis.rss": rss([_item(SECOND_TITLE, "ask", "Wed, 25 Nov 2026 15:00:00 +0000")]),
}


@pytest.fixture
def hostile(cli_env, settings, tmp_path):
    """Feeds with hostile items on loopback, the six sample subscribers, one of whom left out Reporting."""
    routes = {path: Reply(body=body, headers={"Content-Type": "application/rss+xml"}) for path, body in FEEDS.items()}
    with FeedServer(routes) as server:
        config = newsletter_file(
            tmp_path,
            [
                ("Reporting", server.url("/reporting.rss"), "Reporting"),
                ("Analysis", server.url("/analysis.rss"), "Analysis"),
            ],
        )
        env = {**cli_env, "DIGEST_CONFIG": str(config)}
        imported = run_cli(["subscribers", "import", str(ROOT / "examples/subscribers.csv")], env, tmp_path)
        assert imported.returncode == 0, imported.stderr
        core = build_core(settings, load_newsletter(config))
        with core.sessions.begin() as session:
            session.execute(
                update(Subscriber)
                .where(Subscriber.email == "amina.diallo@example.org")
                .values(preferences={"exclude_sections": ["Reporting"]})
            )
        yield env, core
        core.close()


def assert_no_reader_link_leaks(mail) -> None:
    """The reader's own links appear once per part, in the footer, and nowhere else."""
    own_unsubscribe = mail.list_unsubscribe.split(",")[0].strip().strip("<>")
    for part in (mail.text, mail.html):
        signed = SIGNED.findall(part)
        assert len(signed) == 2, signed  # manage preferences, unsubscribe: the template's two spots
        assert own_unsubscribe in signed
        assert placeholders.leftover(part) == []
        for url in re.findall(rf"https?://{re.escape(EVIL)}[^\s\"'<>]*", part):
            assert "news.example.org" not in unquote(url), url
    assert "news.example.org" not in mail.subject
    # The attack did reach the message: the feed's host is linked, and its text reads as written.
    assert EVIL in mail.html
    visible = mail.html.replace("\u200b", "").replace("&#8203;", "")
    assert "100%% of the delegates" in visible and "%%unsubscribe_url%%" in visible
    assert "%%gdp%%" in mail.text.replace("\u200b", "")


def assert_everyone_got_one(mails, core) -> None:
    with core.sessions() as session:
        expected = sorted(session.scalars(select(Subscriber.email).where(Subscriber.status == "active")))
        statuses = set(session.scalars(select(Delivery.status)))
    assert sorted(a.lower() for m in mails for a in m.to) == expected
    assert statuses == {"sent"}
    for mail in mails:
        assert_no_reader_link_leaks(mail)
    # The reader who left out Reporting got the segment without it, its subject made from another headline.
    [segment] = [m for m in mails if m.to == ["amina.diallo@example.org"]]
    assert "Growth at 3" not in segment.html and "about" in segment.subject


def test_outbox_mail_carries_no_reader_link_where_a_feed_put_a_placeholder(hostile, tmp_path):
    env, core = hostile
    result = run_cli(["run", "--once", "--week", WEEK], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert_everyone_got_one(outbox_mail(tmp_path / "outbox" / "2026-w48"), core)


def test_smtp_mail_carries_no_reader_link_where_a_feed_put_a_placeholder(hostile, tmp_path):
    env, core = hostile
    controller, mailbox = smtp_server()
    try:
        smtp_env = {**env, "DIGEST_PROVIDER": "smtp", "DIGEST_SMTP_URL": f"smtp://127.0.0.1:{controller.port}?tls=none"}
        result = run_cli(["run", "--once", "--week", WEEK], smtp_env, tmp_path)
    finally:
        controller.stop()
    assert result.returncode == 0, result.stderr
    assert_everyone_got_one(smtp_mail(mailbox), core)


def test_sendgrid_substitution_reaches_no_feed_text(hostile, tmp_path):
    env, core = hostile
    with FakeSendGrid(keep_bodies=True) as fake:
        sg_env = {**env, **fake.env()}
        result = run_cli(["run", "--once", "--week", WEEK], sg_env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert fake.violations == []
    assert_everyone_got_one(sendgrid_mail(fake), core)


def test_render_of_a_document_full_of_placeholders_writes_only_the_templates_own(cli_env, tmp_path):
    doc = {
        "title": "Weekly %%gdp%% and %%unsubscribe_url%%",
        "intro": "Hello %%first_name%%, 40%",
        "sections": [
            {
                "name": "Reporting",
                "articles": [
                    {"title": TOP_TITLE, "url": f"https://{EVIL}/a?u=%%unsubscribe_url%%", "teaser": HOSTILE_TEXT},
                    {"title": "%%preferences_url%%", "url": f"https://{EVIL}/%%first_name%%", "teaser": "%"},
                ],
            }
        ],
    }
    source = tmp_path / "week.json"
    source.write_text(json.dumps(doc))
    result = run_cli(["render", str(source), "--out", str(tmp_path / "out")], cli_env, tmp_path)
    assert result.returncode == 0, result.stderr
    for name in ("issue.html", "issue.txt"):
        written = (tmp_path / "out" / name).read_text()
        # Each token once: the template's greeting, preferences link and unsubscribe link.
        assert sorted(placeholders.leftover(written)) == sorted(placeholders.NAMES), name
    preview = (tmp_path / "out" / "preview.html").read_text()
    assert placeholders.leftover(preview) == [] and len(SIGNED.findall(preview)) == 2
    assert f"https://{EVIL}/%25%25first_name%25%25" in preview  # the link still goes where the feed said


def test_an_unknown_placeholder_is_left_alone_rather_than_stopping_a_send():
    values = {"first_name": "Ada"}
    assert placeholders.fill("Hi %%first_name%%, %%gdp%%", values, html_part=False) == "Hi Ada, %%gdp%%"


def test_a_subscribers_name_cannot_bring_in_another_placeholder():
    values = {"first_name": "%%unsubscribe_url%%", "unsubscribe_url": "https://news.example.org/unsubscribe/t"}
    filled = placeholders.fill("Hi %%first_name%%", values, html_part=False)
    assert placeholders.leftover(filled) == [] and "news.example.org" not in filled


pieces = st.lists(st.text(alphabet="%_az:/", max_size=12), max_size=6)


@given(pieces)
def test_neutralized_text_never_forms_a_token_even_side_by_side_and_reads_the_same(parts):
    joined = "".join(placeholders.neutralize_text(p) for p in parts)
    assert "%%" not in joined and placeholders.leftover(joined + "%%x%%") == ["x"]
    assert joined.replace(placeholders.BREAK, "") == "".join(parts)


@given(pieces)
def test_a_neutralized_url_has_no_token_and_means_the_same(parts):
    url = "https://example.org/" + "".join(parts)
    safe = placeholders.neutralize_url(url)
    assert "%%" not in safe and not safe.endswith("%") and unquote(safe) == unquote(url)
