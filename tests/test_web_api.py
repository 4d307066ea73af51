"""The subscriber API for other systems: bearer token, 201/200/422, and concurrent sign-ups."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select

from subscribers import store
from subscribers.models import Subscriber, Suppression
from tests.web_site import confirm_links, running_site

TOKEN = "api-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def site(settings):
    with running_site(settings, api_token=TOKEN) as site:
        yield site


def count(site) -> int:
    with site.core.sessions() as session:
        return session.scalar(select(func.count()).select_from(Subscriber))


def test_a_new_address_gets_201_and_a_confirmation_then_200_when_already_there(site):
    created = site.http.post("/api/subscribers", json={"email": "Api@Example.org", "name": "Ada"}, headers=AUTH)
    assert created.status_code == 201
    assert created.json() == {
        "email": "api@example.org",
        "name": "Ada",
        "timezone": None,
        "status": "pending",
        "created": True,
    }
    again = site.http.post("/api/subscribers", json={"email": "api@example.org"}, headers=AUTH)
    assert again.status_code == 200 and again.json()["created"] is False
    assert len(confirm_links(site.core.settings.outbox_dir)) == 1
    with site.core.sessions() as session:
        assert session.scalars(select(Subscriber.consent_source)).one() == "api"


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"email": "nope"}, {"email": "An email address must have an @-sign."}),
        ({}, {"email": "is required"}),
        ({"email": 5, "name": ["x"]}, {"email": "must be a string", "name": "must be a string"}),
        ({"email": "a@example.org", "plan": "gold"}, {"plan": "unknown field"}),
        ([1, 2], {"body": "must be a JSON object"}),
    ],
)
def test_bad_fields_get_422_with_a_message_per_field_and_change_nothing(site, body, errors):
    answer = site.http.post("/api/subscribers", json=body, headers=AUTH)
    assert answer.status_code == 422 and answer.json() == {"errors": errors}
    assert count(site) == 0


def test_malformed_json_gets_400_and_the_wrong_type_415(site):
    answer = site.http.post(
        "/api/subscribers", content=b'{"email": ', headers={**AUTH, "Content-Type": "application/json"}
    )
    assert answer.status_code == 400 and "not valid JSON" in answer.json()["error"]
    answer = site.http.post("/api/subscribers", data={"email": "a@example.org"}, headers=AUTH)
    assert answer.status_code == 415
    assert count(site) == 0


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer"}]
)
def test_a_missing_or_wrong_token_gets_401_and_changes_nothing(site, headers):
    for path in ("/api/subscribers", "/api/unsubscribe"):
        answer = site.http.post(path, json={"email": "a@example.org"}, headers=headers)
        assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Bearer")
    assert count(site) == 0


def test_the_api_is_off_without_a_configured_token(settings):
    with running_site(settings, api_token=None) as site:
        answer = site.http.post("/api/subscribers", json={"email": "a@example.org"}, headers=AUTH)
        assert answer.status_code == 403 and "DIGEST_API_TOKEN" in answer.json()["error"]


def test_an_oversized_json_body_gets_413(site):
    answer = site.http.post("/api/subscribers", json={"email": "a@example.org", "name": "x" * 100_000}, headers=AUTH)
    assert answer.status_code == 413
    assert count(site) == 0


def test_api_unsubscribe_unsubscribes_a_subscriber_and_suppresses_an_unknown_address(site):
    with site.core.sessions.begin() as session:
        store.add(session, "member@example.org", None, now=site.core.now(), cause="test")
    answer = site.http.post("/api/unsubscribe", json={"email": "MEMBER@example.org"}, headers=AUTH)
    assert answer.status_code == 200 and answer.json()["status"] == "unsubscribed"
    answer = site.http.post("/api/unsubscribe", json={"email": "stranger@example.org"}, headers=AUTH)
    assert answer.status_code == 200 and answer.json()["status"] == "suppressed"
    with site.core.sessions() as session:
        assert session.scalar(select(Suppression.email_hash)) == store.email_hash("stranger@example.org")


def test_fifty_concurrent_sign_ups_of_the_same_address_make_one_subscriber(site):
    def sign_up(i):
        with httpx.Client(base_url=site.url, timeout=60) as client:
            return client.post("/api/subscribers", json={"email": "race@example.org", "name": f"R{i}"}, headers=AUTH)

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(sign_up, range(50)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * 49 + [201]
    assert count(site) == 1
    assert len(confirm_links(site.core.settings.outbox_dir)) == 1
