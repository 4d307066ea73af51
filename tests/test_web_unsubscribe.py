"""Unsubscribe (page and RFC 8058 one-click), resubscribe and preferences, through a real server."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from subscribers import store
from subscribers.models import Subscriber, SubscriberChange
from tests.web_site import running_site


@pytest.fixture
def site(settings):
    with running_site(settings) as site:
        yield site


def active(site, address="reader@example.org", name="Rita") -> Subscriber:
    with site.core.sessions.begin() as session:
        subscriber, _ = store.add(session, address, name, now=site.core.now(), cause="test")
        return subscriber


def status(site, address="reader@example.org") -> str:
    with site.core.sessions() as session:
        return session.scalars(select(Subscriber.status).where(Subscriber.email == address)).one()


def history(site) -> list[str]:
    with site.core.sessions() as session:
        return [c.cause for c in session.scalars(select(SubscriberChange).order_by(SubscriberChange.id))]


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_unsubscribes_with_200_no_redirect_no_cookie_and_is_idempotent(site, encoding):
    path = site.path(site.core.unsubscribe_url(active(site)))
    site.http.cookies.clear()
    for _ in range(3):
        if encoding == "urlencoded":
            answer = site.http.post(path, data={"List-Unsubscribe": "One-Click"})
        else:
            answer = site.http.post(path, files={"List-Unsubscribe": (None, "One-Click")})
        assert answer.status_code == 200 and "You are unsubscribed" in answer.text
        assert "location" not in answer.headers
    assert status(site) == "unsubscribed"
    assert history(site) == ["test", "one-click unsubscribe (RFC 8058)"]


def test_the_unsubscribe_page_has_one_button_and_then_a_way_back(site):
    path = site.path(site.core.unsubscribe_url(active(site)))
    page = site.http.get(path)
    assert page.status_code == 200 and page.text.count("<button") == 1 and status(site) == "active"
    done = site.http.post(path, data={"source": "page"})
    assert "You are unsubscribed" in done.text and 'id="resubscribe"' in done.text
    assert status(site) == "unsubscribed"
    back = site.http.post(path.replace("/unsubscribe/", "/resubscribe/"))
    assert back.status_code == 200 and "Welcome back" in back.text
    assert status(site) == "active"
    assert history(site)[-2:] == ["unsubscribe page", "resubscribed from the unsubscribe page"]


def test_an_altered_unsubscribe_link_gets_400_and_changes_nothing(site):
    path = site.path(site.core.unsubscribe_url(active(site)))
    preferences = site.path(site.core.preferences_url(active(site)))
    for bad in (path[:-4] + "AAAA", "/unsubscribe/whatever", preferences.replace("/preferences/", "/unsubscribe/")):
        answer = site.http.post(bad, data={"List-Unsubscribe": "One-Click"})
        assert answer.status_code == 400 and "This link is not valid" in answer.text
    assert status(site) == "active"


def test_one_click_for_an_erased_subscriber_answers_200_and_says_they_are_not_on_the_list(site):
    path = site.path(site.core.unsubscribe_url(active(site)))
    with site.core.sessions.begin() as session:
        store.erase(session, "reader@example.org", now=site.core.now())
    answer = site.http.post(path, data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200 and "not on our list" in answer.text


def test_preferences_store_the_sections_left_out_and_can_unsubscribe(site):
    path = site.path(site.core.preferences_url(active(site)))
    page = site.http.get(path)
    assert page.status_code == 200
    for section in site.core.config.sections:
        assert f'value="{section}" checked' in page.text
    saved = site.http.post(path, data={"section": ["Reporting", "Analysis"], "action": "save"})
    assert saved.status_code == 200 and "Saved." in saved.text
    assert 'value="Opinion">' in saved.text
    with site.core.sessions() as session:
        assert session.scalars(select(Subscriber)).one().left_out_sections == ["Opinion"]
    assert site.http.post(path, data={"section": ["Sports"]}).status_code == 400
    left = site.http.post(path, data={"action": "unsubscribe"})
    assert left.status_code == 200 and "You are unsubscribed" in left.text
    assert status(site) == "unsubscribed"


def test_a_preferences_link_does_not_work_as_an_unsubscribe_link_or_the_other_way(site):
    subscriber = active(site)
    unsubscribe = site.path(site.core.unsubscribe_url(subscriber))
    assert site.http.get(unsubscribe.replace("/unsubscribe/", "/preferences/")).status_code == 400
