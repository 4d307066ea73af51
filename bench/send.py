"""Benchmark of `digest send`: recipients per second and peak memory, at 100,000 and 1,000,000
subscribers, on SQLite and PostgreSQL, against the fake SendGrid on loopback; beside it, in the same
run, the bare cost of building and POSTing the same payloads without the store.

    PYTHONPATH=$PWD .venv/bin/python bench/send.py [--sizes 100000 1000000] [--databases sqlite postgres]
        [--segments]

--segments gives the issue three sections and has one subscriber in 5 leave out Opinion and one in 7
Analysis and Opinion: the plan then groups recipients into three segments and the send renders two
more versions of the issue (with the real templates) before the first batch.

Each measured part runs in a fresh child process so that its peak RSS (ru_maxrss) is its own; the
fake server runs in a process of its own too (it keeps only counts). Subscribers are seeded with one
INSERT ... SELECT over a generated series.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import TEST_SECRET_KEY  # noqa: E402
from tests.pgschema import throwaway_schema  # noqa: E402

API_KEY = "SG.bench-key"
WEEK = "2026-W48"


def issue_html() -> str:
    """About 60 KB of HTML, the size of a full issue, with the per-recipient placeholders."""
    card = (
        '<tr><td style="padding:12px 24px;font-family:Georgia,serif;font-size:16px;line-height:1.5;color:#222">'
        '<a href="https://meridian-review.example.org/articles/{i}" style="color:#0b3d91">Article {i}: the week in '
        "diplomacy</a><p>A teaser of about thirty-five words that tells the reader why this article matters this "
        "week, written by an editor and kept short enough to scan in a second or two.</p></td></tr>"
    )
    cards = "".join(card.format(i=i) for i in range(150))
    return (
        "<!doctype html><html><body><p>Hello %%first_name%%,</p><table>" + cards + "</table>"
        '<a href="%%unsubscribe_url%%">Unsubscribe</a> <a href="%%preferences_url%%">Preferences</a></body></html>'
    )


def settings_env(database_url: str, api_host: str, workdir: Path) -> dict:
    return {
        "DIGEST_DATABASE_URL": database_url,
        "DIGEST_CONFIG": str(ROOT / "digest.example.toml"),
        "DIGEST_SECRET_KEY": TEST_SECRET_KEY,
        "DIGEST_BASE_URL": "https://news.example.org",
        "DIGEST_PROVIDER": "sendgrid",
        "DIGEST_SENDGRID_API_KEY": API_KEY,
        "DIGEST_SENDGRID_API_HOST": api_host,
        "DIGEST_OUTBOX_DIR": str(workdir / "outbox"),
    }


# --- the parent: set up, run the children, print -------------------------------------------------


def segmented_content() -> dict:
    """Three sections of ten articles each, the shape compose makes."""

    def card(section: str, i: int) -> dict:
        return {
            "title": f"{section} article {i}: the week in diplomacy",
            "url": f"https://meridian-review.example.org/{section.lower()}/{i}",
            "section": section,
            "teaser": "A teaser of about thirty-five words that tells the reader why this article matters.",
            "excerpt": "An excerpt of a paragraph or two, long enough to give the gist of the argument.",
        }

    sections = ["Reporting", "Analysis", "Opinion"]
    return {
        "title": "The Meridian Review",
        "date": "2026-11-30",
        "date_display": "November 30, 2026",
        "intro": "",
        "top": card("Reporting", 0),
        "sections": [{"name": s, "articles": [card(s, i) for i in range(1, 11)]} for s in sections],
    }


def seed(database_url: str, count: int, segmented: bool = False) -> None:
    from sqlalchemy import text

    from digest.config import load_newsletter, load_settings
    from digest.core import build_core
    from digest.models import Issue, utcnow

    core = build_core(load_settings(database_url=database_url), load_newsletter(ROOT / "digest.example.toml"))
    now = utcnow().replace(tzinfo=None)
    preferences = "'{}'"
    if segmented:
        preferences = (
            'CASE WHEN g.i % 7 = 0 THEN \'{"exclude_sections": ["Analysis", "Opinion"]}\' '
            "WHEN g.i % 5 = 0 THEN '{\"exclude_sections\": [\"Opinion\"]}' ELSE '{}' END"
        )
    with core.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            series = "SELECT generate_series(1, :n) AS i"
            if segmented:  # a CASE over text literals is text, and PostgreSQL does not turn it into json itself
                preferences = f"CAST({preferences} AS json)"
        else:
            series = "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :n) SELECT i FROM s"
        conn.execute(
            text(
                "INSERT INTO subscribers (email, name, status, consent_source, consent_at, confirmed_at, "
                "preferences, link_key, created_at, updated_at) "
                f"SELECT 'reader' || g.i || '@example.org', 'Reader ' || g.i, 'active', 'import', :now, :now, "
                f"{preferences}, 'bench-key-' || g.i, :now, :now FROM ({series}) g"
            ),
            {"n": count, "now": now},
        )
    with core.sessions.begin() as session:
        session.add(
            Issue(
                period=WEEK,
                slug=WEEK.lower(),
                status="draft",
                window_start=utcnow(),
                window_end=utcnow(),
                subject="The Meridian Review: the week in diplomacy",
                content=segmented_content() if segmented else {},
                html=issue_html(),
                text="Hello %%first_name%%,\n\nThe week.\n\nUnsubscribe: %%unsubscribe_url%%\n",
                rendered_at=utcnow(),
            )
        )
    core.close()


def child(mode: str, env: dict, count: int) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--count", str(count)],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"{mode} child failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def fake_stats(url: str) -> dict:
    import urllib.request

    with urllib.request.urlopen(url + "/_stats") as response:
        return json.loads(response.read())


def measure(database: str, count: int, workdir: Path, segmented: bool = False) -> dict:
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.sendgrid", "--api-key", API_KEY, "--count-only"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    url = fake.stdout.readline().strip()
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(fake.wait)
        cleanup.callback(fake.terminate)
        if database == "sqlite":
            database_url = f"sqlite:///{workdir / f'bench-{count}.db'}"
        else:
            database_url = cleanup.enter_context(throwaway_schema("bench"))
        started = time.perf_counter()
        seed(database_url, count, segmented)
        seeded = time.perf_counter() - started
        env = settings_env(database_url, url, workdir)
        bare = child("bare", env, count)
        ours = child("send", env, count)
        stats = fake_stats(url)
    return {"database": database, "count": count, "seed_s": seeded, "bare": bare, "ours": ours, "fake": stats}


def main() -> None:
    parser = argparse.ArgumentParser(description="digest send benchmark")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--segments", action="store_true", help="three segments (see the module's docstring)")
    parser.add_argument("--child")
    parser.add_argument("--count", type=int)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](args.count)))
        return
    print(f"{'store':9} {'subscribers':>11} {'seed s':>7} {'plan s':>7} {'send s':>7} {'ours/s':>8} "
          f"{'bare/s':>8} {'ratio':>6} {'ours MB':>8} {'bare MB':>8} {'accepted':>9}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for database in args.databases:
            for count in args.sizes:
                r = measure(database, count, Path(tmp), args.segments)
                label = database + ("+seg" if args.segments else "")
                ours, bare = r["ours"], r["bare"]
                print(
                    f"{label:9} {count:>11,} {r['seed_s']:>7.1f} {ours['plan_s']:>7.1f} {ours['send_s']:>7.1f} "
                    f"{ours['rate']:>8,.0f} {bare['rate']:>8,.0f} {ours['rate'] / bare['rate']:>6.2f} "
                    f"{ours['peak_mb']:>8.0f} {bare['peak_mb']:>8.0f} {r['fake']['accepted_recipients']:>9,}",
                    flush=True,
                )
                if r["fake"]["violations"]:
                    print("  fake SendGrid saw violations:", r["fake"]["violations"][:3])
    print("rate = recipients per second (ours: plan + send, from the store; bare: build + POST only);")
    print("ratio = ours / bare (target >= 0.5); MB = peak RSS of the process (target < 200 at 1,000,000);")
    print("accepted = recipients the fake SendGrid took from both runs (2 x subscribers)")


# --- the children --------------------------------------------------------------------------------


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child_send(count: int) -> dict:
    """`digest send` as the CLI does it: plan in the store, then send every batch."""
    from digest.core import build_core
    from digest.delivery import run
    from digest.delivery.plan import plan_batches
    from digest.models import Issue
    from digest.periods import Week
    from digest.weekly import find_issue

    core = build_core()
    issue = find_issue(core, Week.parse(WEEK))
    started = time.perf_counter()
    with core.sessions.begin() as session:
        plan_batches(session, session.get(Issue, issue.id), batch_size=run.batch_size(core), now=core.now())
    planned = time.perf_counter()
    _, report = run.deliver(core, issue)
    done = time.perf_counter()
    assert report.sent == count, (report.sent, count)
    return {
        "plan_s": planned - started,
        "send_s": done - planned,
        "rate": count / (done - started),
        "peak_mb": peak_mb(),
    }


def child_bare(count: int) -> dict:
    """The same payloads built and POSTed with no store: the recipients are generated in memory,
    one batch at a time, with the same per-recipient values (signed links) and the same provider."""
    from digest.core import build_core
    from digest.delivery import run
    from digest.delivery.providers.base import Recipient
    from digest.delivery.sender import _RecipientRow
    from digest.periods import Week
    from digest.weekly import find_issue

    core = build_core()
    issue = find_issue(core, Week.parse(WEEK))
    outgoing = run.outgoing(core, issue)
    provider = core.provider
    size = run.batch_size(core)
    started = time.perf_counter()
    for first in range(1, count + 1, size):
        recipients = []
        for i in range(first, min(first + size, count + 1)):
            person = _RecipientRow(i, f"bare{i}@example.org", f"Reader {i}", "active", f"bench-key-{i}")
            recipients.append(
                Recipient(i, person.email, person.name, core.recipient_values(person), core.unsubscribe_url(person))
            )
        provider.send_batch(outgoing, recipients, batch_id=first // size + 1)
    seconds = time.perf_counter() - started
    return {"send_s": seconds, "rate": count / seconds, "peak_mb": peak_mb()}


CHILDREN = {"send": child_send, "bare": child_bare}

if __name__ == "__main__":
    main()
