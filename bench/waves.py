"""What local-time delivery costs the plan: one issue's recipients frozen into batches at once, then the
same audience planned into waves by zone, on SQLite and PostgreSQL, in one run (so the two figures sit
beside each other on the same machine).

    .venv/bin/python bench/waves.py [--sizes 100000 1000000] [--databases sqlite postgres]

Readers get zones spread over 40 IANA zones (one in five none: the newsletter's), batches of 1000.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from sqlalchemy import func, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from digest.config import Settings, load_newsletter  # noqa: E402
from digest.core import build_core  # noqa: E402
from digest.delivery.plan import plan_batches  # noqa: E402
from digest.delivery.waves import LocalDelivery  # noqa: E402
from digest.store.models import Batch, Issue  # noqa: E402
from subscribers.models import Subscriber  # noqa: E402
from tests.conftest import EXAMPLE_CONFIG, TEST_SECRET_KEY  # noqa: E402
from tests.fakes.seed import NOW, address, make_issue, subscriber_row  # noqa: E402
from tests.pgschema import throwaway_schema  # noqa: E402

ZONES = sorted(
    ["America/Los_Angeles", "America/Denver", "America/Chicago", "America/New_York", "America/Sao_Paulo",
     "America/Mexico_City", "America/Bogota", "America/Halifax", "America/St_Johns", "Atlantic/Azores",
     "Europe/London", "Europe/Lisbon", "Europe/Paris", "Europe/Berlin", "Europe/Warsaw", "Europe/Athens",
     "Europe/Istanbul", "Europe/Moscow", "Africa/Lagos", "Africa/Nairobi", "Africa/Johannesburg", "Asia/Dubai",
     "Asia/Tehran", "Asia/Karachi", "Asia/Kolkata", "Asia/Kathmandu", "Asia/Dhaka", "Asia/Yangon",
     "Asia/Bangkok", "Asia/Shanghai", "Asia/Tokyo", "Australia/Adelaide", "Australia/Sydney",
     "Pacific/Auckland", "Pacific/Chatham", "Pacific/Honolulu", "Pacific/Kiritimati", "Asia/Singapore",
     "Europe/Helsinki", "America/Anchorage"]
)  # fmt: skip


def seed(core, count: int) -> None:
    with core.sessions.begin() as session:
        for first in range(1, count + 1, 20_000):
            rows = []
            for i in range(first, min(first + 20_000, count + 1)):
                row = subscriber_row(address(i), None)
                row["timezone"] = None if i % 5 == 0 else ZONES[i % len(ZONES)]
                rows.append(row)
            session.execute(insert(Subscriber), rows)


def plan(core, week: str, local: LocalDelivery | None) -> tuple[float, int]:
    with core.sessions.begin() as session:
        issue = make_issue(session, week)
    started = time.perf_counter()
    with core.sessions.begin() as session:
        fresh = session.get_one(Issue, issue.id)
        plan_batches(session, core.audience, fresh, batch_size=1000, now=NOW, local=local)
    seconds = time.perf_counter() - started
    with core.sessions() as session:
        batches = session.scalar(select(func.count()).select_from(Batch).where(Batch.issue_id == issue.id)) or 0
    return seconds, batches


def run(url: str, count: int, folder: Path) -> tuple[float, int, float, int]:
    settings = Settings(
        _env_file=None, database_url=url, config=EXAMPLE_CONFIG, secret_key=TEST_SECRET_KEY,
        base_url="https://news.example.org", provider="outbox", outbox_dir=folder / "outbox",
    )  # fmt: skip
    core = build_core(settings, load_newsletter(EXAMPLE_CONFIG))
    try:
        seed(core, count)
        at_once = plan(core, "2026-W48", None)
        waves = plan(core, "2026-W49", LocalDelivery.of(date(2026, 12, 7), "07:00", "America/New_York"))
    finally:
        core.close()
    return (*at_once, *waves)


def main() -> None:
    parser = argparse.ArgumentParser(description="plan at once vs in waves")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgres"])
    args = parser.parse_args()
    print(f"{'store':9} {'readers':>9} {'at once s':>9} {'batches':>8} {'waves s':>8} {'batches':>8}")
    for count in args.sizes:
        for database in args.databases:
            with tempfile.TemporaryDirectory() as tmp:
                if database == "sqlite":
                    result = run(f"sqlite:///{tmp}/bench.db", count, Path(tmp))
                else:
                    with throwaway_schema("bw") as url:
                        result = run(url, count, Path(tmp))
            once_s, once_b, waves_s, waves_b = result
            print(f"{database:9} {count:>9,} {once_s:>9.2f} {once_b:>8} {waves_s:>8.2f} {waves_b:>8}")


if __name__ == "__main__":
    main()
