"""Benchmark: an issue's figures (digest/figures.py) over many stored provider events.

Seeds an issue sent to N subscribers, with events like a real week's (every recipient delivered,
about 40% opening twice, 8% clicking three times, a few bounces, complaints and unsubscribes), then
prints the median time of `issue_figures`, which the preview page and figures.json run on every view.

    PYTHONPATH=$PWD .venv/bin/python bench/figures.py [--recipients 10000 100000] [--db sqlite postgres]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from digest import db  # noqa: E402
from digest.jobs.figures import issue_figures  # noqa: E402
from digest.store.models import Batch, Delivery, Event, Issue  # noqa: E402
from subscribers.models import Subscriber  # noqa: E402
from tests.fakes.seed import NOW, address, make_issue, seed_subscribers  # noqa: E402
from tests.pgschema import throwaway_schema  # noqa: E402

ARTICLES = [f"https://meridian-review.example.org/2026/11/article-{n}" for n in range(12)]


def events_of(i: int) -> list[tuple[str, dict]]:
    """Recipient i's events: all delivered, 40% open twice, 8% click three times, a few leave."""
    found: list[tuple[str, dict]] = [("delivered", {})]
    if i % 5 < 2:
        found += [("open", {}), ("open", {})]
    if i % 25 < 2:
        found += [
            ("click", {"url": ARTICLES[(i + k) % len(ARTICLES)] + "?utm_source=m&utm_medium=email"}) for k in range(3)
        ]
    if i % 200 == 0:
        found.append(("bounce", {"type": "bounce"}))
    if i % 1000 == 0:
        found.append(("spamreport", {}))
    if i % 500 == 0:
        found.append(("unsubscribe", {}))
    return found


def seed(sessions, recipients: int) -> int:
    with sessions.begin() as session:
        seed_subscribers(session, recipients)
        issue = make_issue(session)
        issue.status, issue.send_started_at, issue.sent_at = "sent", NOW, NOW
        issue.content = {
            "top": {"title": "Top", "url": ARTICLES[0]},
            "sections": [
                {"name": "Reporting", "articles": [{"title": f"A{n}", "url": u} for n, u in enumerate(ARTICLES[1:])]}
            ],
        }
        batch = Batch(issue_id=issue.id, number=1, status="submitted")
        session.add(batch)
        session.flush()
        ids = dict(session.execute(select(Subscriber.email, Subscriber.id)).all())
        session.execute(
            insert(Delivery),
            [{"issue_id": issue.id, "batch_id": batch.id, "subscriber_id": i, "status": "sent"} for i in ids.values()],
        )
        rows: list[dict] = []
        for i in range(1, recipients + 1):
            email = address(i)
            for kind, payload in events_of(i):
                rows.append(
                    {"provider_event_id": f"b{len(rows)}-{i}", "type": kind, "email": email, "issue_id": issue.id,
                     "subscriber_id": ids[email], "payload": {"event": kind, **payload}, "occurred_at": NOW,
                     "received_at": NOW}
                )  # fmt: skip
            if len(rows) >= 20_000:
                session.execute(insert(Event), rows)
                rows = []
        if rows:
            session.execute(insert(Event), rows)
        return issue.id


def run(url: str, recipients: int, repeat: int = 5) -> None:
    engine = db.make_engine(url)
    db.upgrade(engine)
    sessions = db.session_factory(engine)
    issue_id = seed(sessions, recipients)
    if engine.dialect.name == "postgresql":
        # A live store's tables have been vacuumed and analyzed by autovacuum; a table loaded a moment
        # ago has neither, and its plans would be guesses (a sort spilled to disk, no index-only scan).
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE events, deliveries"))
    with sessions() as session:
        events = session.scalar(text("SELECT count(*) FROM events"))
        issue = session.get(Issue, issue_id)
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            figures = issue_figures(session, issue)
            times.append(time.perf_counter() - started)
    engine.dispose()
    print(
        f"{engine.dialect.name:10} recipients {recipients:>7}  events {events:>7}  "
        f"figures median {statistics.median(times) * 1000:7.1f} ms  "
        f"(opened {figures.opened}, clicked {figures.clicked}, bounced {figures.bounced})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    args = parser.parse_args()
    for recipients in args.recipients:
        for kind in args.db:
            if kind == "sqlite":
                with tempfile.TemporaryDirectory() as folder:
                    run(f"sqlite:///{folder}/bench.db", recipients)
                continue
            with throwaway_schema("bench") as url:
                run(url, recipients)


if __name__ == "__main__":
    main()
