"""Forged and replayed SendGrid events, posted to the real /webhooks/sendgrid of a running site.

With no verification key set (as in .env.example) nobody can change a subscriber, suppress an address
or forge an open by posting unsigned events; `digest serve` says so at start. Events that carry no
sg_event_id are stored once however often they are replayed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from digest.store.models import Event
from subscribers import store
from subscribers.models import Subscriber, SubscriberChange, Suppression
from tests.fakes.sendgrid import WebhookSigner, post_events
from tests.web_site import running_site

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
READERS = ["ada@example.org", "bo@example.org", "cy@example.org"]
# What a forger would post: a complaint, a bounce and an unsubscribe for readers, a complaint for an
# address we do not hold (a suppression), and opens and clicks for the figures.
FORGED = [
    {"email": "ada@example.org", "event": "spamreport", "timestamp": 1796000000},
    {"email": "bo@example.org", "event": "bounce", "type": "bounce", "reason": "550 forged"},
    {"email": "cy@example.org", "event": "unsubscribe", "sg_event_id": "forged-3"},
    {"email": "stranger@example.org", "event": "spamreport"},
    {"email": "ada@example.org", "event": "open", "issue_id": "1"},
    {"email": "ada@example.org", "event": "click", "url": "https://elsewhere.example", "issue_id": "1"},
]


def snapshot(site) -> dict:
    """Everything an event could change, as a reader or the editor would see it."""
    with site.core.sessions() as session:
        return {
            "statuses": dict(session.execute(select(Subscriber.email, Subscriber.status)).all()),
            "events": session.scalar(select(func.count()).select_from(Event)),
            "suppressions": session.scalar(select(func.count()).select_from(Suppression)),
            "changes": session.scalar(select(func.count()).select_from(SubscriberChange)),
        }


def with_readers(site):
    with site.core.sessions.begin() as session:
        for address in READERS:
            store.add(session, address, None, now=NOW, cause="test")
    return site


def test_unsigned_events_are_refused_when_no_key_is_set_and_change_nothing(settings):
    assert settings.sendgrid_webhook_public_key is None  # the default, as .env.example ships it
    with running_site(settings, clock=lambda: NOW) as site:
        before = snapshot(with_readers(site))
        [answer] = post_events(site.url, None, FORGED)
        assert answer.status_code == 503
        error = answer.json()["error"]
        assert "DIGEST_SENDGRID_WEBHOOK_PUBLIC_KEY is not set" in error and "Signed Event Webhook" in error
        assert snapshot(site) == before
        assert before["statuses"] == dict.fromkeys(READERS, "active")


def test_unsigned_or_foreign_signed_events_are_refused_when_a_key_is_set(settings):
    ours, theirs = WebhookSigner(), WebhookSigner()
    with running_site(settings, clock=lambda: NOW, sendgrid_webhook_public_key=ours.public_b64) as site:
        before = snapshot(with_readers(site))
        for signer in (None, theirs):
            [answer] = post_events(site.url, signer, FORGED, when=NOW.timestamp())
            assert answer.status_code == 403
        assert snapshot(site) == before


def test_events_without_sg_event_id_are_stored_and_acted_on_once_however_often_replayed(settings):
    signer = WebhookSigner()
    with running_site(settings, clock=lambda: NOW, sendgrid_webhook_public_key=signer.public_b64) as site:
        with_readers(site)
        keyless = [e for e in FORGED if "sg_event_id" not in e]
        [first] = post_events(site.url, signer, keyless, when=NOW.timestamp())
        assert first.status_code == 200 and first.json()["stored"] == len(keyless)
        after_first = snapshot(site)
        for _ in range(3):  # SendGrid retries a batch until it gets a 2xx
            [again] = post_events(site.url, signer, keyless, when=NOW.timestamp())
            assert again.json()["stored"] == 0 and again.json()["duplicates"] == len(keyless)
        assert snapshot(site) == after_first
        assert after_first["events"] == len(keyless)
        assert after_first["statuses"]["ada@example.org"] == "complained"
        # The same event at another time is another event.
        later = [{**keyless[-1], "timestamp": 1796000999}]
        [other] = post_events(site.url, signer, later, when=NOW.timestamp())
        assert other.json()["stored"] == 1


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_banner(env: dict, tmp_path) -> str:
    """The first lines `digest serve` writes, up to the moment it answers."""
    import httpx

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "digest.cli", "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    return stderr


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, "/webhooks/sendgrid: SendGrid events are refused: DIGEST_SENDGRID_WEBHOOK_PUBLIC_KEY is not set"),
        (
            {"DIGEST_INSECURE_ACCEPT_UNSIGNED_WEBHOOKS": "true"},
            "WARNING digest.serve: DIGEST_INSECURE_ACCEPT_UNSIGNED_WEBHOOKS is on",
        ),
    ],
)
def test_digest_serve_says_at_start_how_it_treats_unsigned_webhooks(cli_env, tmp_path, extra, expected):
    banner = serve_banner({**cli_env, **extra}, tmp_path)
    assert expected in " ".join(banner.split()), banner


def test_digest_serve_says_nothing_about_webhooks_when_they_are_signed(cli_env, tmp_path):
    banner = serve_banner({**cli_env, "DIGEST_SENDGRID_WEBHOOK_PUBLIC_KEY": WebhookSigner().public_b64}, tmp_path)
    assert "serving" in banner and "webhooks" not in banner


def test_the_event_body_is_not_trusted_to_be_small_or_well_formed(settings):
    signer = WebhookSigner()
    with running_site(settings, clock=lambda: NOW, sendgrid_webhook_public_key=signer.public_b64) as site:
        odd = [{"event": "open", "email": "a@example.org", "batch_id": "x" * 500, "issue_id": 10**30, "nested": [{}]}]
        body = json.dumps(odd).encode()
        answer = site.http.post("/webhooks/sendgrid", content=body, headers=signer.headers(body, NOW.timestamp()))
        assert answer.status_code == 200 and answer.json()["stored"] == 1
