"""A per-client sliding-window counter, held in this process.

With several `digest serve` instances behind a proxy, each counts on its own, so a client may get up
to N × instances sign-ups an hour through; a shared limit would need a shared counter (Redis, or the
proxy's own limit).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    def __init__(self, limit: int, window_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.limit, self.window, self.clock = limit, window_seconds, clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._last_sweep = clock()

    def allow(self, key: str) -> tuple[bool, int]:
        """(allowed, seconds until the next attempt would be allowed)."""
        now = self.clock()
        with self._lock:
            if now - self._last_sweep > self.window:
                self._sweep(now)
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False, max(1, int(hits[0] + self.window - now) + 1)
            hits.append(now)
            return True, 0

    def _sweep(self, now: float) -> None:
        # Forget clients quiet for a whole window, so the table does not grow without end.
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= now - self.window]:
            del self._hits[key]
        self._last_sweep = now
