"""The editor's login and logout (/login, /logout), for when DIGEST_ADMIN_TOKEN is set.

Who may see the editor's pages, and how the login cookie is made, is digest.web.access.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from digest.locale import N_
from digest.web.access import COOKIE, MAX_AGE, admin_token, csrf_problem, login_cookie, safe_next
from digest.web.csrf import with_csrf
from digest.web.deps import BadForm, client_ip, core_of, read_form
from digest.web.pages import error_page, page

router = APIRouter()


def _login_page(
    request: Request, *, status_code: int = 200, error: str | None = None, next_path: str = "/preview"
) -> Response:
    return with_csrf(
        request,
        lambda token: page(
            request, "login.html", status_code=status_code, csrf_token=token, error=error, next=next_path
        ),
    )


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:  # noqa: A002 - the query parameter's name
    if admin_token(request) is None:
        return error_page(
            request,
            404,
            N_("No login here"),
            N_("Set DIGEST_ADMIN_TOKEN to let editors log in; without it, use 127.0.0.1."),
        )
    return _login_page(request, next_path=safe_next(next))


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    expected = admin_token(request)
    if expected is None:
        return error_page(request, 404, N_("No login here"), N_("Set DIGEST_ADMIN_TOKEN to let editors log in."))
    allowed, retry_after = await run_in_threadpool(
        request.app.state.login_limiter.allow, client_ip(request) or "unknown"
    )
    if not allowed:
        return error_page(
            request,
            429,
            N_("Too many attempts"),
            f"Too many login attempts from your address. Try again in {retry_after // 60 + 1} minutes.",
            headers={"Retry-After": str(retry_after)},
        )
    try:
        form = await read_form(request)
    except BadForm as exc:
        return error_page(request, 400, N_("The form could not be read"), str(exc))
    next_path = safe_next(str(form.get("next") or ""))
    if problem := csrf_problem(request, form):
        return problem
    given = str(form.get("token") or "").strip()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return _login_page(request, status_code=401, error=N_("That is not the admin token."), next_path=next_path)
    response = RedirectResponse(next_path, 303)
    secure = core_of(request).settings.base_url.startswith("https://")
    response.set_cookie(
        COOKIE, login_cookie(request, expected), httponly=True, samesite="strict", secure=secure, max_age=MAX_AGE
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    # With its CSRF token only: another site must not be able to log an editor out.
    try:
        form = await read_form(request)
    except BadForm as exc:
        return error_page(request, 400, N_("The form could not be read"), str(exc))
    if problem := csrf_problem(request, form):
        return problem
    response = RedirectResponse("/", 303)
    response.delete_cookie(COOKIE)
    return response
