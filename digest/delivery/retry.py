"""How long to wait before trying a failed request again: exponential backoff with jitter, and
the provider's own word (X-RateLimit-Reset, Retry-After) for rate limits."""

from __future__ import annotations

import random
from dataclasses import dataclass

from digest.config import DeliveryConfig


@dataclass(frozen=True)
class RetryPolicy:
    retries: int  # extra attempts after a 5xx, timeout or dropped connection
    backoff_seconds: float  # the first wait; doubled each time
    backoff_max_seconds: float
    rate_limit_waits: int = 20  # 429s tolerated for one batch before it fails
    rate_limit_max_wait_seconds: float = 300.0  # never trust a reset further away than this

    @classmethod
    def from_config(cls, delivery: DeliveryConfig) -> RetryPolicy:
        return cls(delivery.retries, delivery.backoff_seconds, delivery.backoff_max_seconds)

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Wait before retry number `attempt` (1-based): half fixed, half random, so that many senders
        that failed together do not all come back at the same moment."""
        ceiling = min(self.backoff_max_seconds, self.backoff_seconds * 2.0 ** (attempt - 1))
        return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)

    def rate_limit_wait(self, retry_after: float | None) -> float:
        if retry_after is None or retry_after < 0:
            return self.backoff_seconds
        return min(retry_after, self.rate_limit_max_wait_seconds)
