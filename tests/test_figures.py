"""An issue's figures straight from the store: clicks matched to articles, other issues' events left out."""

import uuid

from digest.jobs.figures import issue_figures
from subscribers.events import store_events
from tests.fakes.seed import NOW, address, make_issue

ARTICLE = "https://meridian-review.example.org/2026/11/cafe-diplomacy"


def sent_issue(session, week: str):
    issue = make_issue(session, week)
    issue.status, issue.send_started_at, issue.sent_at = "sent", NOW, NOW
    issue.content = {"top": {"title": "Café diplomacy", "url": ARTICLE}, "sections": []}
    session.flush()
    return issue


def store(session, issue, *events: tuple[str, int, dict]) -> None:
    """As the webhook stores them: the events, and their issue's running counts."""
    bodies = [
        {"event": kind, "email": address(reader), "issue_id": str(issue.id), "sg_event_id": uuid.uuid4().hex, **payload}
        for kind, reader, payload in events
    ]
    store_events(session, bodies, now=NOW)
    session.flush()


def test_clicks_on_an_articles_tracked_links_count_for_it_and_odd_urls_count_as_other_clicks(core):
    with core.sessions.begin() as session:
        issue = sent_issue(session, "2026-W48")
        store(
            session,
            issue,
            ("click", 1, {"url": ARTICLE + "?utm_source=digest&utm_medium=email&utm_campaign=2026-w48"}),
            ("click", 1, {"url": ARTICLE + "?utm_source=digest&utm_medium=email&utm_campaign=2026-w48"}),
            ("click", 2, {"url": ARTICLE.replace("meridian", "MERIDIAN") + "?UTM_source=x#comments"}),
            ("click", 3, {"url": "https://bsky.app/profile/meridian?utm_source=digest"}),
            ("click", 4, {}),
            ("click", 5, {"url": 42}),
            ("click", 6, {"url": {"href": ARTICLE}}),
            ("open", 1, {}),
        )
        figures = issue_figures(session, issue)
    [row] = figures.articles
    assert (row.people, row.clicks) == (2, 3)
    assert figures.other_clicks == 4
    assert figures.clicked == 6 and figures.opened == 1 and figures.events == 8


def test_another_issues_events_do_not_reach_an_issues_figures(core):
    with core.sessions.begin() as session:
        issue, earlier = sent_issue(session, "2026-W48"), sent_issue(session, "2026-W47")
        store(session, issue, ("delivered", 1, {}), ("open", 1, {}), ("click", 1, {"url": ARTICLE}))
        store(
            session,
            earlier,
            ("delivered", 1, {}),
            ("delivered", 2, {}),
            ("open", 2, {}),
            ("click", 2, {"url": ARTICLE}),
            ("spamreport", 2, {}),
        )
        figures = issue_figures(session, issue)
    assert (figures.delivered, figures.opened, figures.clicked, figures.complained) == (1, 1, 1, 0)
    assert figures.articles[0].people == 1 and figures.events == 3
