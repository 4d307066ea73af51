"""Unsubscribe (the page with one button, and RFC 8058 one-click), resubscribe, and preferences.

The signed link alone identifies the subscriber: the one-click POST carries no cookie, no CSRF token
and no login, is answered 200 without a redirect, and may come any number of times. An unsubscribe is
never lost to a busy store: it is tried again, and if the store stays busy the answer is 503 with
Retry-After (digest.web.busy), which mail clients retry, never a 500 that looks final.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from digest.core import Digest
from digest.jobs import audience
from digest.locale import N_
from digest.web.busy import in_store, retry_when_busy
from digest.web.deps import BadForm, core_of, read_form
from digest.web.pages import error_page, page
from subscribers import store
from subscribers.zones import zone_choices

router = APIRouter()
GONE = (N_("You are not on our list"), N_("This address is no longer on our list, so there is nothing to unsubscribe."))


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_page(request: Request, token: str) -> Response:
    subscriber = audience.subscriber_by_link(core_of(request), "unsubscribe", token)
    if subscriber is None:
        return error_page(request, 200, *GONE)
    return page(request, "unsubscribe.html", subscriber=subscriber, token=token, done=False)


@router.post("/unsubscribe/{token}", response_class=HTMLResponse)
async def unsubscribe(request: Request, token: str) -> Response:
    # The body should be "List-Unsubscribe=One-Click"; it is read (so a broken one is refused) but
    # not required, since the page's own button and some mail clients send other fields.
    try:
        form = await read_form(request)
    except BadForm as exc:
        return error_page(request, 400, N_("The request could not be read"), str(exc))
    one_click = form.get("List-Unsubscribe") == "One-Click" and form.get("source") != "page"
    cause = "one-click unsubscribe (RFC 8058)" if one_click else "unsubscribe page"
    core = core_of(request)
    link_key = core.tokens.read("unsubscribe", token)  # a bad link is refused before the store is asked
    done = await in_store(request, unsubscribe_link_key, core, link_key, cause)
    if done is None:
        return error_page(request, 200, *GONE)
    return page(request, "unsubscribe.html", subscriber=done, token=token, done=True)


def unsubscribe_link_key(core: Digest, link_key: str, cause: str) -> store.Unsubscribed | None:
    """What mail clients call the most: one statement in autocommit on PostgreSQL (one round trip, no
    BEGIN or COMMIT of its own), one short transaction on SQLite."""
    if core.engine.dialect.name == "postgresql":
        with core.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            return store.unsubscribe_by_link_key(connection, link_key, cause, now=core.now())
    with core.engine.begin() as connection:
        return store.unsubscribe_by_link_key(connection, link_key, cause, now=core.now())


@router.post("/resubscribe/{token}", response_class=HTMLResponse)
def resubscribe(request: Request, token: str) -> Response:
    done = audience.resubscribe_by_link(core_of(request), token)
    if done is None:
        return error_page(request, 400, *GONE)
    if done.status == "pending":
        request.app.state.confirmation_sender.wake()
    return page(request, "resubscribed.html", subscriber=done.subscriber, status=done.status)


@router.get("/preferences/{token}", response_class=HTMLResponse)
def preferences_page(request: Request, token: str) -> Response:
    core = core_of(request)
    subscriber = audience.subscriber_by_link(core, "preferences", token)
    if subscriber is None:
        return error_page(request, 400, N_("This link no longer works"), GONE[1])
    return page(
        request,
        "preferences.html",
        subscriber=subscriber,
        sections=core.config.sections,
        left_out=subscriber.left_out_sections,
        saved=False,
        zones=zone_choices(),
        newsletter_zone=core.config.timezone,
    )


@router.post("/preferences/{token}", response_class=HTMLResponse)
async def save_preferences(request: Request, token: str) -> Response:
    try:
        form = await read_form(request)
    except BadForm as exc:
        return error_page(request, 400, N_("The form could not be read"), str(exc))
    action = str(form.get("action") or "save")
    if action not in ("save", "unsubscribe"):
        return error_page(request, 400, N_("The form could not be read"), f"unknown action {action!r}")
    chosen: Literal["save", "unsubscribe"] = "unsubscribe" if action == "unsubscribe" else "save"
    core = core_of(request)
    received = [str(v) for v in form.getlist("section")]
    unknown = [s for s in received if s not in core.config.sections]
    if unknown:
        return error_page(request, 400, N_("The form could not be read"), f"unknown section {unknown[0]!r}")
    try:
        timezone = store.clean_timezone(str(form.get("timezone") or ""))
    except store.InvalidTimezone as exc:
        return error_page(request, 400, N_("The form could not be read"), str(exc))
    saved = await run_in_threadpool(retry_when_busy, audience.save_preferences, core, token, received, chosen, timezone)
    if saved is None:
        return error_page(request, 400, N_("This link no longer works"), GONE[1])
    if saved.unsubscribe_token is not None:
        return page(request, "unsubscribe.html", subscriber=saved.subscriber, token=saved.unsubscribe_token, done=True)
    return page(
        request,
        "preferences.html",
        subscriber=saved.subscriber,
        sections=core.config.sections,
        left_out=saved.left_out,
        saved=True,
        zones=zone_choices(),
        newsletter_zone=core.config.timezone,
    )
