"""In headless Chromium: sign up, confirm from the outbox mail, then unsubscribe with the page's button."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import select

from subscribers.models import Subscriber
from tests.conftest import ARTIFACTS
from tests.web_site import confirm_links, running_site

pytestmark = pytest.mark.browser


def status_of(site, address: str) -> str:
    with site.core.sessions() as session:
        return session.scalars(select(Subscriber.status).where(Subscriber.email == address)).one()


def test_a_reader_signs_up_confirms_from_the_mail_and_later_unsubscribes(settings, browser, database_url):
    ARTIFACTS.mkdir(exist_ok=True)
    db = "postgres" if database_url.startswith("postgresql") else "sqlite"
    with running_site(settings) as site:
        page = browser.new_page()
        page.goto(f"{site.url}/subscribe")
        page.fill("#email", "Browser.Reader@Example.org")
        page.fill("#name", "Bea Reader")
        page.screenshot(path=str(ARTIFACTS / f"subscribe-form-{db}.png"))
        page.click("button[type=submit]")
        page.wait_for_selector("#status")
        assert "Check your inbox" in page.content()
        assert status_of(site, "browser.reader@example.org") == "pending"

        [link] = confirm_links(Path(site.core.settings.outbox_dir))
        page.goto(link)
        assert status_of(site, "browser.reader@example.org") == "pending"  # opening the link changes nothing
        page.click("#confirm")
        page.wait_for_selector("#status")
        assert page.locator("#status").inner_text().startswith("Thank you")
        page.screenshot(path=str(ARTIFACTS / f"confirmed-{db}.png"))
        assert status_of(site, "browser.reader@example.org") == "active"

        with site.core.sessions() as session:
            bea = session.scalars(select(Subscriber)).one()
        page.goto(site.core.unsubscribe_url(bea))
        assert status_of(site, "browser.reader@example.org") == "active"  # opening the page changes nothing
        page.click("#unsubscribe")
        page.wait_for_selector("#resubscribe")
        assert "You are unsubscribed" in page.content()
        page.screenshot(path=str(ARTIFACTS / f"unsubscribed-{db}.png"))
        assert status_of(site, "browser.reader@example.org") == "unsubscribed"
        page.close()
    assert os.path.getsize(ARTIFACTS / f"unsubscribed-{db}.png") > 0
