"""Composing an issue from the store (SQLite and PostgreSQL): window, sections, top story, pinning."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from digest.config import load_newsletter
from digest.content.compose import compose_issue, issue_window
from digest.content.summaries import summary_limits, summary_marker
from digest.content.weeks import Week
from digest.errors import NothingToSend, UsageError
from digest.store.models import Article, Issue, Source
from tests.conftest import EXAMPLE_CONFIG

W48 = Week(2026, 48)
# The example newsletter's timezone is America/New_York: W48 runs from Nov 23 05:00 to Nov 30 05:00 UTC.
IN_W48 = datetime(2026, 11, 25, 12, tzinfo=UTC)
_ids = itertools.count(1)
EXAMPLE_LIMITS = summary_limits(load_newsletter(EXAMPLE_CONFIG))  # the newsletter the tests compose


def add_article(session, section: str, published: datetime, title: str | None = None) -> Article:
    source = session.query(Source).filter_by(name=section).one_or_none()
    if source is None:
        source = Source(name=section, url=f"https://example.org/{section}.rss", section=section)
        session.add(source)
        session.flush()
    n = next(_ids)
    article = Article(
        source_id=source.id,
        url=f"https://example.org/{section.lower()}/{n}",
        title=title or f"{section} article {n}",
        section=section,
        published_at=published,
        content_hash=f"h{n}",
        teaser=f"Teaser {n}.",
        excerpt=f"Excerpt {n}.",
        summary_hash=summary_marker(f"h{n}", EXAMPLE_LIMITS),  # summarized already: composing keeps these teasers
    )
    session.add(article)
    session.flush()
    return article


def compose(core, week=W48, now=datetime(2026, 11, 30, 13, tzinfo=UTC), **kw):
    with core.sessions.begin() as session:
        composed = compose_issue(session, core.config, week, now=now, **kw)
        return composed.issue.content, composed.issue


def test_sections_come_in_the_configured_order_with_the_newest_of_the_first_as_top_story(core):
    with core.sessions.begin() as s:
        opinion = add_article(s, "Opinion", IN_W48)
        old_report = add_article(s, "Reporting", IN_W48 - timedelta(days=1))
        new_report = add_article(s, "Reporting", IN_W48 + timedelta(hours=1))
        analysis = add_article(s, "Analysis", IN_W48 - timedelta(hours=3))
        ids = {a.title: a.id for a in (opinion, old_report, new_report, analysis)}
    content, issue = compose(core)
    assert content["top"]["id"] == ids[new_report.title]
    assert [s["name"] for s in content["sections"]] == ["Reporting", "Analysis", "Opinion"]
    assert [a["id"] for a in content["sections"][0]["articles"]] == [ids[old_report.title]]
    assert issue.status == "draft" and issue.week == "2026-W48" and issue.subject.endswith(new_report.title)


def test_no_article_twice_and_empty_sections_left_out(core):
    with core.sessions.begin() as s:
        add_article(s, "Reporting", IN_W48)
        add_article(s, "Opinion", IN_W48)
    content, _ = compose(core)
    # The only Reporting article is the top story, so Reporting has nothing left; Analysis had nothing.
    assert [s["name"] for s in content["sections"]] == ["Opinion"]
    ids = [content["top"]["id"], *(a["id"] for s in content["sections"] for a in s["articles"])]
    assert len(ids) == len(set(ids)) == 2


def test_sections_hold_at_most_the_configured_number_of_articles(core):
    limit = core.config.issue.articles_per_section
    with core.sessions.begin() as s:
        for i in range(limit + 3):
            add_article(s, "Analysis", IN_W48 - timedelta(minutes=i))
    content, _ = compose(core)
    (analysis,) = content["sections"]
    assert len(analysis["articles"]) == limit
    published = [a["published"] for a in analysis["articles"]]
    assert published == sorted(published, reverse=True)


def test_an_explicit_week_takes_monday_to_monday_local_time(core):
    with core.sessions.begin() as s:
        add_article(s, "Reporting", datetime(2026, 11, 23, 4, 59, tzinfo=UTC), "Sunday night in New York")
        add_article(s, "Reporting", datetime(2026, 11, 23, 5, 0, tzinfo=UTC), "Monday midnight in New York")
        add_article(s, "Opinion", datetime(2026, 11, 30, 5, 0, tzinfo=UTC), "Next Monday")
    content, issue = compose(core)
    assert content["top"]["title"] == "Monday midnight in New York" and content["sections"] == []
    assert issue.window_start == datetime(2026, 11, 23, 5, tzinfo=UTC)
    assert issue.window_end == datetime(2026, 11, 30, 5, tzinfo=UTC)
    assert content["date"] == "2026-11-30"


def test_without_a_week_the_window_starts_where_the_last_sent_issue_ended(core):
    sent_end = datetime(2026, 11, 23, 13, tzinfo=UTC)
    with core.sessions.begin() as s:
        s.add(
            Issue(
                week="2026-W47",
                slug="2026-w47",
                status="sent",
                window_start=sent_end - timedelta(days=7),
                window_end=sent_end,
                subject="last week",
                content={},
            )
        )
        add_article(s, "Reporting", sent_end - timedelta(minutes=1), "Already sent last week")
        add_article(s, "Reporting", sent_end + timedelta(minutes=1), "New since the last issue")
    now = datetime(2026, 11, 30, 13, tzinfo=UTC)  # Monday 08:00 in New York, the weekly job
    content, issue = compose(core, week=None, now=now)
    assert content["top"]["title"] == "New since the last issue" and content["sections"] == []
    assert (issue.window_start, issue.window_end) == (sent_end, now)
    # Filed under the week that just ended, as `--week 2026-W48` would be.
    assert issue.week == "2026-W48"


def test_without_a_sent_issue_the_window_is_the_configured_number_of_days(core):
    now = datetime(2026, 11, 30, 13, tzinfo=UTC)
    with core.sessions.begin() as s:
        add_article(s, "Reporting", now - timedelta(days=7, minutes=1), "Eight days ago")
        add_article(s, "Analysis", now - timedelta(days=6), "Six days ago")
        window = issue_window(s, core.config, None, now=now)
    assert window.start == now - timedelta(days=core.config.issue.window_days) and window.end == now
    content, _ = compose(core, week=None, now=now)
    assert content["top"]["title"] == "Six days ago" and content["sections"] == []


def test_a_window_without_articles_composes_no_issue_and_says_so(core):
    with core.sessions.begin() as s:
        add_article(s, "Reporting", IN_W48)
    with pytest.raises(NothingToSend, match="no new articles in 2026-W10"):
        compose(core, week=Week(2026, 10))
    with core.sessions() as s:
        assert s.query(Issue).count() == 0


def test_an_editors_pinned_top_story_wins_and_survives_rebuilds_until_unpinned(core):
    with core.sessions.begin() as s:
        newest = add_article(s, "Reporting", IN_W48 + timedelta(hours=2)).id
        pinned = add_article(s, "Opinion", IN_W48).id
    content, _ = compose(core, pin=pinned)
    assert content["top"]["id"] == pinned
    assert [a["id"] for s in content["sections"] for a in s["articles"]] == [newest]
    content, issue = compose(core)
    assert content["top"]["id"] == pinned and issue.top_article_id == pinned
    content, issue = compose(core, unpin=True)
    assert content["top"]["id"] == newest and issue.top_article_id is None


def test_pinning_an_article_outside_the_issue_is_refused(core):
    with core.sessions.begin() as s:
        add_article(s, "Reporting", IN_W48)
        elsewhere = add_article(s, "Reporting", IN_W48 - timedelta(days=14)).id
    with pytest.raises(UsageError, match=f"article {elsewhere} cannot be the top story of 2026-W48"):
        compose(core, pin=elsewhere)


def test_a_sent_issue_is_left_as_it_was(core):
    with core.sessions.begin() as s:
        add_article(s, "Reporting", IN_W48, "First")
    _, issue = compose(core)
    with core.sessions.begin() as s:
        s.get(Issue, issue.id).status = "sent"
        add_article(s, "Reporting", IN_W48 + timedelta(hours=1), "Later")
    content, again = compose(core)
    assert again.id == issue.id and content["top"]["title"] == "First"
    with pytest.raises(UsageError, match="is sent; its top story can no longer change"):
        compose(core, unpin=True)
