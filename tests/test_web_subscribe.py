"""The sign-up form, double opt-in and the confirm link, through a real server on both databases."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from subscribers.models import Subscriber
from tests.conftest import TEST_SECRET_KEY
from tests.web_site import confirm_links, running_site


@pytest.fixture
def site(settings):
    with running_site(settings) as site:
        yield site


def form_token(site) -> str:
    page = site.http.get("/subscribe")
    assert page.status_code == 200
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]


def confirm(site, path: str):
    """Open the confirm link as a reader does, and press the page's button."""
    shown = site.http.get(path)
    assert shown.status_code == 200 and 'id="confirm"' in shown.text, shown.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', shown.text)[1]
    return site.http.post(path, data={"csrf_token": token})


def subscribers(site) -> list[Subscriber]:
    with site.core.sessions() as session:
        return list(session.scalars(select(Subscriber)))


def test_signing_up_stores_a_pending_subscriber_mails_a_link_and_the_link_makes_them_active(site):
    token = form_token(site)
    answer = site.http.post(
        "/subscribe",
        data={"email": "Reader@Example.org", "name": "Rita Reader", "csrf_token": token},
        headers={"User-Agent": "pytest-browser/1.0"},
    )
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    [rita] = subscribers(site)
    assert (rita.email, rita.status, rita.consent_source) == ("reader@example.org", "pending", "form")
    assert (rita.consent_ip, rita.consent_user_agent) == ("127.0.0.1", "pytest-browser/1.0")
    [link] = confirm_links(site.core.settings.outbox_dir)
    [rita] = subscribers(site)
    assert rita.status == "pending"  # opening the link changes nothing: mail scanners open links too
    confirmed = confirm(site, site.path(link))
    assert confirmed.status_code == 200 and "You are subscribed" in confirmed.text
    [rita] = subscribers(site)
    assert rita.status == "active" and rita.confirmed_at is not None


def test_a_post_without_the_form_cookie_and_token_is_refused_and_stores_nothing(site):
    form_token(site)
    site.http.cookies.clear()
    answer = site.http.post("/subscribe", data={"email": "x@example.org", "csrf_token": "forged"})
    assert answer.status_code == 400 and "expired or came from another site" in answer.text
    token = form_token(site)
    site.http.cookies.set("digest_csrf", "planted-by-another-site", domain="127.0.0.1")
    answer = site.http.post("/subscribe", data={"email": "x@example.org", "csrf_token": token})
    assert answer.status_code == 400
    assert subscribers(site) == []


def test_a_filled_honeypot_looks_like_success_to_the_bot_but_stores_and_sends_nothing(site):
    token = form_token(site)
    answer = site.http.post(
        "/subscribe", data={"email": "bot@example.org", "website": "http://spam.example", "csrf_token": token}
    )
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    assert subscribers(site) == []
    assert confirm_links(site.core.settings.outbox_dir) == []


def test_an_invalid_address_gets_the_form_again_with_the_reason(site):
    answer = site.http.post("/subscribe", data={"email": "reader@", "csrf_token": form_token(site)})
    assert answer.status_code == 400 and "Please check the address" in answer.text
    assert 'value="reader@"' in answer.text
    assert subscribers(site) == []


def test_malformed_form_data_gets_400_and_changes_nothing(site):
    form_token(site)
    answer = site.http.post(
        "/subscribe",
        content=b"--broken\r\nContent-Disposition: form-data; name=email\r\n\r\nx@example.org",
        headers={"Content-Type": "multipart/form-data; boundary=otherboundary"},
    )
    assert answer.status_code == 400
    answer = site.http.post(
        "/subscribe", content=b'{"email": "x@example.org"}', headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400 and "x-www-form-urlencoded" in answer.text
    assert subscribers(site) == []


def test_an_oversized_body_gets_413_and_changes_nothing(site):
    token = form_token(site)
    answer = site.http.post("/subscribe", data={"email": "big@example.org", "name": "x" * 70_000, "csrf_token": token})
    assert answer.status_code == 413
    assert subscribers(site) == []


def test_more_sign_ups_from_one_address_than_the_hourly_limit_get_429(settings):
    with running_site(settings, subscribe_per_ip_per_hour=3) as site:
        token = form_token(site)
        codes = [
            site.http.post("/subscribe", data={"email": f"p{i}@example.org", "csrf_token": token}).status_code
            for i in range(5)
        ]
        assert codes == [200, 200, 200, 429, 429]
        with site.core.sessions() as session:
            assert session.scalar(select(func.count()).select_from(Subscriber)) == 3


def test_single_opt_in_makes_the_subscriber_active_at_once_and_sends_no_mail(settings):
    with running_site(settings, double_opt_in=False) as site:
        answer = site.http.post("/subscribe", data={"email": "now@example.org", "csrf_token": form_token(site)})
        assert answer.status_code == 200 and "Thank you for subscribing" in answer.text
        [now] = subscribers(site)
        assert now.status == "active"
        assert confirm_links(site.core.settings.outbox_dir) == []


def test_an_altered_or_unknown_confirm_link_gets_a_clear_400_page_and_changes_nothing(site):
    site.http.post("/subscribe", data={"email": "al@example.org", "csrf_token": form_token(site)})
    [link] = confirm_links(site.core.settings.outbox_dir)
    path = site.path(link)
    for bad in (path[:-3] + "abc", "/confirm/not-a-token", path.replace("/confirm/", "/confirm/x")):
        answer = site.http.get(bad)
        assert answer.status_code == 400 and "This link is not valid" in answer.text
    [al] = subscribers(site)
    assert al.status == "pending"


def test_a_confirm_link_signed_with_a_rotated_out_key_still_confirms(settings):
    with running_site(settings) as old_site:
        old_site.http.post("/subscribe", data={"email": "rot@example.org", "csrf_token": form_token(old_site)})
        [link] = confirm_links(settings.outbox_dir)
        path = old_site.path(link)
    new_key = "a-brand-new-secret-of-32-characters-or-more"
    rotated = {"secret_key": new_key, "old_secret_keys": f"unused-key,{TEST_SECRET_KEY}"}
    with running_site(settings, **rotated) as site:
        assert confirm(site, path).status_code == 200
        [rot] = subscribers(site)
        assert rot.status == "active"
    with running_site(settings, secret_key=new_key) as site:
        assert site.http.get(path).status_code == 400
