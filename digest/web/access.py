"""Who may see the editor's pages (/preview; the login is digest.web.editor): the admin token, a login
cookie, or this machine.

With DIGEST_ADMIN_TOKEN set, a request needs `Authorization: Bearer <token>` or the signed cookie the
login form sets (12 hours; signed with DIGEST_SECRET_KEY over a digest of the admin token, so a new
admin token logs everyone out). With no admin token, only a request from 127.0.0.1 or ::1 that did
not come through a proxy (no X-Forwarded-For, Forwarded or X-Real-IP header) and that names a
loopback host in its Host header is let in: a page on another site whose name was made to resolve to
127.0.0.1 (DNS rebinding) reaches us from this very machine, but with its own name as the Host.

Changes made through a form need the sign-up form's CSRF token too (digest.web.csrf), unless the
request carries the bearer token, which a browser never adds by itself.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from itsdangerous import BadData, URLSafeTimedSerializer
from starlette.datastructures import FormData

from digest.locale import N_
from digest.web.csrf import valid_form
from digest.web.deps import client_ip, core_of
from digest.web.pages import error_page

COOKIE = "digest_editor"
MAX_AGE = 12 * 3600
LOOPBACK = {"127.0.0.1", "::1"}
LOOPBACK_HOST = re.compile(r"(127\.0\.0\.1|localhost|\[::1\])(:[0-9]{1,5})?")
PROXY_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")


def admin_token(request: Request) -> str | None:
    token = core_of(request).settings.admin_token
    value = token.get_secret_value().strip() if token is not None else ""
    return value or None


def _serializer(request: Request) -> URLSafeTimedSerializer:
    settings = core_of(request).settings
    return URLSafeTimedSerializer(
        [*settings.old_secret_key_list(), settings.require_secret_key()], salt="digest.editor"
    )


def _fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def login_cookie(request: Request, token: str) -> str:
    """The login cookie's value: a signature over a digest of the admin token (a new token logs all out)."""
    return _serializer(request).dumps(_fingerprint(token))


def has_bearer(request: Request) -> bool:
    expected = admin_token(request)
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return bool(
        expected and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected.encode())
    )


def _has_cookie(request: Request, expected: str) -> bool:
    value = request.cookies.get(COOKIE)
    if not value:
        return False
    try:
        signed = _serializer(request).loads(value, max_age=MAX_AGE)
    except BadData:
        return False
    return isinstance(signed, str) and hmac.compare_digest(signed, _fingerprint(expected))


def is_local(request: Request) -> bool:
    from_here = client_ip(request) in LOOPBACK and not any(h in request.headers for h in PROXY_HEADERS)
    return from_here and loopback_host(request.headers.get("host", ""))


def loopback_host(host: str) -> bool:
    """127.0.0.1, localhost or [::1], with or without a port."""
    return LOOPBACK_HOST.fullmatch(host.strip().lower()) is not None


def editor_problem(request: Request) -> Response | None:
    """None when the request may see the editor's pages; else the answer to give instead."""
    expected = admin_token(request)
    if expected is None:
        if is_local(request):
            return None
        return error_page(
            request,
            403,
            N_("The preview is off"),
            "With no DIGEST_ADMIN_TOKEN set, the preview answers only this machine, at http://127.0.0.1 or "
            "http://localhost (not through a proxy or another host name). "
            "Set DIGEST_ADMIN_TOKEN to open it to editors elsewhere.",
        )
    if has_bearer(request) or _has_cookie(request, expected):
        return None
    wants_page = request.method == "GET" and "text/html" in request.headers.get("accept", "")
    if wants_page and "authorization" not in request.headers:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", 303)
    return JSONResponse(
        {"error": "the preview needs 'Authorization: Bearer <DIGEST_ADMIN_TOKEN>' or a login at /login"},
        401,
        headers={"WWW-Authenticate": "Bearer"},
    )


def csrf_problem(request: Request, form: FormData) -> Response | None:
    """None when an editor's form may change something; the bearer token stands in for the CSRF token."""
    if has_bearer(request) or valid_form(request, form.get("csrf_token")):
        return None
    return error_page(request, 400, N_("This form has expired"), N_("Reload the page and try again."))


def safe_next(value: str | None) -> str:
    # Only a path on this site: never another host, nor a scheme-relative //host.
    if value and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return "/preview"
