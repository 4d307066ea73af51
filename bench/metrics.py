"""Benchmark: what a /metrics scrape costs the store (digest.jobs.metrics.store_figures) as it grows.

Seeds N subscribers, an issue planned to all of them (N deliveries) and two provider events per
recipient, then prints the median time of the scrape's queries beside the time of a plain
`count(*)` of the deliveries, the baseline measured in the same run.

    PYTHONPATH=$PWD .venv/bin/python bench/metrics.py [--recipients 10000 100000] [--db sqlite postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import func, insert, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from digest.config import Settings, load_newsletter  # noqa: E402
from digest.core import Digest, build_core  # noqa: E402
from digest.delivery.plan import plan_batches  # noqa: E402
from digest.jobs.metrics import store_figures  # noqa: E402
from digest.store.models import Delivery, Event, utcnow  # noqa: E402
from tests.fakes.seed import make_issue, seed_subscribers  # noqa: E402
from tests.pgschema import throwaway_schema  # noqa: E402

KEY = "bench-secret-key-0123456789-0123456789"


@contextlib.contextmanager
def database(kind: str, folder: str) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder}/bench.db"
        return
    with throwaway_schema("bench") as url:
        yield url


def seed(core: Digest, recipients: int) -> None:
    with core.sessions.begin() as session:
        seed_subscribers(session, recipients)
        issue = make_issue(session)
        plan_batches(session, core.audience, issue, batch_size=1000, now=utcnow())
        issue_id = issue.id
    rows = [
        {"type": kind, "email": f"reader{i}@example.org", "issue_id": issue_id, "payload": {}, "received_at": utcnow()}
        for i in range(recipients)
        for kind in ("delivered", "open")
    ]
    with core.sessions.begin() as session:
        for first in range(0, len(rows), 10_000):
            session.execute(insert(Event), rows[first : first + 10_000])


def median_ms(work: Callable[[], object], runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    args = parser.parse_args()
    print(f"{'db':<9} {'recipients':>10} {'scrape ms':>10} {'count(*) deliveries ms':>23}")
    for kind in args.db:
        for recipients in args.recipients:
            with tempfile.TemporaryDirectory() as folder, database(kind, folder) as url:
                settings = Settings(
                    _env_file=None, database_url=url, secret_key=KEY, provider="outbox", outbox_dir=Path(folder)
                )
                core = build_core(settings, load_newsletter(ROOT / "examples" / "digest.toml"))
                try:
                    seed(core, recipients)

                    def baseline(core: Digest = core) -> object:
                        with core.sessions() as session:
                            return session.scalar(select(func.count()).select_from(Delivery))

                    scrape = median_ms(lambda core=core: store_figures(core))
                    plain = median_ms(baseline)
                    print(f"{kind:<9} {recipients:>10} {scrape:>10.1f} {plain:>23.1f}")
                finally:
                    core.close()


if __name__ == "__main__":
    main()
