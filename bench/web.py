"""Benchmark of the web app under load on loopback: RFC 8058 one-click unsubscribe POSTs and sign-up
form POSTs against the real `digest serve --workers N`, on SQLite and on PostgreSQL (a throwaway schema),
with 1 worker and with 2 in the same run.

    PYTHONPATH=$PWD .venv/bin/python bench/web.py [--db sqlite postgres] [--workers 1 2]
        [--requests 3000] [--concurrency 32] [--seconds 60]

For each store and worker count: a fresh store with `--requests` active readers, `digest serve` started
as a subprocess (outbox provider, so each sign-up's confirmation mail is written by the serve workers'
own senders), then a load generator in a process of its own (asyncio, keep-alive HTTP/1.1 connections,
`--concurrency` at once) posts one one-click unsubscribe per reader (each a real change: status,
history row) and then `--requests` sign-ups of new addresses (each with the form's CSRF cookie and
token, as a browser sends them; the per-client limit is raised out of the way, but still counted in
the store on every post). It prints requests/s, p50 and p99 latency and errors (any answer but 200)
per case; the load average is printed beside them. Each phase stops after `--seconds` at most.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import TEST_SECRET_KEY  # noqa: E402
from tests.pgschema import throwaway_schema  # noqa: E402

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


# --- the load generator (a process of its own) ---------------------------------------------------------


async def _request(reader, writer, raw: bytes) -> tuple[int, float]:
    started = time.perf_counter()
    writer.write(raw)
    status_line = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    status = int(status_line.split()[1]) if status_line else 0
    return status, time.perf_counter() - started


def _post(path: str, body: str, cookie: str | None = None) -> bytes:
    data = body.encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(data)}\r\n"
    )
    if cookie:
        head += f"Cookie: {cookie}\r\n"
    return (head + "\r\n").encode() + data


async def drive(port: int, requests: list[bytes], concurrency: int, seconds: float) -> dict:
    queue = list(reversed(requests))
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue and time.perf_counter() < deadline:
                raw = queue.pop()
                try:
                    status, took = await _request(reader, writer, raw)
                except (ConnectionError, asyncio.IncompleteReadError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                latencies.append(took)
                if status != 200:
                    errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "per_second": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else 0.0,
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0,
        "errors": errors,
    }


def client_main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    requests = [r.encode("latin-1") for r in spec["requests"]]
    print(json.dumps(asyncio.run(drive(spec["port"], requests, spec["concurrency"], spec["seconds"]))))


# --- the parent: stores, servers, cases ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings_env(database_url: str, workdir: Path, port: int) -> dict[str, str]:
    return {
        "DIGEST_DIR": str(workdir),
        "DIGEST_DATABASE_URL": database_url,
        "DIGEST_CONFIG": str(ROOT / "examples" / "digest.toml"),
        "DIGEST_SECRET_KEY": TEST_SECRET_KEY,
        "DIGEST_BASE_URL": f"http://127.0.0.1:{port}",
        "DIGEST_PROVIDER": "outbox",
        "DIGEST_OUTBOX_DIR": str(workdir / "outbox"),
        "DIGEST_SUBSCRIBE_PER_IP_PER_HOUR": "1000000000",
    }


def seed_and_links(env: dict[str, str], readers: int) -> list[str]:
    """`readers` active subscribers; the path of each one's unsubscribe link."""
    os.environ.update(env)
    from digest.core import build_core
    from subscribers.models import Subscriber
    from tests.fakes.seed import seed_subscribers

    core = build_core()
    try:
        with core.sessions.begin() as session:
            seed_subscribers(session, readers)
        with core.sessions() as session:
            people = session.query(Subscriber).order_by(Subscriber.id).all()
            return [core.unsubscribe_url(p).removeprefix(core.settings.base_url) for p in people]
    finally:
        core.close()


@contextlib.contextmanager
def serving(env: dict[str, str], workdir: Path, port: int, workers: int) -> Iterator[None]:
    process = subprocess.Popen(
        [sys.executable, "-m", "digest.cli", "serve", "--port", str(port), "--workers", str(workers)],
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"digest serve did not start:\n{process.communicate(timeout=10)[1][-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:  # noqa: S310
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
        yield
    finally:
        process.terminate()
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def form_cookie_and_token(port: int) -> tuple[str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/subscribe", timeout=30) as answer:  # noqa: S310
        page = answer.read().decode()
        cookie = answer.headers["Set-Cookie"].split(";")[0]
    return cookie, CSRF.search(page)[1]


def run_client(port: int, requests: list[bytes], concurrency: int, seconds: float, workdir: Path) -> dict:
    spec = workdir / "client.json"
    payload = {"port": port, "requests": [r.decode("latin-1") for r in requests]}
    spec.write_text(json.dumps({**payload, "concurrency": concurrency, "seconds": seconds}))
    out = subprocess.run(
        [sys.executable, __file__, "--client", str(spec)], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(out.stdout)


def store_for(db: str, workdir: Path) -> contextlib.AbstractContextManager[str]:
    if db == "postgres":
        return throwaway_schema("bench")
    return contextlib.nullcontext(f"sqlite:///{workdir / 'digest.db'}")


def measure(db: str, workers: int, readers: int, concurrency: int, seconds: float) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp, store_for(db, Path(tmp)) as database_url:
        workdir = Path(tmp)
        port = free_port()
        env = settings_env(database_url, workdir, port)
        links = seed_and_links(env, readers)
        with serving(env, workdir, port, workers):
            unsubscribes = [_post(path, "List-Unsubscribe=One-Click") for path in links]
            unsub = run_client(port, unsubscribes, concurrency, seconds, workdir)
            cookie, token = form_cookie_and_token(port)
            sign_ups = [
                _post("/subscribe", urlencode({"email": f"new{n}@example.org", "csrf_token": token}), cookie)
                for n in range(readers)
            ]
            signup = run_client(port, sign_ups, concurrency, seconds, workdir)
    return [
        {"db": db, "workers": workers, "case": "one-click unsubscribe", **unsub},
        {"db": db, "workers": workers, "case": "sign-up form", **signup},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--requests", type=int, default=3000, help="readers to unsubscribe, and sign-ups to post")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0, help="longest time per phase")
    args = parser.parse_args()
    if args.client:
        client_main(args.client)
        return
    rows = []
    for db in args.db:
        for workers in args.workers:
            rows += measure(db, workers, args.requests, args.concurrency, args.seconds)
            print(f"  done: {db}, {workers} worker(s)", file=sys.stderr)
    heads = ("requests", "req/s", "p50 ms", "p99 ms")
    print(f"{'store':<9} {'workers':>7}  {'case':<22} " + " ".join(f"{h:>8}" for h in heads) + f" {'errors':>6}")
    for r in rows:
        print(
            f"{r['db']:<9} {r['workers']:>7}  {r['case']:<22} {r['requests']:>8} {r['per_second']:>8.0f} "
            f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['errors']:>6}"
        )
    print(f"load average (1, 5, 15 min) at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
