"""Issue 16: text made from markup (inline elements inside words, no script or style text), undated
items dated once when first seen, exit codes and --json of `digest gather` and `digest run --once`,
and what `digest sources` says about each source's last fetch. Feeds written here."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import lxml.html
from alembic import command
from sqlalchemy import inspect, select

from digest.config import SourceConfig, load_newsletter
from digest.gather import gather_sources
from digest.gather.feeds import parse_document
from digest.gather.pages import page_image
from digest.store import db
from digest.store.models import Article, Source
from tests.cli_helpers import run_cli
from tests.conftest import EXAMPLE_CONFIG, ROOT, SAMPLE_WEEK
from tests.fakes.feed_server import FeedServer, Reply
from tests.gather_helpers import LONG_BODY, core_for, newsletter, rss

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ATOM_NS = "http://www.w3.org/2005/Atom"
XHTML_NS = "http://www.w3.org/1999/xhtml"


def json_feed(items: list[object]) -> bytes:
    feed = {"version": "https://jsonfeed.org/version/1.1", "title": "Notes", "items": items}
    return json.dumps(feed).encode("utf-8")


def long_item(n: int, **extra: str) -> dict[str, str]:
    """An item long enough that no article page is fetched for it (no network in these tests)."""
    return {
        "title": f"Story {n}",
        "link": f"https://news.example.org/story-{n}",
        "guid": f"story-{n}",
        "content": LONG_BODY.replace("Paragraph", f"Story {n} paragraph"),
        **extra,
    }


def config_with_sources(tmp_path: Path, name: str, sources: list[tuple[str, str]]) -> Path:
    """The example newsletter file with these (name, url) sources in place of its own, all in Reporting."""
    head = EXAMPLE_CONFIG.read_text().split("[[sources]]")[0]
    blocks = "".join(f'\n[[sources]]\nname = "{name}"\nurl = "{url}"\nsection = "Reporting"\n' for name, url in sources)
    path = tmp_path / name
    path.write_text(head + blocks)
    return path


# --- point 2: text made from markup ----------------------------------------------------------------


def test_inline_markup_in_a_title_stays_inside_its_word_and_block_elements_still_separate_words():
    body = rss([long_item(1, title="Tower adds 1930ft&lt;sup&gt;2&lt;/sup&gt; of &lt;b&gt;office&lt;/b&gt;s")])
    assert (
        parse_document(body, url="https://news.example.org/feed").articles[0].title == "Tower adds 1930ft2 of offices"
    )
    # An XHTML title goes through feedparser, whose markup reaches plain_text the same way.
    atom = (
        f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="{ATOM_NS}"><title>T</title><id>urn:x:f</id>'
        f"<updated>2026-11-24T10:00:00Z</updated><entry><id>urn:x:1</id><updated>2026-11-24T10:00:00Z</updated>"
        f'<link href="https://news.example.org/water"/><title type="xhtml"><div xmlns="{XHTML_NS}">'
        f"H<sub>2</sub>O prices <em>up</em></div></title></entry></feed>"
    ).encode()
    assert parse_document(atom, url="https://news.example.org/atom").articles[0].title == "H2O prices up"
    # An untitled item's title is the start of its text: paragraphs and line breaks still part words.
    untitled = json_feed(
        [{"id": "1", "url": "https://news.example.org/n/1", "content_html": "<p>One.</p><p>Two<br>three</p>"}]
    )
    assert parse_document(untitled, url="https://news.example.org/feed.json").articles[0].title == "One. Two three"
    # A page's figure caption is text made from markup too.
    page = lxml.html.fromstring(
        '<html><body><figure><img src="https://news.example.org/floor.jpg" alt="Floor">'
        "<figcaption>The new floor, 1930ft<sup>2</sup>.<br>Photo: Ana Ruiz</figcaption></figure></body></html>"
    )
    image = page_image(page, "https://news.example.org/story")
    assert image is not None and (image.caption, image.credit) == ("The new floor, 1930ft2.", "Ana Ruiz")


def test_script_and_style_text_never_reach_a_title_or_the_text():
    content = "<p>Hello, world!</p><script>alert();</script><style>p { color: red }</style>"
    feed = parse_document(
        json_feed([{"id": "1", "url": "https://news.example.org/n/1", "content_html": content}]),
        url="https://news.example.org/feed.json",
    )
    (note,) = feed.articles
    assert note.title == "Hello, world!"
    assert "alert" not in (note.content_html or "") and "color" not in (note.content_html or "")
    # The same in RSS: an untitled item, and a title whose markup carries a script (escaped, as feeds do).
    body = rss(
        [
            {"link": "https://news.example.org/a", "description": "&lt;style&gt;b{}&lt;/style&gt;Short note."},
            {"title": "Breaking &lt;script&gt;track()&lt;/script&gt;news", "link": "https://news.example.org/b"},
        ]
    )
    untitled, titled = parse_document(body, url="https://news.example.org/feed").articles
    assert untitled.title == "Short note." and titled.title == "Breaking news"


# --- point 2: undated items ------------------------------------------------------------------------


def test_an_undated_item_is_dated_when_first_seen_and_a_later_gather_does_not_move_it(settings, tmp_path):
    path = tmp_path / "undated.rss"
    path.write_bytes(rss([long_item(1)]))  # no <pubDate>
    core = core_for(settings, newsletter([SourceConfig(name="wire", url=str(path), section="Reporting")]))
    try:
        assert gather_sources(core.sessions, core.config, now=NOW).new == 1
        later = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
        assert gather_sources(core.sessions, core.config, now=later).new == 0  # unchanged
        changed = long_item(1, title="Story 1, corrected")
        path.write_bytes(rss([changed]))
        report = gather_sources(core.sessions, core.config, now=datetime(2026, 11, 27, tzinfo=UTC))
        assert (report.new, report.updated) == (0, 1)
        with core.sessions() as session:
            (article,) = session.scalars(select(Article))
        assert article.title == "Story 1, corrected"
        assert article.published_at == article.first_seen_at == NOW
    finally:
        core.close()


# --- point 3: exit codes and --json ----------------------------------------------------------------


def test_gather_exits_0_when_every_source_was_read_1_when_one_failed_2_for_a_bad_file(cli_env, tmp_path):
    wire = tmp_path / "wire.rss"
    wire.write_bytes(rss([long_item(1), long_item(2)]))
    good = config_with_sources(tmp_path, "good.toml", [("Wire", str(wire))])
    all_read = run_cli(["gather", "--json"], {**cli_env, "DIGEST_CONFIG": str(good)}, tmp_path)
    assert all_read.returncode == 0, all_read.stderr
    (line,) = all_read.stdout.splitlines()
    assert json.loads(line) == {"name": "Wire", "ok": True, "error": None, "warning": None, "not_modified": False,
                                "items": 2, "kept": 2, "new": 2, "updated": 0}  # fmt: skip

    wire.write_bytes(rss([long_item(1), long_item(2), long_item(3)]))
    some_failed = config_with_sources(
        tmp_path, "some-failed.toml", [("Wire", str(wire)), ("Down", "http://127.0.0.1:1/feed")]
    )
    partly = run_cli(["gather", "--json"], {**cli_env, "DIGEST_CONFIG": str(some_failed)}, tmp_path)
    assert partly.returncode == 1
    wire_line, down_line = (json.loads(line) for line in partly.stdout.splitlines())
    assert wire_line["ok"] and (wire_line["new"], wire_line["items"], wire_line["kept"]) == (1, 3, 3)
    assert not down_line["ok"] and "cannot connect" in down_line["error"] and down_line["items"] is None
    assert "source 'Down': cannot connect" in partly.stderr
    text = run_cli(["gather"], {**cli_env, "DIGEST_CONFIG": str(some_failed)}, tmp_path)
    assert text.returncode == 1 and "sources ok: 1, failed: 1" in text.stdout

    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace('section = "Reporting"\n', 'section = "Sport"\n'))
    refused = run_cli(["gather", "--json"], {**cli_env, "DIGEST_CONFIG": str(bad)}, tmp_path)
    assert refused.returncode == 2 and refused.stdout == "" and "Sport" in refused.stderr


def test_run_once_builds_and_sends_without_a_failed_source_names_it_and_exits_1(cli_env, tmp_path):
    imported = run_cli(["subscribers", "import", str(ROOT / "examples/subscribers.csv")], cli_env, tmp_path)
    assert imported.returncode == 0, imported.stderr
    text = EXAMPLE_CONFIG.read_text().replace('url = "feeds/opinion.rss"', 'url = "http://127.0.0.1:1/x"')
    config = tmp_path / "digest.toml"
    config.write_text(text.replace('url = "feeds/', f'url = "{ROOT}/examples/feeds/'))
    result = run_cli(["run", "--once", "--week", SAMPLE_WEEK], {**cli_env, "DIGEST_CONFIG": str(config)}, tmp_path)
    assert result.returncode == 1
    assert "gathered 2/3 sources" in result.stdout and "this send 6 recipients in 1 batch: sent 6," in result.stdout
    assert len(list((tmp_path / "outbox" / "2026-w48").glob("*.eml"))) == 6
    assert "failed sources, left out of this run: 'Opinion'" in result.stderr
    assert "source 'Opinion': cannot connect to 127.0.0.1" in result.stderr


# --- point 4: `digest sources` -----------------------------------------------------------------------


def test_sources_shows_the_last_error_with_its_time_and_the_last_fetchs_items_and_how_many_were_kept(cli_env, tmp_path):
    notes = tmp_path / "notes.json"
    # JSON Feed items must be objects; the number and the string are items we cannot keep.
    kept = [{"id": str(n), "url": f"https://news.example.org/n/{n}", "content_html": LONG_BODY} for n in (1, 2)]
    notes.write_bytes(json_feed([kept[0], 42, kept[1]]))
    broken = tmp_path / "broken.json"
    broken.write_bytes(json_feed([7, "not an item"]))
    config = config_with_sources(tmp_path, "digest.toml", [("Notes", str(notes)), ("Broken", str(broken))])
    env = {**cli_env, "DIGEST_CONFIG": str(config)}
    gathered = run_cli(["gather"], env, tmp_path)
    # A feed with items of which none could be kept is a failure of its source, not a quiet success.
    assert gathered.returncode == 1
    assert gathered.stderr.count("none of the feed's 2 items could be kept") == 1  # once, not live and again
    assert "source 'Broken': none of the feed's 2 items could be kept" in gathered.stderr

    rows = {r["name"]: r for r in map(json.loads, run_cli(["sources", "--json"], env, tmp_path).stdout.splitlines())}
    assert (rows["Notes"]["last_items"], rows["Notes"]["last_kept"], rows["Notes"]["articles"]) == (3, 2, 2)
    assert rows["Notes"]["last_error"] is None and not rows["Notes"]["failing"]
    assert (rows["Broken"]["last_items"], rows["Broken"]["last_kept"]) == (2, 0) and rows["Broken"]["failing"]
    assert "none of the feed's 2 items" in rows["Broken"]["last_error"]
    error_at = datetime.fromisoformat(rows["Broken"]["last_error_at"])
    assert abs((datetime.now(UTC) - error_at).total_seconds()) < 120

    table = run_cli(["sources"], {**env, "COLUMNS": "400"}, tmp_path)
    assert table.returncode == 0, table.stderr
    assert "last fetch" in table.stdout and "2 of 3 items kept" in table.stdout and "0 of 2 items kept" in table.stdout
    # Shown in the newsletter's timezone, with the zone's name.
    shown = load_newsletter(config).local_time(error_at)
    assert f"{shown}: none of the feed's 2 items" in table.stdout


def test_a_304_keeps_the_counts_of_the_last_document_read(settings):
    def feed(request):
        if request.headers.get("if-none-match") == '"v1"':
            return Reply(304, headers={"ETag": '"v1"'})
        return Reply(body=rss([long_item(1), long_item(2)]), headers={"ETag": '"v1"'})

    with FeedServer({"/feed": feed}) as server:
        core = core_for(settings, newsletter([("wire", server.url("/feed"))]))
        try:
            gather_sources(core.sessions, core.config, now=NOW)
            second = gather_sources(core.sessions, core.config)
            assert second.sources[0].not_modified and second.sources[0].items is None
            with core.sessions() as session:
                source = session.scalars(select(Source)).one()
            assert (source.last_items, source.last_kept) == (2, 2)
        finally:
            core.close()


def test_the_counts_migration_goes_down_and_up_without_losing_sources_or_articles(core, tmp_path):
    path = tmp_path / "wire.rss"
    path.write_bytes(rss([long_item(1)]))
    config = core.config.model_copy(update={"sources": [SourceConfig(name="wire", url=str(path), section="Reporting")]})
    assert gather_sources(core.sessions, config, now=NOW).new == 1

    def source_columns() -> set[str]:
        return {c["name"] for c in inspect(core.engine).get_columns("sources")}

    command.downgrade(db.alembic_config(core.engine), "0009")
    assert not {"last_items", "last_kept"} & source_columns()
    with core.engine.connect() as connection:
        # Dropping the columns must not drop the table: with foreign keys on, that deletes the articles.
        assert connection.exec_driver_sql("SELECT count(*) FROM articles").scalar() == 1
        assert connection.exec_driver_sql("SELECT count(*) FROM sources").scalar() == 1
    db.upgrade(core.engine)
    assert {"last_items", "last_kept"} <= source_columns()
    with core.sessions() as session:
        source = session.scalars(select(Source)).one()
        assert source.last_items is None and len(list(session.scalars(select(Article)))) == 1
