"""A large `digest subscribers import` in a subprocess, and web writes through the real app while it runs.

Shared by tests/test_hostile_import.py and bench/import.py: the readers who unsubscribe by one click
and the visitors who sign up must not wait for the import, and no answer may be a 500.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from subscribers import store
from subscribers.models import Subscriber

ROOT = Path(__file__).resolve().parents[1]
RETRY_AFTER_IN_TESTS = 0.2  # a mail client waits Retry-After; here a moment is enough


@dataclass
class Write:
    kind: str  # "unsubscribe" or "sign-up"
    address: str
    status: int
    seconds: float  # this request's wait for its answer
    retry_after: str | None
    during_import: bool


@dataclass
class Load:
    writes: list[Write] = field(default_factory=list)
    done: set[str] = field(default_factory=set)  # addresses whose write finally got a 2xx

    @property
    def worst(self) -> float:
        return max((w.seconds for w in self.writes if w.during_import), default=0.0)

    def during(self) -> list[Write]:
        return [w for w in self.writes if w.during_import]


def write_people(path: Path, rows: int, also: list[tuple[str, str]] = ()) -> Path:
    """`rows` new people with `also` (address, name) spread among them: people already on the list."""
    lines = ["email,name"] + [f"reader{n}@import.example.org,Reader {n}" for n in range(rows)]
    step = max(1, rows // max(1, len(also)))
    for i, (address, name) in reversed(list(enumerate(also))):
        lines.insert(1 + min(i * step, rows), f"{address},{name}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def readers_who_will_leave(core, count: int) -> dict[str, str]:
    """`count` active subscribers already on the list: address -> their signed unsubscribe path."""
    paths = {}
    with core.sessions.begin() as session:
        for n in range(count):
            subscriber, _ = store.add(session, f"leaver{n}@example.org", f"Leaver {n}", now=core.now(), cause="test")
            session.flush()
            paths[subscriber.email] = subscriber
    return {address: f"/unsubscribe/{core.tokens.make('unsubscribe', s)}" for address, s in paths.items()}


def start_import(env: dict, csv: Path, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "digest.cli", "subscribers", "import", str(csv)],
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _timed(load: Load, importing: subprocess.Popen, kind: str, address: str, send) -> None:
    """Send until a 2xx, as a mail client or a person would after a 503; record every answer."""
    while True:
        during = importing.poll() is None
        started = time.monotonic()
        answer = send()
        seconds = time.monotonic() - started
        load.writes.append(Write(kind, address, answer.status_code, seconds, answer.headers.get("retry-after"), during))
        if answer.status_code != 503:
            if answer.status_code < 300:
                load.done.add(address)
            return
        time.sleep(RETRY_AFTER_IN_TESTS)


def load_while_importing(site, importing: subprocess.Popen, leavers: dict[str, str], wait_for_rows: int = 0) -> Load:
    """One-click unsubscribes on one thread, sign-ups on another, for as long as the import runs."""
    load = Load()
    if wait_for_rows:  # start once the import is writing (its first rows are in, or a few seconds passed)
        deadline = time.monotonic() + 4
        while importing.poll() is None and time.monotonic() < deadline and count(site.core) < wait_for_rows:
            time.sleep(0.05)
    pending = list(leavers.items())

    def unsubscribes() -> None:
        while pending and importing.poll() is None:
            address, path = pending.pop()
            _timed(load, importing, "unsubscribe", address,
                   lambda p=path: site.http.post(p, data={"List-Unsubscribe": "One-Click"}))  # fmt: skip

    def sign_ups() -> None:
        page = site.http.get("/subscribe")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]
        n = 0
        while importing.poll() is None:
            address = f"visitor{n}@example.org"
            form = {"email": address, "name": f"Visitor {n}", "csrf_token": token}
            _timed(load, importing, "sign-up", address, lambda f=form: site.http.post("/subscribe", data=f))
            n += 1

    threads = [threading.Thread(target=unsubscribes), threading.Thread(target=sign_ups)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return load


def count(core) -> int:
    from sqlalchemy import func, select

    with core.sessions() as session:
        return session.scalar(select(func.count()).select_from(Subscriber))
