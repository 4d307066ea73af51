"""Benchmark: `digest serve` on loopback storing SendGrid Event Webhook batches of 1,000 signed events.

Starts the real command in a subprocess on SQLite and on PostgreSQL, posts signed batches (as SendGrid
does: one JSON array, ECDSA P-256 over timestamp + body), and prints events stored per second, counted
in the store afterwards. Target: 5,000 events per second or more.

    PYTHONPATH=$PWD .venv/bin/python bench/webhooks.py [--batches 20] [--senders 1 4] [--db sqlite postgres]
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
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import TEST_SECRET_KEY  # noqa: E402
from tests.pgschema import throwaway_schema  # noqa: E402

KINDS = ["processed", "delivered", "delivered", "open", "open", "click", "bounce", "spamreport", "unsubscribe"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_batches(count: int, size: int, run: str) -> list[bytes]:
    batches = []
    for b in range(count):
        events = []
        for i in range(size):
            n = b * size + i
            events.append(
                {
                    "email": f"reader{n % 20000}@example.org",
                    "event": KINDS[n % len(KINDS)],
                    "sg_event_id": f"{run}-{n}",
                    "sg_message_id": f"msg{n}.filter0001",
                    "timestamp": 1795856400 + n,
                    "issue_id": "1",
                    "useragent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)",
                    "ip": "198.51.100.7",
                }
            )
        batches.append(json.dumps(events).encode())
    return batches


class Server:
    def __init__(self, database_url: str, public_key: str, workdir: Path):
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
        self.process = subprocess.Popen(
            [sys.executable, "-m", "digest.cli", "serve", "--port", str(self.port)], env=env, cwd=workdir
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"digest serve did not start (exit code {self.process.poll()})")
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def run(database_url: str, label: str, batches: int, senders: int, key, public_key: str, workdir: Path) -> None:
    server = Server(database_url, public_key, workdir)
    try:
        bodies = make_batches(batches, 1000, uuid.uuid4().hex[:8])

        def post(body: bytes) -> None:
            timestamp = str(int(time.time()))
            signature = base64.b64encode(key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
            headers = {
                "Content-Type": "application/json",
                "X-Twilio-Email-Event-Webhook-Signature": signature,
                "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
            }
            with httpx.Client(timeout=120) as client:
                answer = client.post(f"{server.url}/webhooks/sendgrid", content=body, headers=headers)
            if answer.status_code != 200:
                raise SystemExit(f"batch refused: {answer.status_code} {answer.text[:200]}")

        post(make_batches(1, 10, "warmup")[0])  # first request pays for imports and connections
        engine = create_engine(database_url)
        with engine.connect() as conn:
            before = conn.execute(text("SELECT count(*) FROM events")).scalar()
        started = time.perf_counter()
        with ThreadPoolExecutor(senders) as pool:
            list(pool.map(post, bodies))
        seconds = time.perf_counter() - started
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM events")).scalar() - before
        engine.dispose()
        print(
            f"{label:<10} senders={senders}  {stored:>6} events in {seconds:6.2f} s  "
            f"= {stored / seconds:8,.0f} events/s  ({seconds / batches * 1000:.0f} ms per batch of 1,000)",
            flush=True,
        )
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20, help="batches of 1,000 events per run")
    parser.add_argument("--senders", type=int, nargs="+", default=[1, 4], help="concurrent senders")
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    args = parser.parse_args()
    key = ec.generate_private_key(ec.SECP256R1())
    public_key = base64.b64encode(
        key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ).decode()
    print(f"digest serve on loopback, {args.batches} signed batches of 1,000 events per run")
    for db in args.db:
        for senders in args.senders:
            with tempfile.TemporaryDirectory() as tmp:
                workdir = Path(tmp)
                if db == "sqlite":
                    run(f"sqlite:///{workdir / 'bench.db'}", db, args.batches, senders, key, public_key, workdir)
                    continue
                with throwaway_schema("bench") as url:
                    run(url, db, args.batches, senders, key, public_key, workdir)


if __name__ == "__main__":
    main()
