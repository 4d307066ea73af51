"""Benchmark: planning an issue for 1,000,000 readers, and `digest send --dry-run` on them (SQLite and PostgreSQL).

For each store: a fresh store seeded by one INSERT ... SELECT (every 20th reader left out a section, every
5th has a zone of their own, a few hundred addresses suppressed; on PostgreSQL then ANALYZEd, as autovacuum
does after a bulk load), then
- `digest send --dry-run` as the operator runs it (a subprocess: start-up included, from compiled modules), and
- the plan itself: `plan_issue` as `digest send` calls it, in its own transaction (the batches with their
  frozen readers, and the renderings, stored; each batch's deliveries rows are made when it is claimed, see
  digest/delivery/README.md), once at once and once with local-time waves on a second issue.
Targets (issue 20): plan ≤ 5 s and dry run ≤ 5 s at 1,000,000 on both stores. Baseline measured on main
before this work (stated in the issue): plan of 1,000,000 on PostgreSQL 32 s; dry run of 10,000 readers
7.5 s (SQLite) and 17 s (PostgreSQL).

    PYTHONPATH=$PWD .venv/bin/python bench/plan.py [--readers 1000000] [--db sqlite postgres]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from bench.stores import EXAMPLE, environment, store  # noqa: E402
from bench.stores import settings as bench_settings  # noqa: E402
from digest.config import load_newsletter  # noqa: E402
from digest.core import build_core  # noqa: E402
from digest.delivery.plan import plan_issue  # noqa: E402
from digest.delivery.waves import LocalDelivery  # noqa: E402
from digest.store.db import make_engine, upgrade  # noqa: E402
from subscribers.store import email_hash  # noqa: E402
from tests.fakes.seed import NOW, make_issue  # noqa: E402

WEEK = "2026-W48"
SECTIONS = ["World", "Opinion", "Books"]
CONTENT = {
    "top": {"section": "World", "title": "Top"},
    "sections": [{"name": name, "articles": [{"title": f"{name} one"}, {"title": f"{name} two"}]} for name in SECTIONS],
}
ZONES = ["Europe/Lisbon", "America/New_York", "Asia/Tokyo", "Australia/Sydney"]


# subscribers.email_hash of an address (all lower case here), as each store computes it.
HASHED = {
    "postgresql": "encode(sha256(convert_to({address}, 'UTF8')), 'hex')",
    "sqlite": "bench_email_hash({address})",
}


def seed_sql(dialect: str, readers: int) -> str:
    """One INSERT ... SELECT of `readers` active subscribers (numbers 1..readers)."""
    if dialect == "postgresql":
        numbers = f"generate_series(1, {readers}) AS g(n)"
        key, prefs = (
            "md5(n::text)",
            "CAST(CASE WHEN n % 20 = 0 THEN '{\"exclude_sections\": [\"Opinion\"]}' ELSE '{}' END AS json)",
        )
        at = "TIMESTAMP '2026-11-30 08:00:00'"
    else:
        numbers = (
            f"(WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < {readers}) SELECT n FROM c)"
        )
        key, prefs = (
            "hex(randomblob(16))",
            "CASE WHEN n % 20 = 0 THEN '{\"exclude_sections\": [\"Opinion\"]}' ELSE '{}' END",
        )
        at = "'2026-11-30 08:00:00.000000'"
    hashed = HASHED[dialect].format(address="'reader' || n || '@example.org'")
    zone = "CASE n % 20 " + " ".join(f"WHEN {i * 5} THEN '{z}'" for i, z in enumerate(ZONES)) + " ELSE NULL END"
    return (
        "INSERT INTO subscribers (email, email_hash, name, status, consent_source, consent_at, confirmed_at,"
        " preferences, link_key, timezone, created_at, updated_at)"
        f" SELECT 'reader' || n || '@example.org', {hashed}, 'Reader ' || n, 'active', 'import', {at}, {at}, {prefs},"
        f" {key}, {zone}, {at}, {at} FROM {numbers}"
    )


def seed(url: str, readers: int) -> float:
    engine = make_engine(url)
    upgrade(engine)
    started = time.monotonic()
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            driver = connection.connection.driver_connection
            driver.create_function("bench_email_hash", 1, email_hash, deterministic=True)  # type: ignore[union-attr]
        connection.execute(text(seed_sql(engine.dialect.name, readers)))
        connection.execute(
            text(
                "INSERT INTO suppressions (email_hash, reason, created_at)"
                " SELECT 'hash' || n, 'bounced', created_at FROM (SELECT id AS n, created_at FROM subscribers"
                " WHERE id <= 300) s"
            )
        )
        if engine.dialect.name == "postgresql":
            # What autovacuum does within a minute of a bulk load, and what a store that grew to a million
            # has long had: without statistics the planner reads all million rows to find the first 1,000
            # by id (the dry run's payload estimate) and sorts the segment count on disk.
            connection.execute(text("ANALYZE subscribers"))
            connection.execute(text("ANALYZE suppressions"))
    engine.dispose()
    return time.monotonic() - started


def dry_run(url: str, folder: Path) -> tuple[float, str]:
    # Once untimed, so the timed run starts from compiled modules as an installed program does.
    subprocess.run([sys.executable, "-m", "digest.cli", "--help"], env=environment(url, folder), cwd=folder,
                   capture_output=True, check=False)  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "digest.cli", "send", "--week", WEEK, "--dry-run"],
        env=environment(url, folder), cwd=folder, capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.monotonic() - started
    if done.returncode:
        raise SystemExit(f"the dry run failed: {done.stderr}")
    would = next((line for line in done.stdout.splitlines() if line.startswith("would plan")), done.stdout)
    return seconds, would


def plan(url: str, folder: Path, week: str, local: bool) -> tuple[float, int, int]:
    settings = bench_settings(url, folder)
    core = build_core(settings, load_newsletter(EXAMPLE))
    try:
        with core.sessions.begin() as session:
            issue = make_issue(session, week)
            issue.content = CONTENT
        waves = LocalDelivery.of(date(2026, 12, 1), "07:00", "Europe/Lisbon") if local else None
        started = time.monotonic()
        with core.sessions.begin() as session:
            issue = session.merge(issue)
            counts = plan_issue(session, core.audience, issue, batch_size=1000, now=NOW, local=waves)
        seconds = time.monotonic() - started
        with core.sessions() as session:
            # Frozen on the batches (their deliveries rows are made at each claim), with any rows already made.
            planned = session.scalar(
                text(
                    "SELECT (SELECT coalesce(sum(recipients), 0) FROM batches"
                    " WHERE issue_id = :i AND members IS NOT NULL)"
                    " + (SELECT count(*) FROM deliveries WHERE issue_id = :i)"
                ),
                {"i": issue.id},
            )
        return seconds, counts.batches, int(planned or 0)
    finally:
        core.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--readers", type=int, default=1_000_000)
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    args = parser.parse_args()
    for kind in args.db:
        with tempfile.TemporaryDirectory() as name, store(kind, Path(name)) as url:
            folder = Path(name)
            print(f"{kind}: {args.readers} readers (seeded in {seed(url, args.readers):.1f} s)", flush=True)
            settings = bench_settings(url, folder)
            core = build_core(settings, load_newsletter(EXAMPLE))
            with core.sessions.begin() as session:
                make_issue(session, WEEK).content = CONTENT
            core.close()
            seconds, would = dry_run(url, folder)
            print(f"  digest send --dry-run: {seconds:.1f} s ({would})", flush=True)
            seconds, batches, planned = plan(url, folder, "2026-W47", local=False)
            print(f"  plan at once: {seconds:.1f} s ({planned} recipients in {batches} batches)", flush=True)
            seconds, batches, planned = plan(url, folder, "2026-W46", local=True)
            print(
                f"  plan in local-time waves: {seconds:.1f} s ({planned} recipients in {batches} batches)", flush=True
            )


if __name__ == "__main__":
    main()
