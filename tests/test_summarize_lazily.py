"""Summaries are made when an article is first shown, not when it is gathered (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from digest.config import SummaryConfig
from digest.content.compose import compose_content, compose_issue
from digest.content.summaries import INLINE_MAX, ensure_summaries, is_stale, summary_limits
from digest.content.weeks import Week
from digest.gather import gather_sources
from digest.jobs.articles import edit_article
from digest.store.models import Article
from digest.summarize import SummaryLimits, summarize_html
from tests.fakes.feed_server import FeedServer, Reply
from tests.gather_helpers import core_for, newsletter, rss

W48 = Week(2026, 48)
BUILT = datetime(2026, 11, 30, 13, tzinfo=UTC)


# Each paragraph says something else: the summarizer leaves out a sentence that repeats another.
_SAYS = (
    "reports that ministers from four coastal states met in the capital to settle a long quarrel over fishing quotas",
    "explains why the northern harvest failed after a wet spring flooded the valleys and delayed planting",
    "describes the new bridge across the estuary, whose steel arches were shipped in pieces from a yard abroad",
    "notes a court ruling that struck down the city's parking charges because the council never consulted residents",
    "sets out the budget, which raises school spending while cutting grants to museums, theatres and libraries",
    "recalls a strike by dock workers that closed the port for nine days during the busiest month",
    "warns that forecasters expect storms, hail and gales along the western shore before the weekend",
    "covers a vote in parliament where rebels from the governing party sided with the opposition",
)
LONG_BODY = "".join(f"<p>Paragraph {n} {says}.</p>" for n, says in enumerate(_SAYS))


def item(n: int, word: str = "Story") -> dict:
    return {
        "title": f"Story {n}",
        "link": f"https://news.example.org/story-{n}",
        "guid": f"story-{n}",
        "date": f"Tue, 24 Nov 2026 {n:02d}:00:00 +0000",  # a later n is a newer article
        "content": LONG_BODY.replace("Paragraph", f"{word} {n}"),
    }


def stored(core) -> dict[str, Article]:
    with core.sessions() as session:
        return {a.title: a for a in session.scalars(select(Article))}


def compose(core) -> dict:
    with core.sessions.begin() as session:
        return compose_issue(session, core.config, W48, now=BUILT).issue.content


def in_issue(content: dict) -> list[dict]:
    return [content["top"], *(a for s in content["sections"] for a in s["articles"])]


def test_gathering_summarizes_no_article(settings):
    with FeedServer({"/feed": Reply(body=rss([item(1), item(2)]))}) as server:
        core = core_for(settings, newsletter([("wire", server.url("/feed"))]))
        try:
            report = gather_sources(core.sessions, core.config)
            assert report.new == 2
            for article in stored(core).values():
                assert article.content_html and article.summary_hash is None
                assert (article.teaser, article.excerpt, article.text, article.reading_minutes) == (None,) * 4
        finally:
            core.close()


def test_composing_an_issue_summarizes_exactly_the_articles_in_it(settings):
    limit = newsletter([]).issue.articles_per_section
    count = limit + 3  # one top story, `limit` cards, two left over
    with FeedServer({"/feed": Reply(body=rss([item(n) for n in range(1, count + 1)]))}) as server:
        core = core_for(settings, newsletter([("wire", server.url("/feed"))]))
        try:
            gather_sources(core.sessions, core.config)
            content = compose(core)
            cards = in_issue(content)
            assert [c["title"] for c in cards] == [f"Story {n}" for n in range(count, 2, -1)]
            articles = stored(core)  # committed with the issue
            for card in cards:
                article = articles[card["title"]]
                assert not is_stale(article, core.summary_limits)
                assert card["teaser"] == article.teaser and card["teaser"].startswith(card["title"] + " 0")
                assert card["excerpt"] == article.excerpt and card["reading_minutes"] == article.reading_minutes
            for left in ("Story 1", "Story 2"):  # in the week, but not in the issue
                assert articles[left].summary_hash is None and articles[left].teaser is None
        finally:
            core.close()


def test_an_article_changed_upstream_gets_a_fresh_summary_at_the_next_compose_and_keeps_its_override(settings):
    routes = {"/feed": Reply(body=rss([item(1)]))}
    with FeedServer(routes) as server:
        core = core_for(settings, newsletter([("wire", server.url("/feed"))]))
        try:
            gather_sources(core.sessions, core.config)
            first = compose(core)["top"]
            assert first["teaser"].startswith("Story 1 0")
            edit_article(core, first["id"], teaser="An editor's teaser.")

            server.routes["/feed"] = Reply(body=rss([item(1, word="Revised")]))
            assert gather_sources(core.sessions, core.config).updated == 1
            gathered = stored(core)["Story 1"]
            assert is_stale(gathered, core.summary_limits)  # stale until something shows it
            assert gathered.excerpt == first["excerpt"]

            again = compose(core)["top"]
            article = stored(core)["Story 1"]
            assert not is_stale(article, core.summary_limits)
            assert article.teaser.startswith("Revised 1 0") and again["excerpt"].startswith("Revised 1 0")
            assert article.teaser_override == "An editor's teaser." and again["teaser"] == "An editor's teaser."
        finally:
            core.close()


def test_articles_shown_after_the_summary_lengths_change_get_summaries_of_the_new_lengths(settings):
    with FeedServer({"/feed": Reply(body=rss([item(1)]))}) as server:
        config = newsletter([("wire", server.url("/feed"))])
        core = core_for(settings, config)
        shorter = core_for(settings, config.model_copy(update={"summary": SummaryConfig(excerpt_words=40)}))
        try:
            gather_sources(core.sessions, core.config)
            before = compose(core)["top"]
            assert len(before["excerpt"].split()) > 40  # two of the body's sentences
            after = compose(shorter)["top"]  # the editor asked for shorter excerpts
            assert 0 < len(after["excerpt"].split()) <= 40 and before["excerpt"].startswith(after["excerpt"])
            article = stored(core)["Story 1"]
            assert article.excerpt == after["excerpt"]
            assert not is_stale(article, shorter.summary_limits) and is_stale(article, core.summary_limits)
        finally:
            shorter.close()
            core.close()


def test_a_compose_that_is_not_committed_stores_no_summaries_and_the_next_one_makes_them_again(settings):
    with FeedServer({"/feed": Reply(body=rss([item(1)]))}) as server:
        core = core_for(settings, newsletter([("wire", server.url("/feed"))]))
        try:
            gather_sources(core.sessions, core.config)
            with core.sessions() as session:  # read-only, as the preview's "would a rebuild change it?"
                looked = compose_content(session, core.config, W48)
            assert looked["top"]["teaser"].startswith("Story 1 0")
            assert stored(core)["Story 1"].summary_hash is None
            assert compose(core)["top"]["teaser"] == looked["top"]["teaser"]
            assert stored(core)["Story 1"].summary_hash is not None
        finally:
            core.close()


# --- without a store: the rows' values --------------------------------------------------------


def unsaved(n: int, **values) -> Article:
    html = LONG_BODY.replace("Paragraph", f"Story {n} paragraph")
    return Article(id=n, title=f"Story {n}", content_html=html, content_hash=f"h{n}", **values)


def test_many_stale_articles_are_summarized_on_worker_processes_the_same_as_in_this_process():
    limits = SummaryLimits()
    inline = [unsaved(n) for n in range(INLINE_MAX + 10)]
    pooled = [unsaved(n) for n in range(INLINE_MAX + 10)]
    assert ensure_summaries(inline, limits, workers=0) == len(inline)
    assert ensure_summaries(pooled, limits) == len(pooled)  # more than INLINE_MAX: on worker processes
    columns = ("teaser", "excerpt", "pull_quote", "reading_minutes", "text", "summary_hash")
    assert [[getattr(a, c) for c in columns] for a in pooled] == [[getattr(a, c) for c in columns] for a in inline]
    assert not any(is_stale(a, limits) for a in pooled)
    assert ensure_summaries(pooled, limits) == 0  # current now: nothing to do


def test_a_clean_dek_is_the_teaser_a_cut_one_is_not_and_an_editors_overrides_are_left_alone():
    limits = summary_limits(newsletter([]))
    computed = summarize_html(unsaved(1).content_html, limits=limits).teaser
    with_dek = unsaved(1, dek="Four coastal states settle a long quarrel over fishing quotas.")
    cut_dek = unsaved(3, dek="Ministers from four coastal states met in the capital to settle a […]")
    edited = unsaved(2, dek="A dek of its own.", teaser_override="Editor's.", excerpt_override="Editor's too.")
    assert ensure_summaries([with_dek, cut_dek, edited, with_dek], limits) == 3
    assert with_dek.teaser == with_dek.dek == "Four coastal states settle a long quarrel over fishing quotas."
    assert cut_dek.teaser == summarize_html(cut_dek.content_html, limits=limits).teaser and cut_dek.dek
    assert with_dek.shown_teaser == with_dek.dek and computed != with_dek.dek
    assert edited.dek == "A dek of its own." and edited.shown_teaser == "Editor's."
    assert (edited.teaser_override, edited.excerpt_override) == ("Editor's.", "Editor's too.")
    # A new dek (the feed changed its description) makes the summaries stale.
    with_dek.dek = "A different description of the same story."
    assert is_stale(with_dek, limits) and ensure_summaries([with_dek], limits) == 1
    assert with_dek.teaser == "A different description of the same story."
