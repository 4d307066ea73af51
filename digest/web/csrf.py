"""CSRF protection for our forms (sign-up, confirm, the editor's): a signed double-submit token.

The form page sets a random cookie and puts a token signed with DIGEST_SECRET_KEY over that cookie's
value in a hidden field. A post is accepted only when the field is our signature of the cookie it
came with, and is less than a day old. Another site can make a browser post the form, but can
neither read the cookie nor sign a field to match one it planted.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable

from fastapi import Request, Response
from itsdangerous import BadData, URLSafeTimedSerializer

from digest.web.deps import core_of

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


def csrf_of(request: Request) -> Csrf:
    csrf: Csrf = request.app.state.csrf  # set by create_app
    return csrf


def valid_form(request: Request, token: object) -> bool:
    """Whether a posted form's `csrf_token` field matches the cookie the request came with."""
    return csrf_of(request).valid(request.cookies.get(COOKIE), str(token or ""))


def with_csrf(request: Request, render: Callable[[str], Response]) -> Response:
    """`render(token)` makes the page with its forms' CSRF token; the cookie it stands on goes with it.

    The cookie is set on every form page (kept if the browser has one), so it lives as long as the token."""
    csrf = csrf_of(request)
    cookie = request.cookies.get(COOKIE) or csrf.new_cookie()
    response = render(csrf.token_for(cookie))
    secure = core_of(request).settings.base_url.startswith("https://")
    response.set_cookie(COOKIE, cookie, httponly=True, samesite="lax", secure=secure, max_age=MAX_AGE)
    return response
