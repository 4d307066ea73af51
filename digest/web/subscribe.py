"""The sign-up form (GET and POST /subscribe) and the confirm link (GET and POST /confirm/{token}).

The answer to a sign-up is the same page whether the address is new, pending, active or gone, so the
form cannot be used to learn who is on the list. Opening the confirm link shows a button; only its POST
confirms, because mail scanners open (GET) every link in a message before the reader does.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, HTMLResponse
from starlette.concurrency import run_in_threadpool

from digest.config import PACKAGED_TEMPLATES
from digest.jobs import audience
from digest.locale import N_
from digest.web.busy import in_store, retry_when_busy
from digest.web.csrf import valid_form, with_csrf
from digest.web.deps import BadForm, client_ip, core_of, read_form
from digest.web.pages import error_page, page
from subscribers import store

router = APIRouter()
HONEYPOT = "website"  # hidden from people by CSS; bots fill every field they see
# The page CSP allows script from our own origin only: the form's zone detection is a static file.
TIMEZONE_SCRIPT = PACKAGED_TEMPLATES / "web" / "static" / "timezone.js"


def _form(
    request: Request, *, status_code: int = 200, error: str | None = None, email: str = "", name: str = ""
) -> Response:
    return with_csrf(
        request,
        lambda token: page(
            request,
            "subscribe.html",
            status_code=status_code,
            csrf_token=token,
            honeypot=HONEYPOT,
            error=error,
            email=email,
            name=name,
        ),
    )


@router.get("/subscribe", response_class=HTMLResponse)
def subscribe_form(request: Request) -> Response:
    return _form(request)


@router.post("/subscribe", response_class=HTMLResponse)
async def subscribe(request: Request) -> Response:
    core = core_of(request)
    checked = await _read_sign_up(request)
    limiter = request.app.state.subscribe_limiter
    ip = client_ip(request) or "unknown"

    def count_and_sign_up() -> tuple[bool, int, store.SignUpResult | None]:
        # Every post is counted, a refused form or a bot's too; the count and the sign-up share one
        # trip to a worker thread, each retried on its own when the store is busy.
        allowed, retry_after = retry_when_busy(limiter.allow, ip)
        if not allowed or isinstance(checked, Response):
            return allowed, retry_after, None
        return allowed, retry_after, retry_when_busy(audience.sign_up, core, *checked)

    allowed, retry_after, result = await in_store(request, count_and_sign_up, retry=False)
    if not allowed:
        return error_page(
            request,
            429,
            N_("Too many sign-ups"),
            f"Too many sign-ups from your address. Please try again in {retry_after // 60 + 1} minutes.",
            headers={"Retry-After": str(retry_after)},
        )
    if isinstance(checked, Response):
        return checked
    if result is not None and result.send_confirmation:
        request.app.state.confirmation_sender.wake()
    return _done(request, checked[0])


async def _read_sign_up(request: Request) -> Response | tuple[str, str | None, store.Consent, str | None]:
    """The sign-up the form asks for (address, name, consent, timezone), or the page that refuses it."""
    try:
        form = await read_form(request)
    except BadForm as exc:
        return error_page(request, 400, N_("The form could not be read"), str(exc))
    email, name = str(form.get("email") or ""), str(form.get("name") or "")
    # Filled in by the browser (static/timezone.js); a zone it got wrong or left out is no reason to turn
    # the visitor away: the newsletter's zone applies instead.
    try:
        timezone = store.clean_timezone(str(form.get("timezone") or ""))
    except store.InvalidTimezone:
        timezone = None
    if not valid_form(request, form.get("csrf_token")):
        return _form(
            request,
            status_code=400,
            error=N_("This form has expired or came from another site. Please submit it again."),
            email=email,
            name=name,
        )
    if form.get(HONEYPOT):
        # Answer a bot as if it had worked, so it learns nothing, and store nothing.
        return _done(request, email.strip())
    try:
        address = store.normalize_email(email)
    except store.InvalidAddress as exc:
        return _form(request, status_code=400, error=f"Please check the address: {exc}", email=email, name=name)
    try:
        clean = store.clean_name(name)
    except store.InvalidName as exc:
        return _form(request, status_code=400, error=f"Please check the name: {exc}.", email=email)
    return address, clean, store.Consent("form", client_ip(request), request.headers.get("user-agent")), timezone


@router.get("/static/timezone.js")
def timezone_script() -> FileResponse:
    return FileResponse(TIMEZONE_SCRIPT, media_type="text/javascript", headers={"Cache-Control": "max-age=300"})


def _done(request: Request, address: str) -> Response:
    # Never from the subscriber's status: new, pending, active and unsubscribed get the same page.
    return page(request, "subscribe_done.html", email=address, double_opt_in=core_of(request).settings.double_opt_in)


def _confirm_page(request: Request, token: str, *, status_code: int = 200, error: str | None = None) -> Response:
    response = with_csrf(
        request,
        lambda csrf_token: page(
            request,
            "confirm.html",
            status_code=status_code,
            action=f"/confirm/{token}",
            csrf_token=csrf_token,
            error=error,
        ),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/confirm/{token}", response_class=HTMLResponse)
def confirm_form(request: Request, token: str) -> Response:
    """Reads the link (a bad one gets its reason now) and changes nothing: the button does."""
    if audience.subscriber_by_link(core_of(request), "confirm", token) is None:
        return error_page(request, 400, N_("This link no longer works"), N_("This address is no longer on our list."))
    return _confirm_page(request, token)


@router.post("/confirm/{token}", response_class=HTMLResponse)
async def confirm(request: Request, token: str) -> Response:
    try:
        form = await read_form(request)
    except BadForm as exc:
        return error_page(request, 400, N_("The form could not be read"), str(exc))
    if not valid_form(request, form.get("csrf_token")):
        expired = N_("This page has expired or came from another site. Press the button again.")
        return _confirm_page(request, token, status_code=400, error=expired)
    core = core_of(request)
    subscriber = await run_in_threadpool(audience.confirm_by_link, core, token)
    if subscriber is None:
        return error_page(request, 400, N_("This link no longer works"), N_("This address is no longer on our list."))
    return page(
        request,
        "confirmed.html",
        status=subscriber.status,
        preferences_url=core.preferences_url(subscriber),
        email=subscriber.email,
    )
