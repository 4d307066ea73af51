"""Benchmark of scale-out sending on PostgreSQL: recipients per second with `digest send --workers N`
for N = 1, 2 and 4, against the fake SendGrid answering each request after a fixed latency (100 ms: a
provider far away), with the speed-up over one worker measured in the same run.

    PYTHONPATH=$PWD .venv/bin/python bench/send_workers.py [--readers 10000] [--batch-size 100]
        [--latency 0.1] [--workers 1 2 4]

Each N gets a fresh PostgreSQL schema with the same readers and a rendered issue, and a fresh fake
SendGrid in a process of its own. With a slow provider one sender spends its time
waiting for answers, so N senders should come near N times the rate, until the store or the CPU (two
cores here, shared with the fake) is the limit. Two figures per N: the send alone (the workers' own
time, from the summary line) and the whole command (planning and starting the processes too). Every
run is checked: each reader accepted exactly once.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.send import API_KEY, WEEK, seed, settings_env  # noqa: E402
from tests.pgschema import throwaway_schema  # noqa: E402


def start_fake(latency: float) -> tuple[subprocess.Popen[str], str]:
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.sendgrid", "--api-key", API_KEY, "--latency", str(latency)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert fake.stdout is not None
    return fake, fake.stdout.readline().strip()


def config_with_batches(workdir: Path, batch_size: int) -> Path:
    text = (ROOT / "examples" / "digest.toml").read_text(encoding="utf-8")
    assert "batch_size = 1000" in text
    path = workdir / "digest.toml"
    path.write_text(text.replace("batch_size = 1000", f"batch_size = {batch_size}"), encoding="utf-8")
    return path


def measure(workers: int, readers: int, batch_size: int, latency: float, workdir: Path) -> dict:
    fake, url = start_fake(latency)
    try:
        with throwaway_schema("bench") as database_url:
            seed(database_url, readers)
            env = {
                **os.environ,
                "PYTHONPATH": str(ROOT),
                **settings_env(database_url, url, workdir),
                "DIGEST_CONFIG": str(config_with_batches(workdir, batch_size)),
            }
            started = time.monotonic()
            result = subprocess.run(
                [sys.executable, "-m", "digest.cli", "send", "--week", WEEK, "--workers", str(workers)],
                env=env,
                cwd=workdir,
                capture_output=True,
                text=True,
                check=False,
            )
            whole = time.monotonic() - started
            if result.returncode != 0:
                raise SystemExit(f"digest send --workers {workers} failed:\n{result.stdout}\n{result.stderr}")
            found = re.search(r"this send [^:]*: sent (\d+), .*?\(([\d.]+)s,", result.stdout)
            assert found, result.stdout
            with urllib.request.urlopen(f"{url}/_stats") as answer:  # noqa: S310 (the fake on loopback)
                stats = json.load(answer)
    finally:
        fake.terminate()
        fake.wait(10)
    sent, seconds = int(found.group(1)), float(found.group(2))
    exactly_once = stats["accepted_recipients"] == stats["distinct_recipients"] == readers == sent
    return {"workers": workers, "sent": sent, "send_s": seconds, "whole_s": whole, "exactly_once": exactly_once}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds the fake takes to answer each request")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    requests = -(-args.readers // args.batch_size)
    print(
        f"digest send --workers N on PostgreSQL: {args.readers:,} readers in {requests} requests of "
        f"{args.batch_size}, fake SendGrid answering after {args.latency * 1000:.0f} ms"
    )
    print(f"floor for one worker (latency x requests): {requests * args.latency:.1f}s")
    print(f"{'workers':>7}  {'send s':>7}  {'recipients/s':>12}  {'speed-up':>8}  {'whole s':>7}  exactly once")
    base = None
    for n in args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            r = measure(n, args.readers, args.batch_size, args.latency, Path(tmp))
        rate = r["sent"] / r["send_s"]
        base = base or rate
        print(
            f"{n:>7}  {r['send_s']:>7.1f}  {rate:>12,.0f}  {rate / base:>7.2f}x  {r['whole_s']:>7.1f}  "
            f"{'yes' if r['exactly_once'] else 'NO'}",
            flush=True,
        )


if __name__ == "__main__":
    main()
