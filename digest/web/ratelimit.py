"""Rate limits per client (sign-up, the editor's login), counted in fixed windows shared by every process.

`digest serve --workers N` and several machines behind one proxy all count in the same place: the store
(`rate_limits`), or Redis when DIGEST_REDIS_URL is set (digest.store.counters). A fixed window lets a
client make at most twice the limit across the boundary of two windows, never N times it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from digest.store.counters import Counter


class RateLimiter:
    def __init__(
        self, counter: Counter, name: str, limit: int, window_seconds: int, clock: Callable[[], float] = time.time
    ):
        self.counter, self.name, self.limit, self.window, self.clock = counter, name, limit, window_seconds, clock

    def allow(self, key: str) -> tuple[bool, int]:
        """(allowed, seconds until the next attempt would be allowed). One round trip to the counter."""
        now = self.clock()
        hits, start = self.counter.hit(f"{self.name}:{key}", self.window, now)
        if hits <= self.limit:
            return True, 0
        return False, max(1, math.ceil(start + self.window - now))
