"""Signed links for one subscriber: confirm, unsubscribe, preferences.

What a link carries: an opaque random key of the subscriber (`Subscriber.link_key`, 128 random bits),
never their id or address. itsdangerous payloads are only base64 JSON, readable by anyone who holds
the link, so signing the id would tell a reader how many subscribers there are and let them guess
neighbours' ids; a random key tells nothing, and erasing the subscriber erases the key with them.

Each purpose has its own salt, so a token made for one purpose is worthless for another. The confirm
link expires after 7 days; unsubscribe and preferences links never do (they sit in old mail).
Signing keys can be rotated: the newest key signs, older keys are still accepted for reading.
`SignedLinks` turns a token into the page of the site it opens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer

from digest.email.links import Links
from digest.errors import UsageError

PURPOSES = {"confirm": 7 * 24 * 3600, "unsubscribe": None, "preferences": None}


class HasLinkKey(Protocol):
    @property
    def link_key(self) -> str: ...


class BadToken(UsageError):
    """The token is forged, altered, expired or made for another purpose."""

    title = "This link is not valid"


class Tokens:
    def __init__(self, secret_key: str, old_keys: Sequence[str] = ()):
        # itsdangerous signs with the last key and accepts any of them when reading.
        self._keys = [*[k for k in old_keys if k], secret_key]

    def _serializer(self, purpose: str) -> URLSafeTimedSerializer:
        if purpose not in PURPOSES:
            raise ValueError(f"unknown token purpose {purpose!r}")
        return URLSafeTimedSerializer(self._keys, salt=f"digest.{purpose}")

    def make(self, purpose: str, subscriber: HasLinkKey) -> str:
        if not subscriber.link_key:
            raise ValueError("the subscriber has no link key yet (flush the session first)")
        return self._serializer(purpose).dumps(subscriber.link_key)

    def read(self, purpose: str, token: str) -> str:
        """The subscriber's link key; raises BadToken for anything we did not sign for this purpose."""
        try:
            value = self._serializer(purpose).loads(token, max_age=PURPOSES[purpose])
        except BadData as exc:
            expired = isinstance(exc, SignatureExpired)
            why = "it has expired; sign up again to get a fresh one" if expired else "it was altered or is not ours"
            raise BadToken(f"this {purpose} link is not valid: {why}") from None
        if not isinstance(value, str) or not value:
            raise BadToken(f"this {purpose} link is not valid: it was altered or is not ours")
        return value


@dataclass(frozen=True)
class SignedLinks:
    """A subscriber's signed links: pages of the site (`digest.email.links.Links`) that carry a token."""

    tokens: Tokens
    site: Links

    def unsubscribe(self, subscriber: HasLinkKey) -> str:
        return self.site.url(f"unsubscribe/{self.tokens.make('unsubscribe', subscriber)}")

    def preferences(self, subscriber: HasLinkKey) -> str:
        return self.site.url(f"preferences/{self.tokens.make('preferences', subscriber)}")

    def confirm(self, subscriber: HasLinkKey) -> str:
        return self.site.url(f"confirm/{self.tokens.make('confirm', subscriber)}")
