"""Benchmark: `digest subscribers import` and `export` of 1,000,000 rows, and the web's writes during an import.

For each store: the import of `--big` rows alone on a fresh store (its time and rows/s), then
`digest subscribers export` of that store to a file (rows/s and the process's peak memory), then an
import of `--rows` rows on another fresh store while readers unsubscribe by one click and visitors sign
up through the real app on loopback (the import's time under load, and the worst and typical wait of
a web write). Targets (issue 20): 1,000,000 rows imported in ≤ 60 s on PostgreSQL and ≤ 90 s on
SQLite; export ≥ 100,000 rows/s with flat memory; no web write waits more than about 1 s, no 500.
Baseline on main before the chunked import (measured in issue 20): 10,000 rows in 41 s on SQLite and
56 s on PostgreSQL (about 200 rows/s), in one transaction. The chunked import before its per-row work was cut
(load 6-10): 1,000,000 rows in 214 s (SQLite) and 248 s (PostgreSQL); export 12,471 and 22,545 rows/s.
After (rows checked inline and read ahead on a thread, hashes and link keys per chunk, SQLite staging outside
the write lock with rarer checkpoints, PostgreSQL's staging table truncated; export formatted by the store,
COPY on PostgreSQL), load 5-6: import 79 s (SQLite) and 58 s (PostgreSQL); export 111,711 and 99,645 rows/s,
start-up included, 143 MiB flat; web writes during the 20,000-row import wait 238 ms and 472 ms at worst.
Before and after run one after the other (load 3-4): import 94.3 s -> 58.0 s (SQLite), 66.3 s -> 42.7 s
(PostgreSQL); export 59,056 -> 80,228 rows/s (SQLite), 65,945 -> 103,065 rows/s (PostgreSQL).

    PYTHONPATH=$PWD .venv/bin/python bench/import.py [--big 1000000] [--rows 20000] [--db sqlite postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stores import environment, store  # noqa: E402
from bench.stores import settings as bench_settings  # noqa: E402
from tests.import_load import load_while_importing, readers_who_will_leave, start_import, write_people  # noqa: E402
from tests.web_site import running_site  # noqa: E402


def import_alone(kind: str, folder: Path, people: Path) -> tuple[float, float, int, int]:
    """(import seconds, export seconds, rows exported, the export's peak resident memory in KiB)."""
    with store(kind, folder, "alone") as url:
        env = environment(url, folder)
        started = time.monotonic()
        importing = start_import(env, people, folder)
        _, err = importing.communicate()
        if importing.returncode:
            raise SystemExit(f"the import failed: {err}")
        seconds = time.monotonic() - started
        exported = folder / "exported.csv"
        started = time.monotonic()
        exporting = subprocess.Popen(
            [sys.executable, "-m", "digest.cli", "subscribers", "export", str(exported)],
            env={**env, "PYTHONPATH": str(ROOT)}, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        peak = 0
        while exporting.poll() is None:
            peak = max(peak, _peak_kib(exporting.pid))
            time.sleep(0.1)
        export_seconds = time.monotonic() - started
        if exporting.returncode:
            raise SystemExit(f"the export failed: {exporting.stderr.read() if exporting.stderr else ''}")
        with exported.open(encoding="utf-8") as handle:
            rows = sum(1 for _ in handle) - 1
        return seconds, export_seconds, rows, peak


def _peak_kib(pid: int) -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def import_under_load(kind: str, folder: Path, rows: int) -> None:
    with store(kind, folder, "loaded") as url:
        settings = bench_settings(url, folder)
        with running_site(settings, subscribe_per_ip_per_hour=1_000_000) as site:
            leavers = readers_who_will_leave(site.core, 300)
            people = write_people(folder / "loaded.csv", rows, also=[(a, "Renamed") for a in leavers])
            started = time.monotonic()
            importing = start_import(environment(url, folder), people, folder)
            load = load_while_importing(site, importing, leavers, wait_for_rows=800)
            importing.communicate()
            seconds = time.monotonic() - started
    during = load.during()
    waits = sorted(w.seconds for w in during)
    statuses = sorted({w.status for w in load.writes})
    print(f"  import under load: {seconds:.1f} s; web writes during it: {len(during)} "
          f"({sum(w.kind == 'unsubscribe' for w in during)} one-click unsubscribes, "
          f"{sum(w.kind == 'sign-up' for w in during)} sign-ups)")  # fmt: skip
    if waits:
        p95 = waits[int(0.95 * (len(waits) - 1))]
        print(f"  web write wait: median {statistics.median(waits) * 1000:.0f} ms, 95th percentile "
              f"{p95 * 1000:.0f} ms, worst {waits[-1] * 1000:.0f} ms; answers {statuses}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--big", type=int, default=1_000_000, help="rows of the import alone and the export")
    parser.add_argument("--rows", type=int, default=20_000, help="rows of the import under web load")
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        people = write_people(folder / "people.csv", args.big)
        print("baseline on main (issue 20): 10,000 rows imported in 41 s (SQLite), 56 s (PostgreSQL)")
        for kind in args.db:
            seconds, export_seconds, exported, peak = import_alone(kind, folder, people)
            print(f"{kind}: import of {args.big} rows alone: {seconds:.1f} s ({args.big / seconds:,.0f} rows/s)")
            print(f"  export of {exported} rows: {export_seconds:.1f} s ({exported / export_seconds:,.0f} rows/s, "
                  f"start-up included), peak memory {peak / 1024:.0f} MiB")  # fmt: skip
            print(f"  {args.rows} rows:")
            import_under_load(kind, folder, args.rows)


if __name__ == "__main__":
    main()
