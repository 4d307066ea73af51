"""Where the web app's rate limits count: Redis when DIGEST_REDIS_URL is set, else the store."""

from __future__ import annotations

from digest.core import Digest
from digest.store.counters import Counter, RedisCounter, StoreCounter


def limit_counter(core: Digest) -> Counter:
    if core.settings.redis_url:
        return RedisCounter(core.settings.redis_url)
    return StoreCounter(core.engine)
