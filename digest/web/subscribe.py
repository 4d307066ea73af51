"""The sign-up form (GET and POST /subscribe) and the confirm link (GET /confirm/{token})."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from digest.errors import DeliveryError
from digest.web.csrf import COOKIE
from digest.web.deps import BadForm, client_ip, core_of, read_form, subscriber_for
from digest.web.pages import error_page, page
from subscribers import signup, store

router = APIRouter()
HONEYPOT = "website"  # hidden from people by CSS; bots fill every field they see


def _form(request: Request, *, status_code: int = 200, error: str | None = None, email: str = "", name: str = ""):
    csrf = request.app.state.csrf
    cookie = request.cookies.get(COOKIE) or csrf.new_cookie()
    response = page(
        request,
        "subscribe.html",
        status_code=status_code,
        csrf_token=csrf.token_for(cookie),
        honeypot=HONEYPOT,
        error=error,
        email=email,
        name=name,
    )
    secure = core_of(request).settings.base_url.startswith("https://")
    response.set_cookie(COOKIE, cookie, httponly=True, samesite="lax", secure=secure, max_age=24 * 3600)
    return response


@router.get("/subscribe", response_class=HTMLResponse)
def subscribe_form(request: Request):
    return _form(request)


@router.post("/subscribe", response_class=HTMLResponse)
async def subscribe(request: Request):
    core = core_of(request)
    allowed, retry_after = request.app.state.subscribe_limiter.allow(client_ip(request) or "unknown")
    if not allowed:
        return error_page(
            request,
            429,
            "Too many sign-ups",
            f"Too many sign-ups from your address. Please try again in {retry_after // 60 + 1} minutes.",
            headers={"Retry-After": str(retry_after)},
        )
    try:
        form = await read_form(request)
    except BadForm as exc:
        return error_page(request, 400, "The form could not be read", str(exc))
    email, name = str(form.get("email") or "").strip(), str(form.get("name") or "").strip()
    if not request.app.state.csrf.valid(request.cookies.get(COOKIE), str(form.get("csrf_token") or "")):
        return _form(
            request,
            status_code=400,
            error="This form has expired or came from another site. Please submit it again.",
            email=email,
            name=name,
        )
    if form.get(HONEYPOT):
        # Answer a bot as if it had worked, so it learns nothing, and store nothing.
        return page(request, "subscribe_done.html", email=email, pending=True)
    try:
        address = store.normalize_email(email)
    except store.InvalidAddress as exc:
        return _form(request, status_code=400, error=f"Please check the address: {exc}", email=email, name=name)
    if len(name) > 300:
        return _form(
            request, status_code=400, error="Please give a shorter name (300 characters at most).", email=email
        )
    consent = store.Consent("form", client_ip(request), request.headers.get("user-agent"))
    try:
        result = await run_in_threadpool(signup.sign_up, core, address, name, consent)
    except DeliveryError as exc:
        return error_page(request, 503, "We could not send the confirmation", str(exc))
    return page(request, "subscribe_done.html", email=address, pending=result.subscriber.status == "pending")


@router.get("/confirm/{token}", response_class=HTMLResponse)
def confirm(request: Request, token: str):
    core = core_of(request)
    with core.sessions.begin() as session:
        subscriber = subscriber_for(session, core, "confirm", token)
        if subscriber is None:
            return error_page(request, 400, "This link no longer works", "This address is no longer on our list.")
        store.confirm(session, subscriber, now=core.now())
        status = subscriber.status
    return page(
        request,
        "confirmed.html",
        status=status,
        preferences_url=core.preferences_url(subscriber),
        email=subscriber.email,
    )
