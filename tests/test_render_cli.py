"""`digest build` and `digest render` run as the command line, and the placeholders in delivered mail."""

from __future__ import annotations

import json
from email import message_from_bytes, policy

from digest.content.weeks import Week
from digest.email import placeholders
from digest.email.links import Links
from digest.store.models import Issue
from tests.cli_helpers import run_cli
from tests.conftest import ROOT, SAMPLE_WEEK
from tests.render_sample import ISSUE_30


def test_render_writes_the_three_files_from_json_content(cli_env, tmp_path):
    out = tmp_path / "out"
    result = run_cli(["render", str(ISSUE_30), "--out", str(out)], cli_env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "rendered 30 articles" in result.stdout
    html, text, mjml = ((out / f"issue.{ext}").read_text() for ext in ("html", "txt", "mjml"))
    assert html.startswith("<!doctype html>") and "<mj-" not in html and len(html.encode()) <= 100_000
    assert mjml.startswith("<mjml") and "{{" not in mjml and "{%" not in mjml
    assert "The Meridian Review" in text and "1200 Harbor Street" in text
    # The "view in a browser" link is the one the issue would have if it were stored under the file's name.
    assert f'href="{Links("https://news.example.org").issue_url("issue-30")}"' in html
    # The preview beside them has every placeholder filled with a sample value.
    assert placeholders.leftover((out / "preview.html").read_text()) == []


def test_render_reports_a_bad_document_by_its_place_and_exits_2(cli_env, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"sections": [{"name": "News", "articles": [{"title": "No link"}]}]}))
    result = run_cli(["render", str(bad), "--out", str(tmp_path / "out")], cli_env, tmp_path)
    assert result.returncode == 2
    assert f"{bad}: sections[0].articles[0].url: is required" in result.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    result = run_cli(["render", str(broken), "--out", str(tmp_path / "out")], cli_env, tmp_path)
    assert result.returncode == 2 and "not valid JSON" in result.stderr


def test_build_stores_a_draft_and_writes_its_files(cli_env, tmp_path, core):
    assert run_cli(["gather"], cli_env, tmp_path).returncode == 0
    out = tmp_path / "draft"
    result = run_cli(["build", "--week", SAMPLE_WEEK, "--out", str(out)], cli_env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "issue 2026-W48 (draft" in result.stdout
    with core.sessions() as session:
        issue = session.query(Issue).filter_by(week=str(Week.parse(SAMPLE_WEEK))).one()
        assert issue.status == "draft" and issue.html and issue.text and issue.mjml
        assert (out / "issue.html").read_text() == issue.html
        assert (out / "issue.mjml").read_text() == issue.mjml
        assert (out / "issue.txt").read_text() == issue.text
        top_id = issue.content["sections"][0]["articles"][0]["id"]
    pinned = run_cli(["build", "--week", SAMPLE_WEEK, "--top", str(top_id), "--out", str(out)], cli_env, tmp_path)
    assert pinned.returncode == 0, pinned.stderr
    with core.sessions() as session:
        issue = session.query(Issue).filter_by(week="2026-W48").one()
        assert issue.top_article_id == top_id and issue.content["top"]["id"] == top_id


def test_no_placeholder_is_left_unfilled_in_any_delivered_message(cli_env, tmp_path):
    run_cli(["subscribers", "import", str(ROOT / "examples/subscribers.csv")], cli_env, tmp_path)
    result = run_cli(["run", "--once", "--week", SAMPLE_WEEK], cli_env, tmp_path)
    assert result.returncode == 0, result.stderr
    stored = (tmp_path / "var/issues/2026-w48/issue.html").read_text()
    assert set(placeholders.leftover(stored)) == set(placeholders.NAMES)  # there was something to fill
    messages = sorted((tmp_path / "outbox/2026-w48").glob("*.eml"))
    assert len(messages) == 6
    for path in messages:
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        for part in message.walk():
            if part.get_content_maintype() == "text":
                assert placeholders.leftover(part.get_content()) == [], path.name
                assert "%%" not in part.get_content()
