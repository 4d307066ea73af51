"""The whole path: `digest run --once` gathers the sample feeds, composes, renders and delivers
to the outbox; a second run the same week delivers nothing twice. Runs the real command."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

import feedparser
import pytest

from tests.cli_helpers import run_cli
from tests.conftest import ROOT, SAMPLE_WEEK


def read_outbox(folder: Path) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted(folder.glob("*.eml"))]


def sample_articles(week_only: bool = True) -> list[dict]:
    """Titles and links of the sample feeds' articles in the sample week, read independently."""
    from datetime import UTC, datetime

    found = []
    for feed in sorted((ROOT / "examples/feeds").iterdir()):
        for entry in feedparser.parse(feed.read_bytes()).entries:
            published = datetime(*entry.published_parsed[:6], tzinfo=UTC)
            if not week_only or datetime(2026, 11, 23, 5, tzinfo=UTC) <= published < datetime(
                2026, 11, 30, 5, tzinfo=UTC
            ):
                found.append({"title": entry.title, "link": entry.link})
    return found


@pytest.fixture
def imported(cli_env, tmp_path):
    result = run_cli(["subscribers", "import", str(ROOT / "examples/subscribers.csv")], cli_env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "6 added" in result.stdout
    return cli_env


def test_run_once_delivers_one_multipart_message_per_active_subscriber(imported, tmp_path):
    result = run_cli(["run", "--once", "--week", SAMPLE_WEEK], imported, tmp_path)
    assert result.returncode == 0, result.stderr
    outbox = tmp_path / "outbox" / "2026-w48"
    assert f"outbox mail: {outbox}" in result.stdout
    assert "rendered issue: var/issues/2026-w48/issue.html" in result.stdout
    assert (tmp_path / "var/issues/2026-w48/issue.html").stat().st_size > 10_000

    messages = read_outbox(outbox)
    recipients = sorted(m["To"].addresses[0].addr_spec for m in messages)
    assert recipients == sorted(
        line.split(",")[0] for line in (ROOT / "examples/subscribers.csv").read_text().splitlines()[1:]
    )
    articles = sample_articles()
    assert len(articles) >= 9
    for message in messages:
        assert message["From"].addresses[0].addr_spec == "weekly@meridian-review.example.org"
        # The top story's headline: the From name already says who it is from.
        assert message["Subject"] and not message["Subject"].startswith("The Meridian Review")
        assert message["Date"] is not None and message["Message-ID"].endswith("@meridian-review.example.org>")
        unsubscribe = str(message["List-Unsubscribe"])
        assert unsubscribe.startswith("<https://news.example.org/unsubscribe/") and unsubscribe.endswith(">")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message.get_content_type() == "multipart/alternative"
        parts = list(message.iter_parts())
        assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
        text, html = parts[0].get_content(), parts[1].get_content()
        # The signed link in the header is the same one the reader sees in both parts.
        assert unsubscribe.strip("<>") in text and unsubscribe.strip("<>") in html
        assert "%%" not in text and "%%" not in html  # no placeholder left unfilled
        assert html.lower().startswith("<!doctype html>") and "<mj-" not in html
        for article in articles:
            assert article["title"].replace("&", "&amp;") in html or article["title"] in html
            assert article["title"] in " ".join(text.split())  # a long headline is wrapped
            assert article["link"] in html and article["link"] in text
    # Each recipient gets their own link.
    assert len({str(m["List-Unsubscribe"]) for m in messages}) == len(messages)
    assert any("Hello Ada," in m.get_body(("plain",)).get_content() for m in messages)


def test_a_second_run_the_same_week_delivers_nothing_twice(imported, tmp_path):
    first = run_cli(["run", "--once", "--week", SAMPLE_WEEK], imported, tmp_path)
    assert first.returncode == 0, first.stderr
    outbox = tmp_path / "outbox" / "2026-w48"
    before = {p.name: p.read_bytes() for p in outbox.glob("*.eml")}
    assert len(before) == 6

    # A new subscriber after the send, and a re-import of the same list, change nothing this week.
    extra = tmp_path / "more.csv"
    extra.write_text("email,name\nlate@example.org,Late Comer\n")
    run_cli(["subscribers", "import", str(extra)], imported, tmp_path)
    second = run_cli(["run", "--once", "--week", SAMPLE_WEEK], imported, tmp_path)
    assert second.returncode == 0, second.stderr
    assert "this send 0 recipients in 0 batches: sent 0," in second.stdout
    assert "the issue 6 recipients in 1 batch: sent 6," in second.stdout
    after = {p.name: p.read_bytes() for p in outbox.glob("*.eml")}
    assert after == before


def test_a_week_without_articles_composes_nothing_and_says_so(imported, tmp_path):
    result = run_cli(["run", "--once", "--week", "2026-W10"], imported, tmp_path)
    assert result.returncode == 0
    assert "no new articles in 2026-W10" in result.stderr
    assert not (tmp_path / "outbox").exists()


def test_import_reports_bad_rows_by_line_and_merges_duplicates(cli_env, tmp_path):
    csv_file = tmp_path / "people.csv"
    csv_file.write_text(
        "email,name\n"
        "grace@example.org,Grace Hopper\n"
        "not-an-address,Nobody\n"
        "GRACE@Example.org,Grace B. Hopper\n"
        "alan@example.org,\n"
    )
    result = run_cli(["subscribers", "import", str(csv_file)], cli_env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{csv_file}:3: skipped 'not-an-address'" in result.stderr
    assert "2 added, 1 updated, 0 unchanged, 0 kept out (unsubscribed or suppressed), 1 rejected" in result.stdout
    listing = run_cli(["subscribers", "list", "--json"], cli_env, tmp_path)
    import json

    rows = [json.loads(line) for line in listing.stdout.splitlines()]
    assert [(r["email"], r["name"], r["status"], r["consent_source"]) for r in rows] == [
        ("grace@example.org", "Grace B. Hopper", "active", "import"),
        ("alan@example.org", None, "active", "import"),
    ]


def test_import_of_a_file_without_an_email_column_is_a_usage_error(cli_env, tmp_path):
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("mail,name\nx@example.org,X\n")
    result = run_cli(["subscribers", "import", str(csv_file)], cli_env, tmp_path)
    assert result.returncode == 2
    assert "line 1: the header needs an 'email' column" in result.stderr
