"""Rate limits shared by every web process: counted in the store (SQLite, PostgreSQL) or in Redis, and
holding across two real `digest serve --workers 2` processes."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
import uuid

import httpx
import pytest
from sqlalchemy import func, select

from digest.store.counters import RedisCounter, StoreCounter
from digest.store.models import RateLimitHit
from digest.web.ratelimit import RateLimiter
from tests.conftest import IN_CI, ROOT

REDIS_URL = "redis://127.0.0.1:6379/0"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def redis_or_skip() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"Redis at {REDIS_URL} is not reachable: {exc} (CI=true: the Redis tests must run)")
        pytest.skip(f"Redis at {REDIS_URL} is not reachable: {exc}")


def test_hits_counted_from_many_threads_at_once_are_each_counted_once(core):
    counter = StoreCounter(core.engine)
    limiter = RateLimiter(counter, "subscribe", 25, 3600, clock=lambda: 7200.0)
    answers: list[bool] = []

    def hit() -> None:
        for _ in range(10):
            answers.append(limiter.allow("203.0.113.9")[0])

    threads = [threading.Thread(target=hit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers.count(True) == 25 and len(answers) == 40
    # Another client, and the next window, start from nothing.
    assert limiter.allow("203.0.113.10") == (True, 0)
    assert RateLimiter(counter, "subscribe", 25, 3600, clock=lambda: 10800.0).allow("203.0.113.9") == (True, 0)


def test_a_refused_hit_says_when_the_window_ends(core):
    limiter = RateLimiter(StoreCounter(core.engine), "login", 2, 900, clock=lambda: 900.0 * 4 + 100)
    assert [limiter.allow("a")[0] for _ in range(2)] == [True, True]
    assert limiter.allow("a") == (False, 800)


def test_windows_that_ended_are_deleted_by_a_later_hit(core):
    counter = StoreCounter(core.engine)
    counter.hit("subscribe:old", 60, 1000.0)
    counter.hit("subscribe:new", 60, 1000.0 + 3600)  # a purge runs at most once a minute per process
    with core.sessions() as session:
        keys = session.scalars(select(RateLimitHit.key)).all()
        assert keys == ["subscribe:new"]
        assert session.scalar(select(func.count()).select_from(RateLimitHit)) == 1


def test_redis_counts_each_hit_once_and_separates_publications():
    redis_or_skip()
    mine, theirs = RedisCounter(REDIS_URL, uuid.uuid4().hex), RedisCounter(REDIS_URL, uuid.uuid4().hex)
    try:
        now = time.time()
        assert [mine.hit("subscribe:1.2.3.4", 3600, now)[0] for _ in range(3)] == [1, 2, 3]
        assert theirs.hit("subscribe:1.2.3.4", 3600, now)[0] == 1
        keys = list(mine.client.scan_iter(f"{mine.prefix}*"))
        assert len(keys) == 1 and 0 < mine.client.ttl(keys[0]) <= 3605
    finally:
        for counter in (mine, theirs):
            for key in counter.client.scan_iter(f"{counter.prefix}*"):
                counter.client.delete(key)
            counter.close()


def test_an_unreachable_redis_lets_the_hit_through_and_says_so(caplog):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket is closed
    limiter = RateLimiter(RedisCounter(f"redis://127.0.0.1:{port}/0", "x"), "subscribe", 1, 3600)
    assert limiter.allow("a") == (True, 0) and limiter.allow("a") == (True, 0)
    assert "Redis did not answer" in caplog.text


# --- two real worker processes ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_serve(env: dict[str, str], cwd, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "digest.cli", "serve", "--port", str(port), "--workers", str(workers)],
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180  # a spawned worker imports the digest afresh: slow on a busy machine
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"digest serve did not start: {process.communicate(timeout=30)[1][-2000:]}")


def stop_serve(process: subprocess.Popen) -> str:
    process.terminate()
    return process.communicate(timeout=60)[1]


def sign_ups_accepted(urls: list[str], attempts: int) -> list[int]:
    """`attempts` sign-ups from one client, taking the servers in turn, each on a connection of its own."""
    statuses: list[int] = []
    for n in range(attempts):
        with httpx.Client(base_url=urls[n % len(urls)], timeout=60) as client:
            token = CSRF.search(client.get("/subscribe").text)[1]
            answer = client.post("/subscribe", data={"email": f"limit{n}@example.org", "csrf_token": token})
        statuses.append(answer.status_code)
    return statuses


def worker_pids(log: str) -> set[str]:
    return set(re.findall(r"Started server process \[(\d+)\]", log))


@pytest.mark.parametrize("counted_in", ["store", "redis"])
def test_the_sign_up_limit_is_not_doubled_by_more_web_processes(cli_env, tmp_path, counted_in, database_url):
    """`digest serve --workers 2` beside a second `digest serve` on the same store (as on a second
    machine), the client's sign-ups going to each in turn: three processes, one limit."""
    if counted_in == "redis":
        redis_or_skip()
    env = {**cli_env, "DIGEST_SUBSCRIBE_PER_IP_PER_HOUR": "4", "DIGEST_BASE_URL": "http://127.0.0.1"}
    if counted_in == "redis":
        env["DIGEST_REDIS_URL"] = REDIS_URL
    workers, workers_url = start_serve(env, tmp_path, workers=2)
    try:
        single, single_url = start_serve(env, tmp_path, workers=1)
        try:
            statuses = sign_ups_accepted([workers_url, single_url], 12)
        finally:
            stop_serve(single)
    finally:
        log = stop_serve(workers)
    assert len(worker_pids(log)) == 2, log
    assert statuses == [200] * 4 + [429] * 8, statuses
