"""The gathering commands, run for real: `digest inspect-feed`, `digest gather`, `digest sources`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.cli_helpers import run_cli
from tests.conftest import ROOT, SAMPLE_WEEK
from tests.fakes.feed_server import FeedServer, Reply

HERE = Path(__file__).resolve()
# ../shared beside the checkout (CI), or beside the worktrees' folder (a worktree under wt/).
SHARED = next((p for p in (HERE.parents[2] / "shared", HERE.parents[3] / "shared") if p.is_dir()), None)
KEYS = {"input", "format", "title", "error", "articles"}
ARTICLE_KEYS = {"title", "url", "guid", "published", "author", "summary", "content_html", "image", "categories",
                "link_from"}  # fmt: skip


def plain_env() -> dict[str, str]:
    """This process's environment (PYTHONPATH included) without DIGEST_* settings: no store needed."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}


def inputs_of(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.is_file() and p.name != "LICENSE")


@pytest.mark.skipif(SHARED is None, reason="../shared (the shared test data) is not beside this checkout")
def test_inspect_feed_reads_every_shared_feed_file_one_json_line_each_in_order(tmp_path):
    inputs = inputs_of(SHARED / "data" / "feeds")
    assert len(inputs) >= 102
    result = run_cli(["inspect-feed", "--json", *inputs], plain_env(), tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(inputs)
    parsed = [json.loads(line) for line in lines]
    assert [p["input"] for p in parsed] == inputs
    for p in parsed:
        assert set(p) == KEYS
        assert p["error"] is None or ("\n" not in p["error"] and p["error"])
        assert (p["format"] is None) == (p["error"] is not None)
        for article in p["articles"]:
            assert set(article) == ARTICLE_KEYS
            assert article["url"].startswith(("http://", "https://", "file:"))
            assert article["published"] is None or article["published"].endswith("Z")
    # Most of these files are odd but readable; a handful are beyond repair.
    assert sum(p["error"] is None for p in parsed) >= 90
    json_feed = next(p for p in parsed if p["input"].endswith("example.json"))
    assert json_feed["format"].startswith("json") and json_feed["articles"]


def test_inspect_feed_goes_on_after_an_unreadable_input_and_keeps_input_order(tmp_path):
    routes = {"/slow": Reply(body=(ROOT / "examples/feeds/opinion.rss").read_bytes(), delay=0.5)}
    with FeedServer(routes) as server:
        inputs = [server.url("/slow"), str(tmp_path / "missing.xml"), str(ROOT / "examples/feeds/analysis.atom")]
        result = run_cli(["inspect-feed", "--json", *inputs], plain_env(), tmp_path)
    assert result.returncode == 0, result.stderr
    slow, missing, atom = (json.loads(line) for line in result.stdout.splitlines())
    assert [slow["input"], missing["input"], atom["input"]] == inputs
    assert slow["format"] == "rss20" and len(slow["articles"]) == 4
    assert missing["error"].startswith("cannot read") and missing["articles"] == []
    assert atom["format"] == "atom10" and atom["articles"][0]["image"]["credit"] == "Tomás Arriaga / Meridian Review"
    assert atom["articles"][0]["published"] == "2026-11-26T13:00:00Z"


def test_inspect_feed_without_json_prints_a_table_per_input(tmp_path):
    result = run_cli(
        ["inspect-feed", str(ROOT / "examples/feeds/reporting.rss"), str(tmp_path / "nope.rss")],
        {**plain_env(), "COLUMNS": "200"},
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "rss20, The Meridian Review — Reporting, 6 articles" in result.stdout
    assert "Bolivian lawmakers delay vote on lithium royalty law" in result.stdout
    assert "nope.rss: cannot read" in result.stdout


def test_gather_then_sources_shows_every_source_with_its_state(cli_env, tmp_path):
    gathered = run_cli(["gather"], cli_env, tmp_path)
    assert gathered.returncode == 0, gathered.stderr
    assert "sources ok: 3, failed: 0; articles new: 15, updated: 0" in gathered.stdout
    again = run_cli(["gather"], cli_env, tmp_path)
    assert "articles new: 0, updated: 0" in again.stdout
    listing = run_cli(["sources", "--week", SAMPLE_WEEK, "--json"], cli_env, tmp_path)
    assert listing.returncode == 0, listing.stderr
    rows = [json.loads(line) for line in listing.stdout.splitlines()]
    assert [r["name"] for r in rows] == ["Reporting", "Analysis", "Opinion"]
    assert sum(r["articles_this_week"] for r in rows) == 10 and sum(r["articles"] for r in rows) == 15
    assert all(r["last_success"] and r["last_error"] is None for r in rows)
    table = run_cli(["sources", "--week", SAMPLE_WEEK], {**cli_env, "COLUMNS": "250"}, tmp_path)
    assert "last success" in table.stdout and "articles 2026-W48" in table.stdout


def test_gather_reports_a_failing_source_by_name_and_goes_on(cli_env, tmp_path):
    config = tmp_path / "digest.toml"
    text = (ROOT / "examples" / "digest.toml").read_text()
    text = text.replace('url = "feeds/opinion.rss"', 'url = "http://127.0.0.1:1/opinion.rss"')
    text = text.replace('url = "feeds/', f'url = "{ROOT}/examples/feeds/')
    config.write_text(text)
    env = {**cli_env, "DIGEST_CONFIG": str(config)}
    gathered = run_cli(["gather"], env, tmp_path)
    assert gathered.returncode == 1  # some failed: the others were still stored
    assert "sources ok: 2, failed: 1; articles new: 11" in gathered.stdout
    assert "source 'Opinion': cannot connect to 127.0.0.1" in gathered.stderr
    rows = [json.loads(line) for line in run_cli(["sources", "--json"], env, tmp_path).stdout.splitlines()]
    opinion = next(r for r in rows if r["name"] == "Opinion")
    assert opinion["failing"] and "cannot connect" in opinion["last_error"] and opinion["last_success"] is None
