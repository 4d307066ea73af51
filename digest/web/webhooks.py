"""POST /webhooks/sendgrid: SendGrid's Event Webhook. Every event is committed before the 2xx answer.

Events change subscribers (bounces, complaints) and settle batches whose fate was unknown, so only a
post signed with the configured key is believed. With no key set the endpoint refuses every post:
503, not 2xx, so that SendGrid keeps the events and retries them (for 24 hours) once the key is set.
DIGEST_INSECURE_ACCEPT_UNSIGNED_WEBHOOKS lifts that for local testing only.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from digest.config import Settings
from digest.jobs.audience import store_provider_events
from digest.web.deps import core_of
from subscribers import events

router = APIRouter()

NO_KEY = (
    "SendGrid events are refused: DIGEST_SENDGRID_WEBHOOK_PUBLIC_KEY is not set. Paste the Verification Key "
    "from SendGrid's Mail Settings > Signed Event Webhook into it and restart `digest serve`; SendGrid retries "
    "refused posts for 24 hours"
)


def startup_notice(settings: Settings) -> tuple[str, str] | None:
    """What `digest serve` must say at start about the webhook: (level, text), or None when it is signed."""
    if settings.sendgrid_webhook_public_key:
        return None
    if settings.insecure_accept_unsigned_webhooks:
        return (
            "warning",
            "DIGEST_INSECURE_ACCEPT_UNSIGNED_WEBHOOKS is on: /webhooks/sendgrid accepts UNSIGNED events, so "
            "anyone who can reach this server can mark subscribers bounced or complained, suppress addresses, "
            "forge opens and clicks and settle batches. For local testing only; set "
            "DIGEST_SENDGRID_WEBHOOK_PUBLIC_KEY instead.",
        )
    return ("info", f"/webhooks/sendgrid: {NO_KEY} (answers 503).")


@router.post("/webhooks/sendgrid")
async def sendgrid_events(request: Request) -> JSONResponse:
    core = core_of(request)
    body = await request.body()  # the raw bytes: the signature covers them exactly as sent
    settings = core.settings
    public_key = settings.sendgrid_webhook_public_key
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
    elif not settings.insecure_accept_unsigned_webhooks:
        return JSONResponse({"error": NO_KEY}, 503)
    try:
        batch = events.parse(body)
    except events.BadEvents as exc:
        return JSONResponse({"error": str(exc)}, 400)
    # One request, accepted or refused whole.
    stored = await run_in_threadpool(store_provider_events, core, batch)
    report = stored.report
    return JSONResponse(
        {
            "received": report.received,
            "stored": report.stored,
            "duplicates": report.duplicates,
            "status_changes": report.status_changes,
            "batches_settled": len(stored.settled),
        }
    )
