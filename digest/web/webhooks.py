"""POST /webhooks/sendgrid: SendGrid's Event Webhook. Every event is committed before the 2xx answer."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from digest.web.deps import core_of
from subscribers import events

router = APIRouter()


def _store(request: Request, batch: list[dict]) -> events.EventReport:
    core = core_of(request)
    with core.sessions.begin() as session:
        return events.store_events(session, batch, now=core.now())


@router.post("/webhooks/sendgrid")
async def sendgrid_events(request: Request):
    core = core_of(request)
    body = await request.body()  # the raw bytes: the signature covers them exactly as sent
    public_key = core.settings.sendgrid_webhook_public_key
    if public_key:
        try:
            events.verify(
                public_key,
                request.headers.get("x-twilio-email-event-webhook-signature"),
                request.headers.get("x-twilio-email-event-webhook-timestamp"),
                body,
                now=core.now(),
            )
        except events.SignatureError as exc:
            return JSONResponse({"error": str(exc)}, 403)
    try:
        batch = events.parse(body)
    except events.BadEvents as exc:
        return JSONResponse({"error": str(exc)}, 400)
    report = await run_in_threadpool(_store, request, batch)
    return JSONResponse(
        {
            "received": report.received,
            "stored": report.stored,
            "duplicates": report.duplicates,
            "status_changes": report.status_changes,
        }
    )
