"""Counters of hits per key in fixed time windows, shared by every process that uses the same store or Redis.

What rate limits count with (digest.web.ratelimit): each hit is one atomic operation that adds one and
returns the window's count, so two processes counting the same client never both see room for one more.

- `StoreCounter`: a row per key and window in `rate_limits`, one INSERT … ON CONFLICT DO UPDATE …
  RETURNING per hit (SQLite 3.35+ and PostgreSQL alike; on PostgreSQL one round trip, in autocommit);
  windows that ended are deleted at most once a minute per process, by one indexed DELETE.
- `RedisCounter`: INCR and EXPIRE in one MULTI per hit; Redis forgets the window by itself.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import Engine, bindparam, delete, text
from sqlalchemy.dialects import sqlite

from digest.store.models import RateLimitHit

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

PURGE_EVERY_SECONDS = 60.0
_HIT_PG = text(
    """
    INSERT INTO rate_limits (key, window_start, hits, expires_at)
    SELECT :key, :window_start, 1, :expires_at FROM (SELECT set_config('synchronous_commit', 'off', true)) AS local
    ON CONFLICT (key, window_start) DO UPDATE SET hits = rate_limits.hits + 1
    RETURNING hits
    """
)


class Counter(Protocol):
    def hit(self, key: str, window_seconds: int, now: float) -> tuple[int, int]:
        """Count one hit of `key`; (hits in the current window with this one, the window's start)."""
        ...


def window_start(now: float, window_seconds: int) -> int:
    return int(now // window_seconds) * window_seconds


class StoreCounter:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._postgresql = engine.dialect.name == "postgresql"
        self._hit_sqlite = (
            sqlite.insert(RateLimitHit)
            .values(
                key=bindparam("key"), window_start=bindparam("window_start"), hits=1, expires_at=bindparam("expires_at")
            )
            .on_conflict_do_update(index_elements=["key", "window_start"], set_={"hits": RateLimitHit.hits + 1})
            .returning(RateLimitHit.hits)
        )
        self._purge_lock = threading.Lock()
        self._last_purge = 0.0

    def hit(self, key: str, window_seconds: int, now: float) -> tuple[int, int]:
        start = window_start(now, window_seconds)
        values = {"key": key, "window_start": start, "expires_at": start + window_seconds}
        if self._postgresql:
            # One statement in autocommit: one round trip, no BEGIN or COMMIT of its own. A count lost
            # to a crash of the database costs nothing worth a disk flush per hit, so the statement
            # turns synchronous_commit off for its own transaction (set_config's `true`: LOCAL); the
            # flush of the sign-up the hit guards is not affected.
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                hits = int(connection.execute(_HIT_PG, values).scalar_one())
        else:
            with self.engine.begin() as connection:
                hits = int(connection.execute(self._hit_sqlite, values).scalar_one())
        self._purge_now_and_then(now)
        return hits, start

    def _purge_now_and_then(self, now: float) -> None:
        # One process in many notices first; the others find nothing to delete. A failed purge is tried
        # again a minute later: it must never fail the request that happened to run it.
        if now - self._last_purge < PURGE_EVERY_SECONDS or not self._purge_lock.acquire(blocking=False):
            return
        try:
            self._last_purge = now
            with self.engine.begin() as connection:
                connection.execute(delete(RateLimitHit).where(RateLimitHit.expires_at <= int(now)))
        except Exception as exc:  # noqa: BLE001 - the purge is upkeep; the hit itself was counted
            log.info("could not delete old rate-limit windows (tried again in a minute): %s", exc)
        finally:
            self._purge_lock.release()


class RedisCounter:
    """Counts in Redis. An unreachable Redis lets the hit through (and says so in the log): a rate limit
    guards against abuse, and refusing every sign-up while Redis is down would be worse."""

    def __init__(self, url: str, namespace: str) -> None:
        import redis

        # Publications that share one Redis must not share counts: `namespace` names this one's store.
        self.prefix = f"digest:{namespace}:limit:"
        self.client: redis.Redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def hit(self, key: str, window_seconds: int, now: float) -> tuple[int, int]:
        import redis

        start = window_start(now, window_seconds)
        name = f"{self.prefix}{key}:{start}"
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.incr(name)
            # A little past the window's end, so that clocks a second apart across machines agree.
            pipe.expire(name, window_seconds + 5)
            hits = int(pipe.execute()[0])
        except redis.RedisError as exc:
            log.warning("Redis did not answer (%s); this hit of %s was let through uncounted", exc, key.split(":")[0])
            return 0, start
        return hits, start

    def close(self) -> None:
        self.client.close()
