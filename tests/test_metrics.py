"""GET /metrics: off without DIGEST_METRICS_TOKEN, behind its bearer token with it, and figures that agree
with the store whichever process did the work. Scraped through the real app and read with
prometheus_client's own parser."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families

from digest.config import SourceConfig, load_newsletter
from digest.content.weeks import Week
from digest.core import build_core
from digest.jobs.weekly import gather, run_once
from subscribers.store import import_csv
from tests.conftest import EXAMPLE_CONFIG, ROOT
from tests.fakes.sendgrid import WebhookSigner
from tests.web_site import running_site

TOKEN = "metrics-token-for-the-tests-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


def test_without_a_token_there_is_no_metrics_page(settings):
    with running_site(settings) as site:
        answer = site.http.get("/metrics", headers=BEARER)
        assert answer.status_code == 404
        assert "digest_" not in answer.text


def test_the_metrics_page_needs_its_own_bearer_token(settings):
    with running_site(settings, metrics_token=TOKEN, admin_token="the-admin-token-is-not-the-metrics-one") as site:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": "Bearer the-admin-token-is-not-the-metrics-one"},
        ):
            answer = site.http.get("/metrics", headers=headers)
            assert answer.status_code == 401, headers
            assert "digest_" not in answer.text
        answer = site.http.get("/metrics", headers=BEARER)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        found = samples(answer.text)
        # Nothing happened yet: the known states are there, at zero, so a query never finds a gap.
        assert value(found, "digest_batches", state="submitting") == 0
        assert value(found, "digest_recipients_sent_total") == 0
        assert value(found, "digest_last_gather_timestamp_seconds") == 0


def test_the_figures_agree_with_the_work_done_by_another_process(settings, tmp_path):
    newsletter = load_newsletter(EXAMPLE_CONFIG)
    broken = SourceConfig(name="broken", url=str(tmp_path / "missing.rss"), section="Reporting")
    newsletter = newsletter.model_copy(update={"sources": [*newsletter.sources, broken]})
    signer = WebhookSigner()
    # The scheduler's work: another core on the same store gathers, imports and sends the issue.
    worker = build_core(settings, newsletter)
    try:
        with worker.sessions.begin() as session:
            import_csv(session, ROOT / "examples/subscribers.csv", now=worker.now())
        before_gather = time.time()
        report = run_once(worker, Week.parse("2026-W48"))
        assert report.send.sent == 6
    finally:
        worker.close()
    extra = {
        "metrics_token": TOKEN,
        "api_token": "api-token-0123456789",
        "sendgrid_webhook_public_key": signer.public_b64,
    }
    with running_site(settings, newsletter=newsletter, **extra) as site:
        api = {"Authorization": "Bearer api-token-0123456789"}
        assert site.http.post("/api/subscribers", json={"email": "new@example.org"}, headers=api).status_code == 201
        assert site.http.post("/api/unsubscribe", json={"email": "ada@example.org"}, headers=api).status_code == 200
        events = [
            {"email": "jun.takeda@example.org", "event": "delivered", "sg_event_id": "e1"},
            {"email": "jun.takeda@example.org", "event": "open", "sg_event_id": "e2"},
            {"email": "felix.brandt@example.org", "event": "open", "sg_event_id": "e3"},
            {"email": "felix.brandt@example.org", "event": "bounce", "type": "bounce", "sg_event_id": "e4"},
        ]
        body = json.dumps(events).encode()
        assert site.http.post("/webhooks/sendgrid", content=body, headers=signer.headers(body)).status_code == 200
        forged = WebhookSigner().headers(body)  # signed with another key: refused, and nothing stored
        assert site.http.post("/webhooks/sendgrid", content=body, headers=forged).status_code == 403

        found = samples(site.http.get("/metrics", headers=BEARER).text)

    assert value(found, "digest_batches", state="submitted") == 1
    assert value(found, "digest_batches", state="pending") == 0
    assert value(found, "digest_issues", status="sent") == 1
    assert value(found, "digest_recipients_sent_total") == 6
    assert value(found, "digest_deliveries", status="sent") == 6
    assert value(found, "digest_webhook_events_total", type="open") == 2
    assert value(found, "digest_webhook_events_total", type="delivered") == 1
    assert value(found, "digest_webhook_events_total", type="bounce") == 1
    assert value(found, "digest_webhook_posts_total", status="200") == 1
    assert value(found, "digest_webhook_posts_total", status="403") == 1
    assert value(found, "digest_signups_total", via="api") == 1
    assert value(found, "digest_signups_total", via="operator") == 6
    assert value(found, "digest_signups_total", via="form") == 0
    assert value(found, "digest_unsubscribes_total") == 1
    assert value(found, "digest_subscribers", status="unsubscribed") == 1
    assert value(found, "digest_subscribers", status="bounced") == 1
    assert value(found, "digest_subscribers", status="pending") == 1  # the API's sign-up awaits its confirmation
    assert value(found, "digest_source_failing", source="broken") == 1
    for good in ("Reporting", "Analysis", "Opinion"):
        assert value(found, "digest_source_failing", source=good) == 0
        assert value(found, "digest_source_last_success_timestamp_seconds", source=good) >= int(before_gather)
    assert value(found, "digest_source_last_success_timestamp_seconds", source="broken") == 0
    last_gather = value(found, "digest_last_gather_timestamp_seconds")
    assert before_gather - 1 <= last_gather <= datetime.now(UTC).timestamp() + 1


def test_a_source_that_comes_back_is_no_longer_failing(settings, tmp_path):
    feed = tmp_path / "flaky.rss"
    newsletter = load_newsletter(EXAMPLE_CONFIG)
    flaky = SourceConfig(name="flaky", url=str(feed), section="Reporting")
    newsletter = newsletter.model_copy(update={"sources": [flaky]})
    worker = build_core(settings, newsletter)
    try:
        gather(worker)  # the file is missing: the fetch fails
        with running_site(settings, newsletter=newsletter, metrics_token=TOKEN) as site:
            assert (
                value(samples(site.http.get("/metrics", headers=BEARER).text), "digest_source_failing", source="flaky")
                == 1
            )
            feed.write_text((ROOT / "examples/feeds/reporting.rss").read_text(encoding="utf-8"), encoding="utf-8")
            gather(worker)
            assert (
                value(samples(site.http.get("/metrics", headers=BEARER).text), "digest_source_failing", source="flaky")
                == 0
            )
    finally:
        worker.close()
