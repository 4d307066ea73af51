"""Benchmark of the web app under load on loopback: RFC 8058 one-click unsubscribe POSTs and sign-up
form POSTs against the real `digest serve --workers N`, on SQLite and on PostgreSQL (a throwaway schema),
with 1 worker and with 2 in the same run.

    PYTHONPATH=$PWD .venv/bin/python bench/web.py [--db sqlite postgres] [--workers 1 2]
        [--requests 3000] [--concurrency 32] [--seconds 60] [--generators 2]

For each store and worker count: a fresh store with `--requests` active readers, `digest serve` started
as a subprocess (outbox provider, so each sign-up's confirmation mail is written by the serve workers'
own senders), then the load: `--generators` processes (asyncio Protocols on uvloop, keep-alive
HTTP/1.1, `--concurrency` connections in all, one request in flight on each) post `GET /healthz` (the
app's floor: every middleware, no store), one one-click unsubscribe per reader (each a real change:
status, history row), then `--requests` sign-ups of new addresses (each with the form's CSRF cookie
and token, as a browser sends them; the per-client limit is raised out of the way, but still counted
in the store on every post). Each phase stops after `--seconds` at most.

It prints requests/s, p50 and p99 latency, errors (any answer but 200, by status), the CPU time the
serve processes spent per request (user and system; a sign-up's includes what the confirmation
senders did meanwhile; PostgreSQL's own time is not in it), and the load average. First comes the
generators' ceiling: the same kind of posts against a server that answers at once and does nothing
else; on a machine whose cores the server shares, figures near it are the generators' limit, not
the app's.
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

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


# --- the load generator (processes of their own) -------------------------------------------------------
# It shares the two cores with the server, so it must cost as little per request as it can: a bare
# asyncio Protocol per keep-alive connection (uvloop when installed), requests prepared as bytes
# beforehand, and answers parsed only as far as the status and the body's length. `--generators`
# processes split the connections; the ceiling case measures them against a server that does nothing.


def complete_message(buffer: bytearray) -> tuple[bytes, int] | None:
    """The first whole HTTP/1.1 message in `buffer` (its head, lower-cased, and its size with the body),
    or None while it is still arriving."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).lower()
    at = head.find(b"\r\ncontent-length:")
    length = int(head[at + 17 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
    if len(buffer) < end + 4 + length:
        return None
    return head, end + 4 + length


class _Answers(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: one request in flight, its answer read by Content-Length."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        message = complete_message(self.buffer)
        if message is None or self.waiter is None:
            return
        head, size = message
        status = int(head[9:12])
        del self.buffer[:size]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("the server closed the connection"))

    def send(self, raw: bytes) -> asyncio.Future[int]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return self.waiter


async def drive(port: int, requests: list[bytes], concurrency: int, deadline: float) -> dict:
    """Posts `requests` over `concurrency` connections until done or `deadline` (time.time())."""
    loop = asyncio.get_running_loop()
    queue = list(reversed(requests))
    latencies: list[float] = []
    errors = 0
    statuses: dict[int, int] = {}

    async def connect() -> _Answers:
        _transport, protocol = await loop.create_connection(_Answers, "127.0.0.1", port)
        return protocol

    async def connection() -> None:
        nonlocal errors
        answers = await connect()
        try:
            while queue and time.time() < deadline:
                raw = queue.pop()
                started = time.perf_counter()
                try:
                    status = await answers.send(raw)
                except ConnectionError:
                    errors += 1
                    answers = await connect()
                    continue
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    errors += 1
                    statuses[status] = statuses.get(status, 0) + 1
        finally:
            if answers.transport is not None:
                answers.transport.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return {"latencies": latencies, "errors": errors, "statuses": statuses, "ended": time.time()}


def client_main(spec_path: str, part: int) -> None:
    spec = json.loads(Path(spec_path).read_text())
    generators = spec["generators"]
    requests = [r.encode("latin-1") for r in spec["requests"][part::generators]]
    concurrency = max(1, spec["concurrency"] // generators + (part < spec["concurrency"] % generators))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    # Every generator starts at the same moment, after the interpreters have started.
    time.sleep(max(0.0, spec["start_at"] - time.time()))
    deadline = spec["start_at"] + spec["seconds"]
    result = asyncio.run(drive(spec["port"], requests, concurrency, deadline))
    Path(f"{spec_path}.{part}").write_text(json.dumps(result))


NOOP_ANSWER = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"


class _NoOp(asyncio.Protocol):
    """The ceiling's server: answers every request 200 at once, reading no more than the generator sends."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (message := complete_message(self.buffer)) is not None:
            del self.buffer[: message[1]]
            self.transport.write(NOOP_ANSWER)  # type: ignore[attr-defined]


def noop_main(port: int) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(_NoOp, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


# --- the parent: stores, servers, cases ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings_env(database_url: str, workdir: Path, port: int) -> dict[str, str]:
    from tests.conftest import TEST_SECRET_KEY

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
def serving(env: dict[str, str], workdir: Path, port: int, workers: int) -> Iterator[subprocess.Popen[str]]:
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
        yield process
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


def run_client(port: int, requests: list[bytes], concurrency: int, seconds: float, generators: int) -> dict:
    """`requests` posted by `generators` processes at once; requests/s over the whole phase, all processes."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="bench-web-client-") as spec:
        # Far enough ahead for every generator's interpreter to have started on a loaded machine.
        start_at = time.time() + 2.0
        payload = {"port": port, "requests": [r.decode("latin-1") for r in requests], "generators": generators}
        json.dump({**payload, "concurrency": concurrency, "seconds": seconds, "start_at": start_at}, spec)
        spec.flush()
        processes = [
            subprocess.Popen(
                [sys.executable, __file__, "--client", spec.name, "--part", str(part)],
                cwd=ROOT,
            )
            for part in range(generators)
        ]
        if any(process.wait() for process in processes):
            raise SystemExit("a load generator failed")
        outs = [json.loads(Path(f"{spec.name}.{part}").read_text()) for part in range(generators)]
        for part in range(generators):
            Path(f"{spec.name}.{part}").unlink()
    latencies = sorted(x for out in outs for x in out["latencies"])
    elapsed = max(out["ended"] for out in outs) - start_at
    return {
        "requests": len(latencies),
        "per_second": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else 0.0,
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0,
        "errors": sum(out["errors"] for out in outs),
        "statuses": {k: sum(out["statuses"].get(k, 0) for out in outs) for out in outs for k in out["statuses"]},
        "load": os.getloadavg()[0],
    }


def ceiling(requests: int, concurrency: int, seconds: float, generators: int) -> dict:
    """What the generators alone can post: the same kind of requests against a server that does nothing."""
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--noop", str(port)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the no-op server did not start") from None
                time.sleep(0.1)
        posts = [_post(f"/unsubscribe/{n:040d}", "List-Unsubscribe=One-Click") for n in range(requests)]
        return run_client(port, posts, concurrency, seconds, generators)
    finally:
        server.terminate()
        server.wait()


def store_for(db: str, workdir: Path) -> contextlib.AbstractContextManager[str]:
    if db == "postgres":
        from tests.pgschema import throwaway_schema

        return throwaway_schema("bench")
    return contextlib.nullcontext(f"sqlite:///{workdir / 'digest.db'}")


def cpu_seconds(root: int) -> float:
    """CPU time (user and system) used so far by process `root` and its children (the serve workers):
    what a request costs the server, a figure that a loaded machine's noise does not change as much
    as it changes requests/s."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(stat.parent.name), int(fields[1])
        if root in (pid, ppid):
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _post(path: str, body: str, cookie: str | None = None) -> bytes:
    data = body.encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(data)}\r\n"
    )
    if cookie:
        head += f"Cookie: {cookie}\r\n"
    return (head + "\r\n").encode() + data


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


def measure(db: str, workers: int, readers: int, concurrency: int, seconds: float, generators: int) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp, store_for(db, Path(tmp)) as database_url:
        workdir = Path(tmp)
        port = free_port()
        env = settings_env(database_url, workdir, port)
        links = seed_and_links(env, readers)
        with serving(env, workdir, port, workers) as server:

            def phase(requests: list[bytes]) -> dict:
                before = cpu_seconds(server.pid)
                result = run_client(port, requests, concurrency, seconds, generators)
                spent = cpu_seconds(server.pid) - before
                return {**result, "cpu_ms": 1000 * spent / result["requests"] if result["requests"] else 0.0}

            # The app's own floor: a route that touches no store, through the same middleware.
            health = phase([_get("/healthz")] * readers)
            unsub = phase([_post(path, "List-Unsubscribe=One-Click") for path in links])
            cookie, token = form_cookie_and_token(port)
            signup = phase(
                [
                    _post("/subscribe", urlencode({"email": f"new{n}@example.org", "csrf_token": token}), cookie)
                    for n in range(readers)
                ]
            )
    return [
        {"db": db, "workers": workers, "case": "GET /healthz (no store)", **health},
        {"db": db, "workers": workers, "case": "one-click unsubscribe", **unsub},
        {"db": db, "workers": workers, "case": "sign-up form", **signup},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--part", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--noop", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--requests", type=int, default=3000, help="readers to unsubscribe, and sign-ups to post")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0, help="longest time per phase")
    parser.add_argument("--generators", type=int, default=2, help="load generator processes")
    args = parser.parse_args()
    if args.client:
        client_main(args.client, args.part)
        return
    if args.noop:
        noop_main(args.noop)
        return
    top = ceiling(max(args.requests, 50_000), args.concurrency, args.seconds, args.generators)
    top.update(db="-", workers=0, case="generator ceiling", cpu_ms=0.0)
    rows = [top]
    for db in args.db:
        for workers in args.workers:
            rows += measure(db, workers, args.requests, args.concurrency, args.seconds, args.generators)
            print(f"  done: {db}, {workers} worker(s)", file=sys.stderr)
    heads = ("requests", "req/s", "p50 ms", "p99 ms", "errors", "cpu ms")
    print(f"{'store':<9} {'workers':>7}  {'case':<24} " + " ".join(f"{h:>8}" for h in heads) + "  load  statuses")
    for r in rows:
        other = " ".join(f"{k}x{v}" for k, v in sorted(r["statuses"].items()))
        print(
            f"{r['db']:<9} {r['workers']:>7}  {r['case']:<24} {r['requests']:>8} {r['per_second']:>8.0f} "
            f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['errors']:>8} {r['cpu_ms']:>8.2f} {r['load']:>5.1f}  {other}"
        )
    print(f"load average (1, 5, 15 min) at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
