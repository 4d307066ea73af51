"""Where the web app's rate limits count: Redis when DIGEST_REDIS_URL is set, else the store."""

from __future__ import annotations

import hashlib

from digest.core import Digest
from digest.store.counters import Counter, RedisCounter, StoreCounter


def limit_counter(core: Digest) -> Counter:
    if core.settings.redis_url:
        # Every process of one publication uses the same store: its URL names the publication in Redis.
        namespace = hashlib.sha256(core.settings.database_url.encode()).hexdigest()[:16]
        return RedisCounter(core.settings.redis_url, namespace)
    return StoreCounter(core.engine)
