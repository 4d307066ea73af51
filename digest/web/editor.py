"""Who may see the editor's pages (/preview): the admin token, a login cookie, or this machine.

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
from collections.abc import Callable
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from itsdangerous import BadData, URLSafeTimedSerializer

from digest.web.csrf import COOKIE as CSRF_COOKIE
from digest.web.deps import BadForm, client_ip, core_of, read_form
from digest.web.pages import error_page, page

router = APIRouter()
COOKIE = "digest_editor"
MAX_AGE = 12 * 3600
LOOPBACK = {"127.0.0.1", "::1"}
LOOPBACK_HOST = re.compile(r"(127\.0\.0\.1|localhost|\[::1\])(:[0-9]{1,5})?")
PROXY_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")


def _admin_token(request: Request) -> str | None:
    token = core_of(request).settings.admin_token
    value = token.get_secret_value().strip() if token is not None else ""
    return value or None


def _serializer(request: Request) -> URLSafeTimedSerializer:
    settings = core_of(request).settings
    return URLSafeTimedSerializer(
        [*settings.old_secret_key_list(), settings.require_secret_key()], salt="digest.editor"
    )


def _fingerprint(admin_token: str) -> str:
    return hashlib.sha256(admin_token.encode()).hexdigest()[:32]


def has_bearer(request: Request) -> bool:
    expected = _admin_token(request)
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
    expected = _admin_token(request)
    if expected is None:
        if is_local(request):
            return None
        return error_page(
            request,
            403,
            "The preview is off",
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


def csrf_problem(request: Request, form) -> Response | None:
    if has_bearer(request):
        return None
    if request.app.state.csrf.valid(request.cookies.get(CSRF_COOKIE), str(form.get("csrf_token") or "")):
        return None
    return error_page(request, 400, "This form has expired", "Reload the page and try again.")


def with_csrf(request: Request, render: Callable[[str], Response]) -> Response:
    """`render(token)` makes the page with its forms' CSRF token; the cookie it stands on is set if new."""
    csrf = request.app.state.csrf
    cookie = request.cookies.get(CSRF_COOKIE) or csrf.new_cookie()
    response = render(csrf.token_for(cookie))
    if cookie != request.cookies.get(CSRF_COOKIE):
        secure = core_of(request).settings.base_url.startswith("https://")
        response.set_cookie(CSRF_COOKIE, cookie, httponly=True, samesite="lax", secure=secure, max_age=24 * 3600)
    return response


def _safe_next(value: str | None) -> str:
    # Only a path on this site: never another host, nor a scheme-relative //host.
    if value and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return "/preview"


def _login_page(request: Request, *, status_code: int = 200, error: str | None = None, next_path: str = "/preview"):
    return with_csrf(
        request,
        lambda token: page(
            request, "login.html", status_code=status_code, csrf_token=token, error=error, next=next_path
        ),
    )


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None):  # noqa: A002 - the query parameter's name
    if _admin_token(request) is None:
        return error_page(
            request, 404, "No login here", "Set DIGEST_ADMIN_TOKEN to let editors log in; without it, use 127.0.0.1."
        )
    return _login_page(request, next_path=_safe_next(next))


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request):
    expected = _admin_token(request)
    if expected is None:
        return error_page(request, 404, "No login here", "Set DIGEST_ADMIN_TOKEN to let editors log in.")
    allowed, retry_after = request.app.state.login_limiter.allow(client_ip(request) or "unknown")
    if not allowed:
        return error_page(
            request,
            429,
            "Too many attempts",
            f"Too many login attempts from your address. Try again in {retry_after // 60 + 1} minutes.",
            headers={"Retry-After": str(retry_after)},
        )
    try:
        form = await read_form(request)
    except BadForm as exc:
        return error_page(request, 400, "The form could not be read", str(exc))
    next_path = _safe_next(str(form.get("next") or ""))
    if problem := csrf_problem(request, form):
        return problem
    given = str(form.get("token") or "").strip()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return _login_page(request, status_code=401, error="That is not the admin token.", next_path=next_path)
    response = RedirectResponse(next_path, 303)
    secure = core_of(request).settings.base_url.startswith("https://")
    response.set_cookie(
        COOKIE,
        _serializer(request).dumps(_fingerprint(expected)),
        httponly=True,
        samesite="strict",
        secure=secure,
        max_age=MAX_AGE,
    )
    return response


@router.post("/logout")
async def logout(request: Request):
    # With its CSRF token only: another site must not be able to log an editor out.
    try:
        form = await read_form(request)
    except BadForm as exc:
        return error_page(request, 400, "The form could not be read", str(exc))
    if problem := csrf_problem(request, form):
        return problem
    response = RedirectResponse("/", 303)
    response.delete_cookie(COOKIE)
    return response
