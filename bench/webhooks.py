"""Benchmark: `digest serve` on loopback storing SendGrid Event Webhook batches of 1,000 signed events.

Starts the real command on SQLite and on PostgreSQL, with one process and with two workers, posts signed
batches (as SendGrid does: one JSON array, ECDSA P-256 over timestamp + body) for an issue the store
holds, to readers it holds, and prints events stored per second, counted in the store afterwards; the
issue's figures are counted as the events arrive, so their cost is in the figure. Target: 25,000
events per second with 2 workers on PostgreSQL.

Each run also prints the CPU per batch of `digest serve`, of its PostgreSQL backends and of the load
generator (this process, which shares the machine): the generator's ceiling (events/s it could drive on a
core of its own) shows it is not what limits the figure, and the rate the three would reach on two cores of
their own says what the work costs when the machine is shared and the wall-clock figure is not.

Two workers are `digest serve --workers 2` when the command has that option; otherwise (or with
--two-processes) two `digest serve` processes on two ports, the batches spread across them.

    PYTHONPATH=$PWD .venv/bin/python bench/webhooks.py [--batches 40] [--senders 4] [--db sqlite postgres]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx  # the health check only
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import create_engine, insert, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digest.store import db  # noqa: E402
from subscribers.models import Subscriber  # noqa: E402
from tests.conftest import TEST_SECRET_KEY  # noqa: E402
from tests.fakes.seed import make_issue, subscriber_row  # noqa: E402
from tests.pgschema import throwaway_schema  # noqa: E402

READERS = 20_000
KINDS = ["processed", "delivered", "delivered", "open", "open", "click", "bounce", "spamreport", "unsubscribe"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_batches(count: int, size: int, run: str, issue_id: int = 1) -> list[bytes]:
    batches = []
    for b in range(count):
        events = []
        for i in range(size):
            n = b * size + i
            events.append(
                {
                    "email": f"reader{n % READERS}@example.org",
                    "event": KINDS[n % len(KINDS)],
                    "sg_event_id": f"{run}-{n}",
                    "sg_message_id": f"msg{n}.filter0001",
                    "timestamp": 1795856400 + n,
                    "issue_id": str(issue_id),
                    "useragent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)",
                    "ip": "198.51.100.7",
                }
            )
        batches.append(json.dumps(events).encode())
    return batches


def seed(database_url: str) -> int:
    """The store at its head, with the readers and the issue the events are for; returns the issue id."""
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    with db.session_factory(engine).begin() as session:
        session.execute(insert(Subscriber), [subscriber_row(f"reader{n}@example.org", None) for n in range(READERS)])
        issue_id = make_issue(session).id
    engine.dispose()
    return issue_id


def has_workers_option() -> bool:
    """Whether `digest serve` takes --workers (being added beside this benchmark)."""
    shown = subprocess.run(
        [sys.executable, "-m", "digest.cli", "serve", "--help"],
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        check=False,
    )
    return "--workers" in shown.stdout


class Server:
    def __init__(self, database_url: str, public_key: str, workdir: Path, workers: int = 1):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
        env.update(
            PYTHONPATH=str(ROOT),
            DIGEST_DIR=str(workdir),
            DIGEST_DATABASE_URL=database_url,
            DIGEST_CONFIG=str(ROOT / "examples" / "digest.toml"),
            DIGEST_SECRET_KEY=TEST_SECRET_KEY,
            DIGEST_BASE_URL=self.url,
            DIGEST_OUTBOX_DIR=str(workdir / "outbox"),
            DIGEST_PROVIDER="outbox",
            DIGEST_SENDGRID_WEBHOOK_PUBLIC_KEY=public_key,
        )
        command = [sys.executable, "-m", "digest.cli", "serve", "--port", str(self.port)]
        if workers > 1:
            command += ["--workers", str(workers)]
        self.process = subprocess.Popen(command, env=env, cwd=workdir)
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"digest serve did not start (exit code {self.process.poll()})")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its children now alive, from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(int(child)) for child in children)


def backend_pids(database_url: str, name: str) -> list[int]:
    """The PostgreSQL backends serving `digest serve` (they connect with application_name=`name`)."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        query = text("SELECT pid FROM pg_stat_activity WHERE application_name = :n")
        pids = list(conn.execute(query, {"n": name}).scalars())
    engine.dispose()
    return pids


class Connection:
    """One keep-alive HTTP/1.1 connection that sends requests built beforehand. The load generator shares
    the machine with the server: httpx spent about as much CPU per post as the server's own Python, so
    the requests are plain bytes written to a socket and the answers read just far enough to check them."""

    def __init__(self, url: str):
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=120)
        self.file = self.sock.makefile("rb")

    @staticmethod
    def request(url: str, body: bytes, headers: dict[str, str]) -> bytes:
        host = url.removeprefix("http://")
        lines = ["POST /webhooks/sendgrid HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def send(self, request: bytes) -> tuple[int, bytes]:
        self.sock.sendall(request)
        status = int(self.file.readline().split()[1])
        length = 0
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, self.file.read(length)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def signed(key, body: bytes) -> dict[str, str]:
    timestamp = str(int(time.time()))
    signature = base64.b64encode(key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
    return {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": signature,
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }


def run(database_url: str, label: str, args, mode: str, key, public_key: str, workdir: Path) -> None:
    """One timed run: `mode` is "1 process", "--workers 2" or "2 processes"."""
    issue_id = seed(database_url)
    postgres = database_url.startswith("postgresql")
    # The servers' store connections carry a name of their own, so that their backends' CPU can be read.
    app_name = f"digest-bench-{uuid.uuid4().hex[:8]}"
    server_url = database_url
    if postgres:
        server_url += f"{'&' if '?' in database_url else '?'}application_name={app_name}"
    servers: list[Server] = []
    try:
        if mode == "--workers 2":
            servers.append(Server(server_url, public_key, workdir, workers=2))
        else:
            for n in range(2 if mode == "2 processes" else 1):
                (workdir / str(n)).mkdir()
                servers.append(Server(server_url, public_key, workdir / str(n)))
        bodies = make_batches(args.batches, 1000, uuid.uuid4().hex[:8], issue_id)
        # Signed before the clock starts: the server's work is timed, not the sender's.
        posts = []
        for n, body in enumerate(bodies):
            url = servers[n % len(servers)].url
            posts.append((url, Connection.request(url, body, signed(key, body))))
        clients: dict[tuple[int, str], Connection] = {}

        def post(item: tuple[str, bytes]) -> None:
            url, request = item
            key_ = (threading.get_ident(), url)
            if key_ not in clients:
                clients[key_] = Connection(url)
            status, answer = clients[key_].send(request)
            if status != 200:
                raise SystemExit(f"batch refused: {status} {answer[:200]!r}")

        for server in servers:  # a first request pays for imports and connections, in each worker
            for warm in make_batches(4, 10, uuid.uuid4().hex[:8], issue_id):
                post((server.url, Connection.request(server.url, warm, signed(key, warm))))
        engine = create_engine(database_url)
        with engine.connect() as conn:
            before = conn.execute(text("SELECT count(*) FROM events")).scalar()
        pids = backend_pids(database_url, app_name) if postgres else []
        db_before = {pid: cpu_seconds(pid) for pid in pids}
        cpu_before = sum(cpu_seconds(server.process.pid) for server in servers)
        load = os.getloadavg()[0]
        own_before = time.process_time()
        started = time.perf_counter()
        with ThreadPoolExecutor(args.senders) as pool:
            list(pool.map(post, posts))
        seconds = time.perf_counter() - started
        # The load generator's own CPU (this process: its sending threads; signing was done before).
        generator = time.process_time() - own_before
        cpu = sum(cpu_seconds(server.process.pid) for server in servers) - cpu_before
        # Backends opened during the run count from zero.
        pids = backend_pids(database_url, app_name) if postgres else []
        db_cpu = sum(cpu_seconds(pid) - db_before.get(pid, 0.0) for pid in pids)
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM events")).scalar() - before
        engine.dispose()
        for client in clients.values():
            client.close()
        per_batch = 1000 / args.batches  # seconds -> ms per batch
        print(
            f"{label:<10} {mode:<12} senders={args.senders}  {stored:>6} events in {seconds:6.2f} s  "
            f"= {stored / seconds:8,.0f} events/s  ({seconds * per_batch:.0f} ms per batch of 1,000; load {load:.1f})",
            flush=True,
        )
        # CPU per batch of each party: on a shared machine the wall-clock rate says how busy it was; these
        # say what the work costs. The generator's ceiling is the rate it could drive with a core to itself.
        total = cpu + db_cpu + generator
        print(
            f"{'':<23} CPU per batch: digest serve {cpu * per_batch:.1f} ms, PostgreSQL backends "
            f"{db_cpu * per_batch:.1f} ms, load generator {generator * per_batch:.1f} ms (its ceiling "
            f"{args.batches * 1000 / max(generator, 1e-9):,.0f} events/s per core); all three on 2 cores of their "
            f"own: {2 * stored / max(total, 1e-9):,.0f} events/s",
            flush=True,
        )
    finally:
        for server in servers:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40, help="batches of 1,000 events per run")
    parser.add_argument("--senders", type=int, default=4, help="concurrent senders")
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    parser.add_argument(
        "--two-processes", action="store_true", help="two `digest serve` processes even when --workers exists"
    )
    args = parser.parse_args()
    key = ec.generate_private_key(ec.SECP256R1())
    public_key = base64.b64encode(
        key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ).decode()
    two = "2 processes" if args.two_processes or not has_workers_option() else "--workers 2"
    print(f"digest serve on loopback, {args.batches} signed batches of 1,000 events per run; load {os.getloadavg()}")
    for database in args.db:
        for mode in ("1 process", two):
            with tempfile.TemporaryDirectory() as tmp:
                workdir = Path(tmp)
                if database == "sqlite":
                    run(f"sqlite:///{workdir / 'bench.db'}", database, args, mode, key, public_key, workdir)
                    continue
                with throwaway_schema("bench") as url:
                    run(url, database, args, mode, key, public_key, workdir)


if __name__ == "__main__":
    main()
