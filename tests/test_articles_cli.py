"""An editor's tools: `digest excerpt` without the store, and overrides that survive regathering."""

from __future__ import annotations

import json
import shutil

from digest.config import load_newsletter
from digest.content.summaries import is_stale
from digest.core import build_core
from digest.jobs.articles import edit_article
from digest.jobs.weekly import gather
from digest.store.models import Article
from tests.cli_helpers import run_cli
from tests.conftest import ROOT, SAMPLE_WEEK

PAGE = ROOT / "examples/pages/embassies-need-linguists.html"


def test_excerpt_prints_one_json_object_per_input_in_order_and_goes_on_after_a_bad_one(tmp_path):
    plain = tmp_path / "note.txt"
    plain.write_text(
        "By Staff Reporter\n\nThe port reopened on Monday after a week of repairs to its main crane. "
        "Shipping lines said the backlog would clear by Friday.\n\nRead more: our port coverage"
    )
    result = run_cli(["excerpt", str(PAGE), str(tmp_path / "missing.txt"), str(plain), "--json"], cwd=tmp_path)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["input"] for r in records] == [str(PAGE), str(tmp_path / "missing.txt"), str(plain)]
    keys = {"input", "title", "teaser", "excerpt", "pull_quote", "reading_minutes", "text", "error"}
    assert all(set(r) == keys for r in records)

    page, missing, note = records
    assert page["title"] == "Embassies need linguists more than they need new buildings"
    assert page["excerpt"].startswith("Walk through a newly built embassy compound")
    assert "Share on" not in page["text"] and "Subscribe now" not in page["text"]
    assert page["pull_quote"] and page["error"] is None
    assert missing["error"].startswith("cannot read") and missing["teaser"] is None
    assert note["excerpt"] == (
        "The port reopened on Monday after a week of repairs to its main crane. "
        "Shipping lines said the backlog would clear by Friday."
    )
    assert note["reading_minutes"] == 1


def test_excerpt_reports_a_broken_newsletter_file_and_does_without_a_missing_one(tmp_path):
    plain = tmp_path / "note.txt"
    plain.write_text("The port reopened on Monday after a week of repairs to its main crane.")
    broken = tmp_path / "digest.toml"
    broken.write_text("name = [\n")
    result = run_cli(["excerpt", str(plain)], {"DIGEST_CONFIG": str(broken)}, tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"digest: error: {broken}: not valid TOML")
    # No newsletter file at all: the default lengths serve for a look at a page.
    result = run_cli(["excerpt", str(plain), "--json"], {"DIGEST_CONFIG": str(tmp_path / "none.toml")}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["teaser"].startswith("The port reopened on Monday")


def test_an_editors_teaser_survives_regathering_a_changed_article(tmp_path, settings):
    # A private copy of the sample publication whose feed we can change between gathers.
    shutil.copytree(ROOT / "examples", tmp_path / "pub", ignore=shutil.ignore_patterns("var", ".env"))
    config = load_newsletter(tmp_path / "pub" / "digest.toml")
    core = build_core(settings, config)
    try:
        gather(core)
        with core.sessions() as session:
            article = session.query(Article).filter(Article.url.like("%embassies-need-linguists%")).one()
        edit_article(core, article.id, teaser="Why language skills beat new buildings.")

        feed = tmp_path / "pub/feeds/opinion.rss"
        feed.write_text(feed.read_text().replace("blast-resistant walls", "blast-proof walls"))
        report = gather(core)
        assert report.updated == 1 and report.new == 0

        with core.sessions() as session:
            again = session.get(Article, article.id)
        assert "blast-proof walls" in again.content_html  # the article itself was updated ...
        assert again.teaser_override == "Why language skills beat new buildings."  # ... the override kept
        assert again.shown_teaser == "Why language skills beat new buildings."
        assert again.first_seen_at == article.first_seen_at
    finally:
        core.close()


def test_articles_list_shows_teasers_computed_now_and_stores_them(tmp_path, core, cli_env):
    gather(core)  # gathering stores the articles without summaries
    result = run_cli(["articles", "list", "--week", SAMPLE_WEEK, "--json"], cli_env, tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    with core.sessions() as session:
        articles = {a.id: a for a in session.query(Article)}
    assert rows
    for row in rows:
        article = articles.pop(row["id"])
        assert not is_stale(article, core.summary_limits)  # stored by the listing
        assert row["teaser"] == article.teaser and row["excerpt"] == article.excerpt and row["excerpt"]
    assert articles and all(a.summary_hash is None for a in articles.values())  # other weeks' are not listed
    linguists = next(r for r in rows if "embassies-need-linguists" in r["url"])
    assert linguists["excerpt"].startswith("Walk through a newly built embassy compound")


def test_articles_edit_of_an_unknown_id_is_a_usage_error(tmp_path, cli_env):
    result = run_cli(["articles", "edit", "9999", "--teaser", "x"], cli_env, tmp_path)
    assert result.returncode == 2
    assert "no article with id 9999" in result.stderr


def test_excerpt_reads_a_page_from_a_url(tmp_path):
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(ROOT / "examples/pages"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/{PAGE.name}"
        missing = f"http://127.0.0.1:{server.server_port}/nothing-here.html"
        result = run_cli(["excerpt", url, missing, "--json"], cwd=tmp_path)
    finally:
        server.shutdown()
    page, gone = [json.loads(line) for line in result.stdout.splitlines()]
    assert page["title"] == "Embassies need linguists more than they need new buildings"
    assert page["excerpt"].startswith("Walk through a newly built embassy compound")
    assert "404" in gone["error"]
