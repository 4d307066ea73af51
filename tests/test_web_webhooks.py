"""SendGrid's Event Webhook: signatures (our own P-256 key pair and SendGrid's published vector), storage, effects."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from digest.store.models import Event
from subscribers import store
from subscribers.models import Subscriber, SubscriberChange, Suppression
from tests.web_site import running_site

# From the sendgrid package's own tests (test/unit/test_eventwebhook.py): SendGrid's key, a signature
# and the exact body it covers, trailing CRLF included.
SENDGRID_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpV"
    "KS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
)
SENDGRID_SIGNATURE = "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM="
SENDGRID_TIMESTAMP = "1600112502"
SENDGRID_BODY = (
    json.dumps(
        [
            {
                "email": "hello@world.com",
                "event": "dropped",
                "reason": "Bounced Address",
                "sg_event_id": "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
                "sg_message_id": "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",
                "smtp-id": "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>",
                "timestamp": 1600112492,
            }
        ],
        sort_keys=True,
        separators=(",", ":"),
    )
    + "\r\n"
).encode()
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


class Signer:
    def __init__(self):
        self.private = ec.generate_private_key(ec.SECP256R1())
        der = self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_b64 = base64.b64encode(der).decode()

    def headers(self, body: bytes, when: datetime = NOW) -> dict[str, str]:
        timestamp = str(int(when.timestamp()))
        signature = self.private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
            "Content-Type": "application/json",
        }


@pytest.fixture
def signer():
    return Signer()


@pytest.fixture
def site(settings, signer):
    with running_site(settings, clock=lambda: NOW, sendgrid_webhook_public_key=signer.public_b64) as site:
        yield site


def body_of(events) -> bytes:
    return json.dumps(events).encode()


def add(site, address):
    with site.core.sessions.begin() as session:
        store.add(session, address, None, now=NOW, cause="test")


def statuses(site) -> dict[str, str]:
    with site.core.sessions() as session:
        return dict(session.execute(select(Subscriber.email, Subscriber.status)).all())


def stored(site) -> int:
    with site.core.sessions() as session:
        return session.scalar(select(func.count()).select_from(Event))


def test_sendgrids_published_test_vector_verifies(settings):
    clock = datetime.fromtimestamp(int(SENDGRID_TIMESTAMP) + 30, UTC)
    with running_site(settings, clock=lambda: clock, sendgrid_webhook_public_key=SENDGRID_KEY) as site:
        add(site, "hello@world.com")
        headers = {
            "X-Twilio-Email-Event-Webhook-Signature": SENDGRID_SIGNATURE,
            "X-Twilio-Email-Event-Webhook-Timestamp": SENDGRID_TIMESTAMP,
            "Content-Type": "application/json",
        }
        answer = site.http.post("/webhooks/sendgrid", content=SENDGRID_BODY, headers=headers)
        assert answer.status_code == 200, answer.text
        assert statuses(site) == {"hello@world.com": "bounced"}
        # One byte less (the CRLF SendGrid signed) and the same signature no longer fits.
        answer = site.http.post("/webhooks/sendgrid", content=SENDGRID_BODY.rstrip(), headers=headers)
        assert answer.status_code == 403


def test_signed_events_are_stored_once_and_change_the_subscribers_they_concern(site, signer):
    for address in (
        "b@example.org",
        "d@example.org",
        "s@example.org",
        "u@example.org",
        "g@example.org",
        "o@example.org",
        "t@example.org",
    ):
        add(site, address)
    events = [
        {
            "email": "B@example.org",
            "event": "bounce",
            "type": "bounce",
            "reason": "550 no such user",
            "sg_event_id": "1",
        },
        {"email": "d@example.org", "event": "dropped", "reason": "Invalid", "sg_event_id": "2"},
        {"email": "s@example.org", "event": "spamreport", "sg_event_id": "3"},
        {"email": "u@example.org", "event": "unsubscribe", "sg_event_id": "4"},
        {"email": "g@example.org", "event": "group_unsubscribe", "asm_group_id": 7, "sg_event_id": "5"},
        {"email": "o@example.org", "event": "open", "sg_event_id": "6", "timestamp": 1795856400},
        {"email": "o@example.org", "event": "click", "url": "https://x.example", "sg_event_id": "7"},
        {"email": "t@example.org", "event": "bounce", "type": "blocked", "sg_event_id": "8"},
        {"email": "o@example.org", "event": "delivered", "sg_event_id": "9"},
        {"email": "o@example.org", "event": "brand_new_kind", "sg_event_id": "10"},
        {"email": "nobody@example.org", "event": "spamreport", "sg_event_id": "11"},
    ]
    body = body_of(events)
    answer = site.http.post("/webhooks/sendgrid", content=body, headers=signer.headers(body))
    assert answer.status_code == 200
    assert answer.json() == {
        "received": 11,
        "stored": 11,
        "duplicates": 0,
        "status_changes": 5,
        "batches_settled": 0,
    }
    assert statuses(site) == {
        "b@example.org": "bounced",
        "d@example.org": "bounced",
        "s@example.org": "complained",
        "u@example.org": "unsubscribed",
        "g@example.org": "unsubscribed",
        "o@example.org": "active",
        "t@example.org": "active",
    }
    with site.core.sessions() as session:
        causes = [c.cause for c in session.scalars(select(SubscriberChange).where(SubscriberChange.cause != "test"))]
        assert "sendgrid bounce: 550 no such user (event 1)" in causes
        assert session.scalar(select(Suppression.email_hash)) == store.email_hash("nobody@example.org")
        opened = session.scalars(select(Event).where(Event.type == "open")).one()
        assert opened.subscriber_id is not None and opened.occurred_at == datetime.fromtimestamp(1795856400, UTC)

    # SendGrid retries: the same batch again stores nothing new and changes nothing.
    answer = site.http.post("/webhooks/sendgrid", content=body, headers=signer.headers(body))
    assert answer.json() == {
        "received": 11,
        "stored": 0,
        "duplicates": 11,
        "status_changes": 0,
        "batches_settled": 0,
    }
    assert stored(site) == 11


def test_a_later_webhook_never_softens_a_status_or_makes_anyone_active(site, signer):
    add(site, "c@example.org")
    for i, kind in enumerate(["spamreport", "unsubscribe", "bounce", "delivered"]):
        body = body_of([{"email": "c@example.org", "event": kind, "sg_event_id": f"e{i}"}])
        assert site.http.post("/webhooks/sendgrid", content=body, headers=signer.headers(body)).status_code == 200
    assert statuses(site) == {"c@example.org": "complained"}


def test_unsigned_re_signed_altered_or_stale_posts_get_403_and_store_nothing(site, signer):
    add(site, "x@example.org")
    body = body_of([{"email": "x@example.org", "event": "spamreport", "sg_event_id": "a"}])
    other = Signer()
    stale = datetime.fromtimestamp(NOW.timestamp() - 11 * 60, UTC)
    attempts = [
        {"Content-Type": "application/json"},
        other.headers(body),
        {**signer.headers(body), "X-Twilio-Email-Event-Webhook-Timestamp": str(int(NOW.timestamp()) + 1)},
        signer.headers(body, when=stale),
        {**signer.headers(body), "X-Twilio-Email-Event-Webhook-Signature": "not base64!"},
    ]
    for headers in attempts:
        answer = site.http.post("/webhooks/sendgrid", content=body, headers=headers)
        assert answer.status_code == 403, headers
    altered = body.replace(b"spamreport", b"delivered!")
    assert site.http.post("/webhooks/sendgrid", content=altered, headers=signer.headers(body)).status_code == 403
    assert stored(site) == 0 and statuses(site) == {"x@example.org": "active"}


@pytest.mark.parametrize("body", [b"{not json", b'{"event": "open"}', b"[1, 2]"])
def test_a_signed_body_that_is_not_an_array_of_events_gets_400(site, signer, body):
    answer = site.http.post("/webhooks/sendgrid", content=body, headers=signer.headers(body))
    assert answer.status_code == 400
    assert stored(site) == 0


def test_without_a_configured_key_every_post_is_refused_with_the_setting_to_set(settings):
    with running_site(settings, clock=lambda: NOW) as site:
        add(site, "a@example.org")
        body = body_of([{"email": "a@example.org", "event": "spamreport", "sg_event_id": "z"}])
        answer = site.http.post("/webhooks/sendgrid", content=body, headers={"Content-Type": "application/json"})
        # 503, not 2xx: SendGrid keeps the events and retries them once the key is set.
        assert answer.status_code == 503
        assert "DIGEST_SENDGRID_WEBHOOK_PUBLIC_KEY is not set" in answer.json()["error"]
        assert stored(site) == 0 and statuses(site) == {"a@example.org": "active"}


def test_the_insecure_setting_lets_unsigned_events_in_for_local_testing(settings):
    with running_site(settings, clock=lambda: NOW, insecure_accept_unsigned_webhooks=True) as site:
        body = body_of([{"email": "a@example.org", "event": "open", "sg_event_id": "z"}])
        answer = site.http.post("/webhooks/sendgrid", content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 200 and stored(site) == 1


def test_a_configured_key_wins_over_the_insecure_setting(settings, signer):
    overrides = {"sendgrid_webhook_public_key": signer.public_b64, "insecure_accept_unsigned_webhooks": True}
    with running_site(settings, clock=lambda: NOW, **overrides) as site:
        body = body_of([{"email": "a@example.org", "event": "open", "sg_event_id": "z"}])
        answer = site.http.post("/webhooks/sendgrid", content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 403 and stored(site) == 0


def test_a_batch_of_a_thousand_events_is_stored_whole(site, signer):
    events = [{"email": f"r{i}@example.org", "event": "delivered", "sg_event_id": f"d{i}"} for i in range(1000)]
    body = body_of(events)
    answer = site.http.post("/webhooks/sendgrid", content=body, headers=signer.headers(body))
    assert answer.status_code == 200 and answer.json()["stored"] == 1000
    assert stored(site) == 1000
