"""Benchmark: an issue's figures (digest/jobs/figures.py) at a million recipients.

Seeds, with INSERT ... SELECT over a series the store generates (generate_series on PostgreSQL, a
recursive CTE on SQLite), an issue sent to N subscribers with events like a real week's (every recipient
delivered, 40% opening twice, 8% clicking three times, a few bounces, complaints and unsubscribes), and
the running counts the webhook keeps for them (event_counts, event_people), as an aggregate of the same
events; the store's triggers count the deliveries per batch (delivery_counts) as they are inserted. Then
prints the median time of `issue_figures`, which the preview page and figures.json run on every view
(target: 200 ms at 1,000,000 recipients), beside the time of the old computation, which counted the
issue's events on every view (tests/figures_by_scan.py), and whether both give the same figures.

    PYTHONPATH=$PWD .venv/bin/python bench/figures.py [--recipients 1000000] [--db sqlite postgres] [--no-baseline]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from digest.jobs.figures import issue_figures  # noqa: E402
from digest.store import db  # noqa: E402
from digest.store.models import Batch, Issue  # noqa: E402
from subscribers.events import link_key, status_kind  # noqa: E402
from tests.fakes.seed import NOW, make_issue  # noqa: E402
from tests.figures_by_scan import scanned_figures  # noqa: E402
from tests.pgschema import throwaway_schema  # noqa: E402

ARTICLES = [f"https://meridian-review.example.org/2026/11/article-{n}" for n in range(12)]
UTM = "?utm_source=m&utm_medium=email"
TIME = NOW.replace(tzinfo=None).isoformat(" ")


def series(dialect: str, count: int) -> str:
    """A FROM clause giving i = 1..count."""
    if dialect == "postgresql":
        return f"generate_series(1, {count}) AS g(i)"
    return f"(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {count}) SELECT i FROM s) AS g"


def seed(engine, sessions, recipients: int) -> int:
    with sessions.begin() as session:
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
        issue_id, batch_id = issue.id, batch.id
    dialect = engine.dialect.name
    three = "(SELECT 0 AS copy UNION ALL SELECT 1 UNION ALL SELECT 2)"
    concat = "'reader' || g.i || '@example.org'"
    if dialect == "postgresql":
        obj, suffix = "json_build_object", "g.i::text"
    else:
        obj, suffix = "json_object", "g.i"
    # subscribers.email_hash: NOT NULL on PostgreSQL, computed there as the store does; SQLite's column
    # defaults to '' (no figure reads it).
    hash_column, hash_value = (
        (", email_hash", f", encode(sha256(convert_to({concat}, 'UTF8')), 'hex')")
        if dialect == "postgresql"
        else ("", "")
    )
    # Clicks: recipient i clicks articles (i + k) % 12 for k = 0, 1, 2 when i % 25 < 2.
    articles = " UNION ALL ".join(f"SELECT {n} AS n, '{u}' AS url" for n, u in enumerate(ARTICLES))
    statements = [
        f"""INSERT INTO subscribers (id, email, status, consent_source, consent_at, confirmed_at, preferences,
            link_key, created_at, updated_at{hash_column})
            SELECT g.i, {concat}, 'active', 'import', '{TIME}', '{TIME}', '{{}}', 'k' || {suffix}, '{TIME}', '{TIME}'
                {hash_value}
            FROM {series(dialect, recipients)}""",
        f"""INSERT INTO deliveries (issue_id, batch_id, subscriber_id, status)
            SELECT {issue_id}, {batch_id}, g.i, 'sent' FROM {series(dialect, recipients)}""",
        # One row per event: (i, type, payload, copy) from the recipient number.
        f"""INSERT INTO events (provider_event_id, type, email, issue_id, subscriber_id, payload, occurred_at,
            received_at)
            SELECT e.kind || '-' || e.i || '-' || e.copy, e.kind, 'reader' || e.i || '@example.org', {issue_id}, e.i,
                   e.payload, '{TIME}', '{TIME}'
            FROM (
              SELECT g.i, 'delivered' AS kind, 0 AS copy, {obj}('event', 'delivered') AS payload
              FROM {series(dialect, recipients)}
              UNION ALL SELECT g.i, 'open', c.copy, {obj}('event', 'open')
              FROM {series(dialect, recipients)} CROSS JOIN (SELECT 0 AS copy UNION ALL SELECT 1) AS c
              WHERE g.i % 5 < 2
              UNION ALL SELECT g.i, 'click', c.copy, {obj}('event', 'click', 'url', a.url || '{UTM}')
              FROM {series(dialect, recipients)} CROSS JOIN {three} AS c
              JOIN ({articles}) AS a ON a.n = (g.i + c.copy) % 12
              WHERE g.i % 25 < 2
              UNION ALL SELECT g.i, 'bounce', 0, {obj}('event', 'bounce', 'type', 'bounce')
              FROM {series(dialect, recipients)} WHERE g.i % 200 = 0
              UNION ALL SELECT g.i, 'spamreport', 0, {obj}('event', 'spamreport')
              FROM {series(dialect, recipients)} WHERE g.i % 1000 = 0
              UNION ALL SELECT g.i, 'unsubscribe', 0, {obj}('event', 'unsubscribe')
              FROM {series(dialect, recipients)} WHERE g.i % 500 = 0
            ) AS e""",
    ]
    # The counts the webhook keeps for those events (subscribers.events.count_events), as aggregates of
    # them. A person here is the recipient's number (the webhook keeps a hash of the address): the
    # figures read only the counts and the people of the status kinds, which are subscriber ids there too.
    url = "e.payload->>'url'" if dialect == "postgresql" else "json_extract(e.payload, '$.url')"
    links = " UNION ALL ".join(f"SELECT '{u}{UTM}' AS url, {link_key(u)} AS link" for u in ARTICLES)
    status = (
        f"CASE e.type WHEN 'bounce' THEN '{status_kind('bounced')}' WHEN 'spamreport' "
        f"THEN '{status_kind('complained')}' ELSE '{status_kind('unsubscribed')}' END"
    )
    acting = "e.type IN ('bounce', 'spamreport', 'unsubscribe')"
    statements += [
        f"""INSERT INTO event_counts (issue_id, kind, link, events, people)
            SELECT {issue_id}, e.type, 0, count(*), 0 FROM events AS e GROUP BY e.type""",
        f"""INSERT INTO event_counts (issue_id, kind, link, events, people)
            SELECT {issue_id}, 'click', l.link, count(*), 0 FROM events AS e JOIN ({links}) AS l ON l.url = {url}
            WHERE e.type = 'click' GROUP BY l.link""",
        f"""INSERT INTO event_counts (issue_id, kind, link, events, people)
            SELECT {issue_id}, {status}, 0, count(*), 0 FROM events AS e WHERE {acting} GROUP BY e.type""",
        f"""INSERT INTO event_people (issue_id, kind, link, person)
            SELECT DISTINCT {issue_id}, e.type, 0, e.subscriber_id FROM events AS e
            WHERE e.type IN ('delivered', 'open', 'click')""",
        f"""INSERT INTO event_people (issue_id, kind, link, person)
            SELECT DISTINCT {issue_id}, 'click', l.link, e.subscriber_id
            FROM events AS e JOIN ({links}) AS l ON l.url = {url} WHERE e.type = 'click'""",
        f"""INSERT INTO event_people (issue_id, kind, link, person)
            SELECT DISTINCT {issue_id}, {status}, 0, e.subscriber_id FROM events AS e WHERE {acting}""",
        """UPDATE event_counts SET people = (SELECT count(*) FROM event_people AS p WHERE p.issue_id =
            event_counts.issue_id AND p.kind = event_counts.kind AND p.link = event_counts.link)""",
    ]
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
    return issue_id


def timed(function, session, issue, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function(session, issue)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, result


def run(url: str, recipients: int, baseline: bool, repeat: int = 5) -> None:
    engine = db.make_engine(url)
    db.upgrade(engine)
    sessions = db.session_factory(engine)
    started = time.perf_counter()
    issue_id = seed(engine, sessions, recipients)
    seeded = time.perf_counter() - started
    if engine.dialect.name == "postgresql":
        # A live store's tables have been vacuumed and analyzed by autovacuum; a table loaded a moment
        # ago has neither, and its plans would be guesses (a sort spilled to disk, no index-only scan).
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE events, deliveries, event_counts, event_people, subscribers"))
    else:
        with engine.connect() as connection:
            connection.execute(text("ANALYZE"))
    with sessions() as session:
        events = session.scalar(text("SELECT count(*) FROM events"))
        issue = session.get(Issue, issue_id)
        counted_ms, figures = timed(issue_figures, session, issue, repeat)
        line = (
            f"{engine.dialect.name:10} recipients {recipients:>9,}  events {events:>9,}  (seeded in {seeded:.0f} s)  "
            f"issue_figures median {counted_ms:7.1f} ms"
        )
        if baseline:
            scanned_ms, scanned = timed(scanned_figures, session, issue, 1)
            same = "same figures" if scanned.as_dict() == figures.as_dict() else "FIGURES DIFFER"
            line += f"  | old aggregate over the events {scanned_ms:8.1f} ms  ({same})"
    engine.dispose()
    print(line, flush=True)
    print(
        f"{'':10} opened {figures.opened:,}, clicked {figures.clicked:,}, bounced {figures.bounced:,}, "
        f"unsubscribed {figures.unsubscribed:,}, events {figures.events:,}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    parser.add_argument("--no-baseline", action="store_true", help="skip the old computation (seconds at 1M)")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}")
    for recipients in args.recipients:
        for kind in args.db:
            if kind == "sqlite":
                with tempfile.TemporaryDirectory() as folder:
                    run(f"sqlite:///{folder}/bench.db", recipients, not args.no_baseline)
                continue
            with throwaway_schema("bench") as url:
                run(url, recipients, not args.no_baseline)


if __name__ == "__main__":
    main()
