"""Signed links for one subscriber: confirm, unsubscribe, preferences.

Each purpose has its own salt, so a token made for one purpose is worthless for another. Signing
keys can be rotated: older keys are still accepted for reading, the newest signs.
"""

from __future__ import annotations

from collections.abc import Sequence

from itsdangerous import BadData, URLSafeTimedSerializer

PURPOSES = {"confirm": 7 * 24 * 3600, "unsubscribe": None, "preferences": None}


class BadToken(Exception):
    """The token is forged, altered, expired or made for another purpose."""


class Tokens:
    def __init__(self, secret_key: str, old_keys: Sequence[str] = ()):
        # itsdangerous signs with the last key and accepts any of them when reading.
        self._keys = [*old_keys, secret_key]

    def _serializer(self, purpose: str) -> URLSafeTimedSerializer:
        if purpose not in PURPOSES:
            raise ValueError(f"unknown token purpose {purpose!r}")
        return URLSafeTimedSerializer(self._keys, salt=f"digest.{purpose}")

    def make(self, purpose: str, subscriber_id: int) -> str:
        return self._serializer(purpose).dumps(subscriber_id)

    def read(self, purpose: str, token: str) -> int:
        try:
            value = self._serializer(purpose).loads(token, max_age=PURPOSES[purpose])
        except BadData:
            raise BadToken(f"this {purpose} link is not valid (altered, expired or not ours)") from None
        if not isinstance(value, int):
            raise BadToken(f"this {purpose} link is not valid")
        return value
