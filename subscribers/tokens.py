"""Signed links for one subscriber: confirm, unsubscribe, preferences.

What a link carries: an opaque random key of the subscriber (`Subscriber.link_key`, 128 random bits),
never their id or address. A token's payload is readable by anyone who holds the link, so signing the
id would tell a reader how many subscribers there are and let them guess neighbours' ids; a random key
tells nothing, and erasing the subscriber erases the key with them.

Two formats:

- Unsubscribe and preferences links (made for every recipient of every issue, a million at a time):
  `<link key>.<key id><tag>`. One HMAC-SHA256 per subscriber, keyed with the signing key, over a fixed
  label, the key's id and the link key; its first 15 bytes are the unsubscribe tag and the next 15 the
  preferences tag (each 20 characters of URL-safe base64). The two halves of one HMAC output are
  independent, so one purpose's link still says nothing about the other's, and both cost one HMAC.
  The key id (4 characters, derived from the key by HMAC, so it tells nothing about it) picks the
  key when reading. These links never expire: they sit in old mail.
- Confirm links, and every unsubscribe and preferences link made before (still in readers' inboxes):
  itsdangerous `URLSafeTimedSerializer` tokens, one salt per purpose. A confirm link expires after 7
  days; the others never did, and are still read without an age limit.

Signing keys can be rotated: the newest key (DIGEST_SECRET_KEY) signs, the keys listed in
DIGEST_OLD_SECRET_KEYS are still accepted for reading, and a link signed with a key no longer listed
stops working, in either format. `SignedLinks` turns a token into the page of the site it opens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer

from digest.email.links import Links
from digest.errors import UsageError

PURPOSES = {"confirm": 7 * 24 * 3600, "unsubscribe": None, "preferences": None}
# The purposes whose links are made per recipient of an issue, in the order of their halves of the HMAC.
LINK_PURPOSES = ("unsubscribe", "preferences")
_LABEL = b"digest.links.v1\x00"  # domain separation: this HMAC is used for nothing else
_KEY_ID_LABEL = b"digest.links.key-id"
_TAG_BYTES = 15  # 120 bits; a multiple of 3, so each tag is whole base64 characters with no padding
_TAG_CHARS = _TAG_BYTES // 3 * 4
_KEY_ID_CHARS = 4  # 3 bytes


class HasLinkKey(Protocol):
    @property
    def link_key(self) -> str: ...


class BadToken(UsageError):
    """The token is forged, altered, expired or made for another purpose."""

    title = "This link is not valid"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


class _LinkKey:
    """One signing key as the per-recipient links use it: HMAC-SHA256 (RFC 2104) over the fixed label
    and key id, then the link key. The inner and outer hashes are started once, with the padded key and
    the fixed part, and each link key continues copies of them: the same HMAC at a fifth of the cost of
    `hmac.digest` or a copied `hmac.HMAC` (OpenSSL sets up its MAC context afresh for every one of those,
    and a send makes a million)."""

    def __init__(self, secret_key: str):
        secret = secret_key.encode("utf-8")
        self.key_id = _b64(hmac.digest(secret, _KEY_ID_LABEL, "sha256")[: _KEY_ID_CHARS // 4 * 3])
        block = hashlib.sha256().block_size
        padded = (hashlib.sha256(secret).digest() if len(secret) > block else secret).ljust(block, b"\x00")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        self._inner.update(_LABEL + self.key_id.encode("ascii") + b"\x00")
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

    def mac(self, link_key: str) -> bytes:
        """HMAC-SHA256(secret, label + key id + NUL + link key)."""
        inner = self._inner.copy()
        inner.update(link_key.encode("utf-8"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def tags(self, link_key: str) -> str:
        """Both purposes' tags, unsubscribe's first: one HMAC."""
        return _b64(self.mac(link_key)[: 2 * _TAG_BYTES])


class Tokens:
    def __init__(self, secret_key: str, old_keys: Sequence[str] = ()):
        # itsdangerous signs with the last key and accepts any of them when reading.
        self._keys = [*[k for k in old_keys if k], secret_key]
        self._signing = _LinkKey(secret_key)
        self._reading: dict[str, list[_LinkKey]] = {}
        for key in self._keys:
            link_key = _LinkKey(key)
            self._reading.setdefault(link_key.key_id, []).append(link_key)

    def __reduce__(self) -> tuple[type[Tokens], tuple[str, list[str]]]:
        # Made again from the keys: the started hashes of `_LinkKey` do not pickle (the sender's request
        # process gets the audience this way).
        return Tokens, (self._keys[-1], self._keys[:-1])

    def _serializer(self, purpose: str) -> URLSafeTimedSerializer:
        if purpose not in PURPOSES:
            raise ValueError(f"unknown token purpose {purpose!r}")
        return URLSafeTimedSerializer(self._keys, salt=f"digest.{purpose}")

    def make(self, purpose: str, subscriber: HasLinkKey) -> str:
        if purpose in LINK_PURPOSES:
            unsubscribe, preferences = self.link_tokens(subscriber.link_key)
            return unsubscribe if purpose == "unsubscribe" else preferences
        if not subscriber.link_key:
            raise ValueError("the subscriber has no link key yet (flush the session first)")
        return self._serializer(purpose).dumps(subscriber.link_key)

    def link_tokens(self, link_key: str) -> tuple[str, str]:
        """The unsubscribe and the preferences token of one subscriber, from one HMAC."""
        if not link_key:
            raise ValueError("the subscriber has no link key yet (flush the session first)")
        signing = self._signing
        tags = signing.tags(link_key)
        head = f"{link_key}.{signing.key_id}"
        return head + tags[:_TAG_CHARS], head + tags[_TAG_CHARS:]

    def read(self, purpose: str, token: str) -> str:
        """The subscriber's link key; raises BadToken for anything we did not sign for this purpose."""
        if purpose not in PURPOSES:
            raise ValueError(f"unknown token purpose {purpose!r}")
        link_key, dot, tail = token.rpartition(".")
        # An itsdangerous signature is 27 characters (SHA-1), never a key id and a tag (24).
        if purpose in LINK_PURPOSES and dot and len(tail) == _KEY_ID_CHARS + _TAG_CHARS:
            return self._read_link(purpose, link_key, tail)
        return self._read_serialized(purpose, token)

    def _read_link(self, purpose: str, link_key: str, tail: str) -> str:
        key_id, tag = tail[:_KEY_ID_CHARS], tail[_KEY_ID_CHARS:]
        half = LINK_PURPOSES.index(purpose)
        if link_key:
            for key in self._reading.get(key_id, ()):  # none: signed with a key no longer listed
                expected = key.tags(link_key)[half * _TAG_CHARS : (half + 1) * _TAG_CHARS]
                if hmac.compare_digest(expected, tag):
                    return link_key
        raise BadToken(f"this {purpose} link is not valid: it was altered or is not ours")

    def _read_serialized(self, purpose: str, token: str) -> str:
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

    @cached_property
    def _bases(self) -> tuple[str, str]:
        return self.site.url("unsubscribe/"), self.site.url("preferences/")

    def unsubscribe(self, subscriber: HasLinkKey) -> str:
        return self.managing(subscriber)[0]

    def preferences(self, subscriber: HasLinkKey) -> str:
        return self.managing(subscriber)[1]

    def managing(self, subscriber: HasLinkKey) -> tuple[str, str]:
        """The unsubscribe and the preferences URL, from one HMAC (what every recipient of an issue gets)."""
        unsubscribe, preferences = self.tokens.link_tokens(subscriber.link_key)
        unsubscribe_base, preferences_base = self._bases
        return unsubscribe_base + unsubscribe, preferences_base + preferences

    def confirm(self, subscriber: HasLinkKey) -> str:
        return self.site.url(f"confirm/{self.tokens.make('confirm', subscriber)}")
