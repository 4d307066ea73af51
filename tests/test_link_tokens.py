"""Per-recipient signed links (subscribers.tokens): one HMAC for both of a reader's links, key rotation,
and the links already in readers' inboxes (itsdangerous tokens) still working, through a real server."""

from __future__ import annotations

import base64
import hmac

import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from digest.email.links import Links
from subscribers import store
from subscribers.models import Subscriber
from subscribers.tokens import BadToken, SignedLinks, Tokens
from tests.web_site import running_site

KEY = "k" * 22


class Reader:
    link_key = KEY


def legacy(secret: str, purpose: str, link_key: str = KEY) -> str:
    """A link as the code before per-recipient HMACs made it (one itsdangerous token per purpose)."""
    return URLSafeTimedSerializer([secret], salt=f"digest.{purpose}").dumps(link_key)


def test_both_of_a_readers_links_are_the_two_halves_of_one_hmac():
    for secret in ("secret", "s" * 100):  # a key longer than SHA-256's block is hashed first
        links = SignedLinks(Tokens(secret), Links("https://news.example.org"))
        unsubscribe, preferences = links.managing(Reader())
        key_id = unsubscribe.rsplit(".", 1)[1][:4]
        expected = hmac.new(
            secret.encode(), b"digest.links.v1\x00" + key_id.encode() + b"\x00" + KEY.encode(), "sha256"
        )
        tags = base64.urlsafe_b64encode(expected.digest()[:30]).decode()
        assert unsubscribe.rsplit(".", 1)[1][4:] == tags[:20]
        assert preferences.rsplit(".", 1)[1][4:] == tags[20:]
    assert unsubscribe.startswith("https://news.example.org/unsubscribe/" + KEY + ".")
    assert preferences.startswith("https://news.example.org/preferences/" + KEY + ".")
    assert unsubscribe.rsplit("/", 1)[1] != preferences.rsplit("/", 1)[1]


def test_a_link_reads_back_for_its_own_purpose_only():
    tokens = Tokens("secret")
    unsubscribe, preferences = tokens.link_tokens(KEY)
    assert tokens.read("unsubscribe", unsubscribe) == KEY
    assert tokens.read("preferences", preferences) == KEY
    assert tokens.make("unsubscribe", Reader()) == unsubscribe
    for purpose, token in (("preferences", unsubscribe), ("unsubscribe", preferences), ("confirm", unsubscribe)):
        with pytest.raises(BadToken, match="not valid"):
            tokens.read(purpose, token)


def test_an_altered_link_is_refused():
    tokens = Tokens("secret")
    token = tokens.make("unsubscribe", Reader())
    head, tail = token.rsplit(".", 1)
    altered = [
        head + "." + tail[:-1] + ("A" if tail[-1] != "A" else "B"),  # the tag
        "j" + head[1:] + "." + tail,  # the link key: someone else's
        head + "." + ("A" if tail[0] != "A" else "B") + tail[1:],  # the key id
        "." + tail,  # no link key at all
    ]
    for bad in altered:
        with pytest.raises(BadToken):
            tokens.read("unsubscribe", bad)


def test_a_link_signed_with_an_old_key_works_while_it_is_listed_and_not_after():
    old = Tokens("old-secret")
    new_link, old_link = Tokens("new-secret").make("unsubscribe", Reader()), old.make("unsubscribe", Reader())
    rotated = Tokens("new-secret", ["old-secret"])
    assert rotated.make("unsubscribe", Reader()) == new_link  # the newest key signs
    assert rotated.read("unsubscribe", old_link) == KEY
    assert rotated.read("unsubscribe", new_link) == KEY
    removed = Tokens("new-secret")
    with pytest.raises(BadToken):
        removed.read("unsubscribe", old_link)
    with pytest.raises(BadToken):
        removed.read("unsubscribe", legacy("old-secret", "unsubscribe"))


@pytest.mark.parametrize("purpose", ["unsubscribe", "preferences"])
def test_a_link_in_the_old_format_still_reads_for_its_purpose_only(purpose):
    tokens = Tokens("secret", ["older-secret"])
    assert tokens.read(purpose, legacy("secret", purpose)) == KEY
    assert tokens.read(purpose, legacy("older-secret", purpose)) == KEY
    other = "preferences" if purpose == "unsubscribe" else "unsubscribe"
    with pytest.raises(BadToken):
        tokens.read(other, legacy("secret", purpose))
    with pytest.raises(BadToken):
        Tokens("another-secret").read(purpose, legacy("secret", purpose))


# --- through the web: links already in readers' inboxes -------------------------------------------


@pytest.fixture
def site(settings):
    with running_site(settings) as site:
        yield site


def reader(site) -> Subscriber:
    with site.core.sessions.begin() as session:
        subscriber, _ = store.add(session, "reader@example.org", "Rita", now=site.core.now(), cause="test")
        return subscriber


def status(site) -> str:
    with site.core.sessions() as session:
        return session.scalars(select(Subscriber.status).where(Subscriber.email == "reader@example.org")).one()


def test_an_old_format_link_still_opens_the_preferences_and_the_unsubscribe_page(site):
    subscriber = reader(site)
    secret = site.core.settings.require_secret_key()
    preferences = site.http.get(f"/preferences/{legacy(secret, 'preferences', subscriber.link_key)}")
    assert preferences.status_code == 200 and 'value="Opinion" checked' in preferences.text
    page = site.http.get(f"/unsubscribe/{legacy(secret, 'unsubscribe', subscriber.link_key)}")
    assert page.status_code == 200 and page.text.count("<button") == 1
    assert status(site) == "active"


def test_an_old_format_link_still_unsubscribes_in_one_click(site):
    subscriber = reader(site)
    token = legacy(site.core.settings.require_secret_key(), "unsubscribe", subscriber.link_key)
    site.http.cookies.clear()
    answer = site.http.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200 and "You are unsubscribed" in answer.text
    assert "location" not in answer.headers
    assert status(site) == "unsubscribed"


def test_a_new_link_unsubscribes_in_one_click_and_an_altered_one_does_not(site):
    subscriber = reader(site)
    path = site.path(site.core.unsubscribe_url(subscriber))
    assert path == f"/unsubscribe/{site.core.tokens.link_tokens(subscriber.link_key)[0]}"
    bad = site.http.post(path[:-1] + ("A" if path[-1] != "A" else "B"), data={"List-Unsubscribe": "One-Click"})
    assert bad.status_code == 400 and status(site) == "active"
    answer = site.http.post(path, data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200 and status(site) == "unsubscribed"
