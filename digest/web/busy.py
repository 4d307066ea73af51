"""A busy or unreachable store: retry what must not be lost, and answer 503 with Retry-After, never 500.

SQLite has one writer at a time; a writer that cannot get the lock within busy_timeout (digest.db), or
whose snapshot went stale, gets "database is locked". PostgreSQL reports lock timeouts, deadlocks and
serialization failures. Those are worth a quick retry of the whole transaction; anything else, and a
store that stays busy, is answered 503 with Retry-After, which mail clients (RFC 8058 one-click),
SendGrid's webhook and well-behaved API clients retry.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError

from digest.locale import N_
from digest.web.pages import error_page

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_AFTER_SECONDS = 30
ATTEMPTS = 3
# Retries are for errors that come at once (a stale snapshot, a deadlock): after a full busy_timeout
# wait the store is busy for real, and the client is better told to come back than kept waiting.
RETRY_WITHIN_SECONDS = 5.0
_PG_RETRYABLE = {"40001", "40P01", "55P03"}  # serialization failure, deadlock detected, lock not available


def is_busy(exc: OperationalError) -> bool:
    """A lock conflict that a retry of the same transaction may get past."""
    if getattr(exc.orig, "sqlstate", None) in _PG_RETRYABLE:
        return True
    message = str(exc.orig).lower()
    return "database is locked" in message or "database table is locked" in message


def retry_when_busy(work: Callable[..., T], *args: object) -> T:
    """Run `work(*args)` (one whole transaction) again when the store was busy; re-raises after that."""
    started = time.monotonic()
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return work(*args)
        except OperationalError as exc:
            # A pooled connection the store closed (a restart, an idle timeout on the way): the web's
            # pool does not ping before each use (digest.web.app), so the first use finds it dead; the
            # pool has dropped it and its elders by then, and the next attempt gets a fresh one.
            dead = exc.connection_invalidated
            if attempt == ATTEMPTS or not (dead or is_busy(exc)) or time.monotonic() - started > RETRY_WITHIN_SECONDS:
                raise
            log.info("store busy (%s); trying again (%d of %d)", _short(exc), attempt + 1, ATTEMPTS)
            if not dead:
                time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


async def in_store(request: Request, work: Callable[..., T], *args: object, retry: bool = True) -> T:
    """`retry_when_busy(work, *args)` (`work(*args)` with retry=False) in a thread, with no more threads in
    the store at once than the pool has connections (`store_threads`): more would wait for a connection
    anyway, and would meanwhile make the pool open and close connections beyond its size (a new
    PostgreSQL process each) and fight the event loop for the GIL."""
    limiter: CapacityLimiter = request.app.state.store_threads
    call = functools.partial(retry_when_busy, work, *args) if retry else functools.partial(work, *args)
    return await anyio.to_thread.run_sync(call, limiter=limiter)


def store_threads(pool_size: int | None) -> CapacityLimiter:
    """One thread fewer than the pool's connections: the confirmation sender keeps one (digest.web.app)."""
    return CapacityLimiter(max(2, (pool_size or 5) - 1))


def install(app: FastAPI) -> None:
    """Answer OperationalError from any route with 503 and Retry-After."""

    @app.exception_handler(OperationalError)
    async def store_unavailable(request: Request, exc: OperationalError) -> Response:
        log.warning("%s %s: the store is busy or unreachable: %s", request.method, request.url.path, _short(exc))
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        if request.url.path.startswith(("/api/", "/webhooks/")):
            return JSONResponse(
                {"error": f"the store is busy; nothing was changed, try again in {RETRY_AFTER_SECONDS} s"},
                503,
                headers=headers,
            )
        return error_page(
            request,
            503,
            N_("We are busy for a moment"),
            f"Nothing was changed. Please try again in {RETRY_AFTER_SECONDS} seconds.",
            headers=headers,
        )


def _short(exc: OperationalError) -> str:
    return " ".join(str(exc.orig).split())[:200]
