"""GET /metrics: the digest's figures in the Prometheus text format, for a scraper holding DIGEST_METRICS_TOKEN.

Off unless DIGEST_METRICS_TOKEN is set (404, as if there were no such page); with it, a request needs
`Authorization: Bearer <token>` (401 otherwise). The figures are read from the store at each scrape
(`digest.jobs.metrics`), so the scheduler's gathers and sends show here though another process did them.

    digest_batches{state}                       batches by state: pending, submitting (unknown fate), submitted, ...
    digest_issues{status}                       issues by status: draft, sending, sent
    digest_deliveries{status}                   recipients planned, by status: pending, sent, skipped, failed
    digest_recipients_sent_total                recipients the provider accepted
    digest_webhook_events_total{type}           provider events stored, by type (delivered, open, bounce, ...)
    digest_subscribers{status}                  subscribers by status
    digest_signups_total{via}                   new subscribers: form, api, or operator (import, add)
    digest_unsubscribes_total                   changes to unsubscribed
    digest_source_failing{source}               1 when the source's last fetch failed
    digest_source_last_success_timestamp_seconds{source}
    digest_last_gather_timestamp_seconds        the latest fetch of any source: alert when it is old
    digest_metrics_scrape_seconds               how long the store's queries took for this scrape
    digest_webhook_posts_total{status}          this process's answers to webhook posts (in memory, per process)
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable, Iterator
from datetime import datetime

from fastapi import APIRouter, Request, Response
from prometheus_client import Counter
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digest.core import Digest
from digest.jobs.metrics import store_figures
from digest.web.deps import core_of
from subscribers.models import STATUSES

router = APIRouter()
BATCH_STATES = ("pending", "submitting", "submitted", "failed", "cancelled")


def _labelled(
    family: GaugeMetricFamily | CounterMetricFamily, values: dict[str, int], known: Iterable[str] = ()
) -> GaugeMetricFamily | CounterMetricFamily:
    """One sample per label value; the `known` ones appear with 0 too, so a query never finds a gap."""
    for key in sorted({*known, *values}):
        family.add_metric([key], values.get(key, 0))
    return family


def _seconds(moment: datetime | None) -> float:
    return moment.timestamp() if moment is not None else 0.0


class StoreCollector(Collector):
    """The store's figures, read at each scrape."""

    def __init__(self, core: Digest) -> None:
        self.core = core

    def collect(self) -> Iterator[Metric]:
        started = time.monotonic()
        f = store_figures(self.core)
        took = time.monotonic() - started
        yield _labelled(
            GaugeMetricFamily("digest_batches", "Batches by state.", labels=["state"]), f.batches, BATCH_STATES
        )
        yield _labelled(
            GaugeMetricFamily("digest_issues", "Issues by status.", labels=["status"]),
            f.issues,
            ("draft", "sending", "sent"),
        )
        yield _labelled(
            GaugeMetricFamily("digest_deliveries", "Recipients planned, by status.", labels=["status"]),
            f.deliveries,
            ("pending", "sent", "skipped", "failed"),
        )
        yield CounterMetricFamily(
            "digest_recipients_sent", "Recipients the provider accepted.", value=f.recipients_sent
        )
        yield _labelled(
            CounterMetricFamily("digest_webhook_events", "Provider events stored, by type.", labels=["type"]),
            f.events,
        )
        yield _labelled(
            GaugeMetricFamily("digest_subscribers", "Subscribers by status.", labels=["status"]),
            f.subscribers,
            STATUSES,
        )
        yield _labelled(
            CounterMetricFamily("digest_signups", "New subscribers, by the way they came.", labels=["via"]),
            f.sign_ups,
            ("form", "api", "operator"),
        )
        yield CounterMetricFamily("digest_unsubscribes", "Changes to unsubscribed.", value=f.unsubscribes)
        failing = GaugeMetricFamily(
            "digest_source_failing", "1 when the source's last fetch failed.", labels=["source"]
        )
        success = GaugeMetricFamily(
            "digest_source_last_success_timestamp_seconds",
            "When the source was last read well (0: never).",
            labels=["source"],
        )
        for source in f.sources:
            failing.add_metric([source.name], int(source.failing))
            success.add_metric([source.name], _seconds(source.last_success))
        yield failing
        yield success
        yield GaugeMetricFamily(
            "digest_last_gather_timestamp_seconds",
            "The latest fetch of any source (0: never).",
            _seconds(f.last_gather),
        )
        yield GaugeMetricFamily("digest_metrics_scrape_seconds", "Time the store's queries took.", took)


def registry_for(core: Digest) -> CollectorRegistry:
    """The app's own registry (not the process-wide one, so that two apps in one process never clash)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(core))
    return registry


class WebhookAnswers:
    """Pure ASGI middleware counting this process's answers to the provider's webhook posts by status:
    the store keeps the events it accepted, but nothing of a post refused (403: a bad signature or the
    wrong key; 503: no key set), which is what tells an operator the webhook is misconfigured."""

    def __init__(self, app: ASGIApp, *, registry: CollectorRegistry):
        self.app = app
        self.answers = Counter(
            "digest_webhook_posts",
            "This process's answers to provider webhook posts, by HTTP status (a 403 is a refused signature).",
            ["status"],
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/webhooks/"):
            await self.app(scope, receive, send)
            return
        status = 500  # an exception before any answer: the server answers 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.answers.labels(str(status)).inc()


def metrics_token(core: Digest) -> str | None:
    token = core.settings.metrics_token
    value = token.get_secret_value().strip() if token is not None else ""
    return value or None


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    core = core_of(request)
    expected = metrics_token(core)
    if expected is None:
        return Response("Not Found", 404, media_type="text/plain")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if not (scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected.encode())):
        return Response(
            "a bearer token is needed (DIGEST_METRICS_TOKEN)",
            401,
            media_type="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    registry: CollectorRegistry = request.app.state.metrics
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encoder(registry), media_type=content_type, headers={"Cache-Control": "no-store"})
