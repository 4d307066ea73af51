"""Unsubscribe (the page with one button, and RFC 8058 one-click), resubscribe, and preferences.

The signed link alone identifies the subscriber: the one-click POST carries no cookie, no CSRF token
and no login, is answered 200 without a redirect, and may come any number of times. An unsubscribe is
never lost to a busy store: it is tried again, and if the store stays busy the answer is 503 with
Retry-After (digest.web.busy), which mail clients retry, never a 500 that looks final.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from digest.web.busy import retry_when_busy
from digest.web.deps import BadForm, core_of, read_form, subscriber_for
from digest.web.pages import error_page, page
from subscribers import store

router = APIRouter()
GONE = ("You are not on our list", "This address is no longer on our list, so there is nothing to unsubscribe.")


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_page(request: Request, token: str):
    core = core_of(request)
    with core.sessions() as session:
        subscriber = subscriber_for(session, core, "unsubscribe", token)
        if subscriber is None:
            return error_page(request, 200, *GONE)
        return page(request, "unsubscribe.html", subscriber=subscriber, token=token, done=False)


def _unsubscribe(request: Request, token: str, cause: str):
    core = core_of(request)
    with core.sessions.begin() as session:
        subscriber = subscriber_for(session, core, "unsubscribe", token)
        if subscriber is None:
            return error_page(request, 200, *GONE)
        store.unsubscribe(session, subscriber, cause, now=core.now())
        return page(request, "unsubscribe.html", subscriber=subscriber, token=token, done=True)


@router.post("/unsubscribe/{token}", response_class=HTMLResponse)
async def unsubscribe(request: Request, token: str):
    # The body should be "List-Unsubscribe=One-Click"; it is read (so a broken one is refused) but
    # not required, since the page's own button and some mail clients send other fields.
    try:
        form = await read_form(request)
    except BadForm as exc:
        return error_page(request, 400, "The request could not be read", str(exc))
    one_click = form.get("List-Unsubscribe") == "One-Click" and form.get("source") != "page"
    cause = "one-click unsubscribe (RFC 8058)" if one_click else "unsubscribe page"
    return await run_in_threadpool(retry_when_busy, _unsubscribe, request, token, cause)


@router.post("/resubscribe/{token}", response_class=HTMLResponse)
def resubscribe(request: Request, token: str):
    core = core_of(request)
    with core.sessions.begin() as session:
        subscriber = subscriber_for(session, core, "unsubscribe", token)
        if subscriber is None:
            return error_page(request, 400, *GONE)
        status = store.resubscribe(session, subscriber, now=core.now())
        needs_confirmation = status == "pending"
    if needs_confirmation:
        from subscribers.confirmation import send_confirmation

        send_confirmation(core.opt_in(), subscriber)
    return page(request, "resubscribed.html", subscriber=subscriber, status=status)


@router.get("/preferences/{token}", response_class=HTMLResponse)
def preferences_page(request: Request, token: str):
    core = core_of(request)
    with core.sessions() as session:
        subscriber = subscriber_for(session, core, "preferences", token)
        if subscriber is None:
            return error_page(request, 400, "This link no longer works", GONE[1])
        return page(
            request,
            "preferences.html",
            subscriber=subscriber,
            sections=core.config.sections,
            excluded=subscriber.left_out_sections,
            saved=False,
        )


def _save_preferences(request: Request, token: str, received: list[str], action: str):
    core = core_of(request)
    with core.sessions.begin() as session:
        subscriber = subscriber_for(session, core, "preferences", token)
        if subscriber is None:
            return error_page(request, 400, "This link no longer works", GONE[1])
        if action == "unsubscribe":
            store.unsubscribe(session, subscriber, "preferences page", now=core.now())
            return page(
                request,
                "unsubscribe.html",
                subscriber=subscriber,
                token=core.tokens.make("unsubscribe", subscriber),
                done=True,
            )
        sections = core.config.sections
        excluded = store.set_left_out_sections(
            session, subscriber, [s for s in sections if s not in received], sections, now=core.now()
        )
        return page(
            request, "preferences.html", subscriber=subscriber, sections=sections, excluded=excluded, saved=True
        )


@router.post("/preferences/{token}", response_class=HTMLResponse)
async def save_preferences(request: Request, token: str):
    try:
        form = await read_form(request)
    except BadForm as exc:
        return error_page(request, 400, "The form could not be read", str(exc))
    action = str(form.get("action") or "save")
    if action not in ("save", "unsubscribe"):
        return error_page(request, 400, "The form could not be read", f"unknown action {action!r}")
    received = [str(v) for v in form.getlist("section")]
    unknown = [s for s in received if s not in core_of(request).config.sections]
    if unknown:
        return error_page(request, 400, "The form could not be read", f"unknown section {unknown[0]!r}")
    return await run_in_threadpool(retry_when_busy, _save_preferences, request, token, received, action)
