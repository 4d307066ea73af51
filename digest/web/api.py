"""The subscriber API for other systems: POST /api/subscribers and POST /api/unsubscribe (Bearer token).

Answers are JSON. 201 when a subscriber was created, 200 when they were already there; 422 with one
message per field ({"errors": {"email": "..."}}); 400 for a body that is not JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from digest.jobs import audience
from digest.web.busy import retry_when_busy
from digest.web.deps import bearer_problem, client_ip, core_of
from subscribers import store

router = APIRouter(prefix="/api")


async def _json_object(request: Request, fields: dict[str, bool]) -> dict[str, Any] | JSONResponse:
    """The body as a dict of known string fields (name -> required), or the answer to give instead."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        return JSONResponse({"error": "send the body as application/json"}, 415)
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return JSONResponse({"error": f"the body is not valid JSON: {exc}"}, 400)
    if not isinstance(body, dict):
        return JSONResponse({"errors": {"body": "must be a JSON object"}}, 422)
    errors = {key: "unknown field" for key in body if key not in fields}
    for key, required in fields.items():
        if key not in body or body[key] is None:
            if required:
                errors[key] = "is required"
        elif not isinstance(body[key], str):
            errors[key] = "must be a string"
    if errors:
        return JSONResponse({"errors": errors}, 422)
    return body


@router.post("/subscribers")
async def create_subscriber(request: Request) -> JSONResponse:
    if problem := bearer_problem(request):
        return problem
    body = await _json_object(request, {"email": True, "name": False, "timezone": False})
    if isinstance(body, JSONResponse):
        return body
    errors: dict[str, str] = {}
    try:
        address = store.normalize_email(body["email"])
    except store.InvalidAddress as exc:
        errors["email"] = str(exc)
    try:
        name = store.clean_name(body.get("name"))
    except store.InvalidName as exc:
        errors["name"] = str(exc)
    try:
        timezone = store.clean_timezone(body.get("timezone"))
    except store.InvalidTimezone as exc:
        errors["timezone"] = str(exc)
    if errors:
        return JSONResponse({"errors": errors}, 422)
    consent = store.Consent("api", client_ip(request), request.headers.get("user-agent"))
    result = await run_in_threadpool(
        retry_when_busy, audience.sign_up, core_of(request), address, name, consent, timezone
    )
    if result.send_confirmation:
        request.app.state.confirmation_sender.wake()
    subscriber = result.subscriber
    return JSONResponse(
        {
            "email": subscriber.email,
            "name": subscriber.name,
            "timezone": subscriber.timezone,
            "status": subscriber.status,
            "created": result.created,
        },
        201 if result.created else 200,
    )


@router.post("/unsubscribe")
async def api_unsubscribe(request: Request) -> JSONResponse:
    if problem := bearer_problem(request):
        return problem
    body = await _json_object(request, {"email": True})
    if isinstance(body, JSONResponse):
        return body
    try:
        address = store.normalize_email(body["email"])
    except store.InvalidAddress as exc:
        return JSONResponse({"errors": {"email": str(exc)}}, 422)
    done = await run_in_threadpool(retry_when_busy, audience.unsubscribe_address, core_of(request), address)
    return JSONResponse(asdict(done))
