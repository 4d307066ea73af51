"""The preview and the archive in headless Chromium, with screenshots in test-artifacts/.

Screenshots: preview-login.png, preview-desktop.png, preview-mobile.png, preview-text.png,
preview-left-out.png, archive.png, archive-issue.png, home.png (each with -sqlite or -postgres).
"""

from __future__ import annotations

import pytest

from tests.conftest import ARTIFACTS
from tests.preview_site import issue_of, send_to_readers, site_with_draft
from tests.test_render_browser import GREY_PNG

TOKEN = "editor-secret-token"

pytestmark = pytest.mark.browser


def new_page(browser, site, width: int = 1280, height: int = 900):
    page = browser.new_page(viewport={"width": width, "height": height})
    # The machine is offline: the articles' photos are stood in for by a grey image.
    page.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith(site.url)
            else route.fulfill(status=200, content_type="image/png", body=GREY_PNG)
        ),
    )
    return page


def shot(page, name: str, db: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{db}.png"), full_page=False)


def db_of(database_url: str) -> str:
    return "postgres" if database_url.startswith("postgresql") else "sqlite"


def log_in(page, site) -> None:
    page.goto(f"{site.url}/preview")
    assert page.url.startswith(f"{site.url}/login")
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_selector("#email")


def test_the_preview_refuses_a_browser_without_the_admin_token_and_lets_it_in_after_login(
    settings, browser, database_url
):
    db = db_of(database_url)
    with site_with_draft(settings, admin_token=TOKEN) as (site, issue):
        page = new_page(browser, site)
        page.goto(f"{site.url}/preview/{issue.slug}")
        assert page.url == f"{site.url}/login?next=/preview/{issue.slug}"
        assert page.locator("#email").count() == 0 and issue.subject not in page.content()
        page.fill("#token", "a wrong guess")
        page.click("button[type=submit]")
        assert page.locator("#error").inner_text() == "That is not the admin token."
        shot(page, "preview-login", db)
        page.fill("#token", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_selector("#email")
        assert page.url == f"{site.url}/preview/{issue.slug}"
        page.close()


def test_the_preview_shows_the_draft_narrows_for_mobile_and_shows_the_text(settings, browser, database_url):
    db = db_of(database_url)
    with site_with_draft(settings, admin_token=TOKEN) as (site, issue):
        page = new_page(browser, site)
        log_in(page, site)
        assert page.locator("#subject").inner_text() == issue.subject
        assert page.locator("#preheader").inner_text() == issue.preheader
        assert "of Gmail's 102 KB" in page.locator("#size").inner_text()
        frame = page.frame_locator("#email")
        top = issue.content["top"]["title"]
        frame.get_by_text(top).first.wait_for()
        assert page.locator("#email").bounding_box()["width"] == pytest.approx(640, abs=2)
        shot(page, "preview-desktop", db)

        page.click("#tab-mobile")
        page.wait_for_url("**view=mobile")
        frame = page.frame_locator("#email")
        frame.get_by_text(top).first.wait_for()
        assert page.locator("#email").bounding_box()["width"] == pytest.approx(375, abs=2)
        # The e-mail itself lays out for the phone: nothing wider than the frame.
        inner = page.frame(url=f"{site.url}/preview/{issue.slug}/email.html")
        assert inner.evaluate("document.documentElement.scrollWidth") <= 375
        shot(page, "preview-mobile", db)

        page.click("#tab-text")
        page.wait_for_url("**view=text")
        text = page.locator("#text").inner_text()
        assert top in text and "%%" not in text
        assert f"{site.url}/unsubscribe/preview" in text
        shot(page, "preview-text", db)
        page.close()


def test_leaving_an_article_out_and_rebuilding_removes_it_from_the_draft(settings, browser, database_url):
    db = db_of(database_url)
    with site_with_draft(settings, admin_token=TOKEN) as (site, issue):
        gone = issue.content["sections"][0]["articles"][0]
        page = new_page(browser, site)
        log_in(page, site)
        frame = page.frame_locator("#email")
        frame.get_by_text(gone["title"]).first.wait_for()

        page.click(f"#article-{gone['id']} button.leave-out")
        page.wait_for_selector(f"#article-{gone['id']}[data-state=left_out]")
        assert page.locator("#pending").is_visible()
        page.click("#rebuild")
        page.wait_for_selector(f"#article-{gone['id']}[data-state=left_out]")
        assert page.locator("#pending").count() == 0
        frame = page.frame_locator("#email")
        frame.get_by_text(issue.content["top"]["title"]).first.wait_for()
        assert frame.get_by_text(gone["title"]).count() == 0
        assert gone["title"] not in issue_of(site).html
        page.locator(f"#article-{gone['id']}").scroll_into_view_if_needed()
        shot(page, "preview-left-out", db)
        page.close()


def test_the_archive_lists_a_sent_issue_and_its_page_shows_no_subscribers_token(settings, browser, database_url):
    db = db_of(database_url)
    with site_with_draft(settings, admin_token=TOKEN) as (site, issue):
        readers = send_to_readers(site, issue)
        page = new_page(browser, site, 390, 844)
        page.goto(site.url)
        assert page.locator("#name").inner_text() == site.core.config.name
        shot(page, "home", db)

        page.goto(f"{site.url}/issues")
        link = page.locator(f"#issues a[href='/issues/{issue.slug}']")
        assert link.inner_text() == issue.subject
        shot(page, "archive", db)

        link.click()
        page.wait_for_url(f"**/issues/{issue.slug}")
        page.get_by_text(issue.content["top"]["title"]).first.wait_for()
        html = page.content()
        assert "%%" not in html
        for reader in readers:
            for link in (site.core.unsubscribe_url(reader), site.core.preferences_url(reader)):
                assert link.rsplit("/", 1)[1] not in html
            assert reader.email not in html
        hrefs = page.eval_on_selector_all("a", "links => links.map(a => a.href)")
        assert f"{site.url}/manage" in hrefs
        assert not [h for h in hrefs if "/unsubscribe/" in h or "/preferences/" in h]
        # Readable on a phone: no sideways scrolling.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        shot(page, "archive-issue", db)
        page.close()
