"""The web app factory: `create_app(core)` builds the FastAPI app that `digest serve` runs.

Each group of routes lives in its own module and is mounted here; add new ones the same way.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from digest.core import Digest
from digest.errors import DigestError
from digest.jobs.limits import limit_counter
from digest.web import api, archive, busy, editor, health, home, metrics, preview, subscribe, unsubscribe, webhooks
from digest.web.confirmations import ConfirmationSender
from digest.web.csrf import Csrf
from digest.web.limits import BodyLimit
from digest.web.pages import error_page
from digest.web.ratelimit import RateLimiter
from digest.web.security import SecurityHeaders, redact_tokens, redact_tokens_in_logs

log = logging.getLogger(__name__)


def create_app(core: Digest) -> FastAPI:
    settings = core.settings
    # Fail at start, not at the first request, when the secret is missing.
    keys = [*settings.old_secret_key_list(), settings.require_secret_key()]
    if settings.sendgrid_webhook_public_key:
        from subscribers.events import load_public_key

        load_public_key(settings.sendgrid_webhook_public_key)

    redact_tokens_in_logs()
    sender = ConfirmationSender(core)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # The queued confirmation mail goes from every serving process (digest.web.confirmations).
        sender.start()
        try:
            yield
        finally:
            sender.stop()

    app = FastAPI(title=core.config.name, docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.core = core
    app.state.csrf = Csrf(keys)
    app.state.confirmation_sender = sender
    # Counted in the store or Redis, so that every process and machine serving this publication shares them.
    counter = limit_counter(core)
    app.state.subscribe_limiter = RateLimiter(counter, "subscribe", settings.subscribe_per_ip_per_hour, 3600)
    app.state.login_limiter = RateLimiter(counter, "login", 10, 900)
    app.state.metrics = metrics.registry_for(core)
    size = getattr(core.engine.pool, "size", None)
    app.state.store_threads = busy.store_threads(size() if callable(size) else None)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(metrics.WebhookAnswers, registry=app.state.metrics)
    app.add_middleware(
        BodyLimit, default=settings.max_body_bytes, per_prefix={"/webhooks/": settings.webhook_max_body_bytes}
    )

    for module in (health, subscribe, unsubscribe, api, webhooks, home, archive, editor, preview, metrics):
        app.include_router(module.router)

    busy.install(app)  # a busy store answers 503 with Retry-After, never 500

    # The one place where an error becomes an answer: each class says its status and page heading.
    @app.exception_handler(DigestError)
    async def digest_error(request: Request, exc: DigestError) -> Response:
        status = exc.http_status
        if status >= 500:
            log.warning("%s %s: %s", request.method, redact_tokens(request.url.path), exc)
        if request.url.path.startswith(("/api/", "/webhooks/")):
            return JSONResponse({"error": str(exc)}, status)
        return error_page(request, status, exc.title, _sentence(str(exc)))

    return app


def _sentence(text: str) -> str:
    """An error message as a sentence on a page: a capital first and a full stop last."""
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
