"""CSRF protection for the sign-up form: a signed double-submit token.

The form page sets a random cookie and puts a token signed with DIGEST_SECRET_KEY over that cookie's
value in a hidden field. A post is accepted only when the field is our signature of the cookie it
came with, and is less than a day old. Another site can make a browser post the form, but can
neither read the cookie nor sign a field to match one it planted.
"""

from __future__ import annotations

import hmac
import secrets

from itsdangerous import BadData, URLSafeTimedSerializer

COOKIE = "digest_csrf"
MAX_AGE = 24 * 3600


class Csrf:
    def __init__(self, keys: list[str]):
        self._serializer = URLSafeTimedSerializer(keys, salt="digest.csrf")

    @staticmethod
    def new_cookie() -> str:
        return secrets.token_urlsafe(16)

    def token_for(self, cookie: str) -> str:
        return self._serializer.dumps(cookie)

    def valid(self, cookie: str | None, token: str | None) -> bool:
        if not cookie or not token:
            return False
        try:
            signed = self._serializer.loads(token, max_age=MAX_AGE)
        except BadData:
            return False
        return isinstance(signed, str) and hmac.compare_digest(signed, cookie)
