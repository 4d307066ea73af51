"""The preview, archive and front page over HTTP on a real server (SQLite and PostgreSQL)."""

from __future__ import annotations

import html
import json
import re

import feedparser
from sqlalchemy import select

from digest.content.summaries import is_stale
from digest.content.weeks import Week
from digest.jobs import weekly
from digest.store.models import Article, Issue
from tests.fakes.seed import make_issue
from tests.fakes.sendgrid import WebhookSigner
from tests.preview_site import NOW, card_titles, issue_of, mark_sent, send_to_readers, site_with_draft

TOKEN = "editor-secret-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
HTML = {"Accept": "text/html"}


def csrf_token(site, path: str, **headers) -> str:
    response = site.http.get(path, headers=headers)
    assert response.status_code == 200, response.text
    return re.search(r'name="csrf_token" value="([^"]+)"', response.text)[1]


# --- who may see it -----------------------------------------------------------------------------


def test_the_preview_refuses_a_request_without_the_admin_token(settings):
    with site_with_draft(settings, admin_token=TOKEN) as (site, issue):
        for path in ("/preview", f"/preview/{issue.slug}", f"/preview/{issue.slug}/email.html"):
            response = site.http.get(path)
            assert response.status_code == 401, path
            assert "DIGEST_ADMIN_TOKEN" in response.json()["error"]
            assert site.http.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert site.http.post(f"/preview/{issue.slug}/rebuild").status_code == 401
        # A browser is sent to the login form instead.
        page = site.http.get(f"/preview/{issue.slug}", headers=HTML)
        assert page.status_code == 303 and page.headers["location"] == f"/login?next=/preview/{issue.slug}"
        shown = site.http.get(f"/preview/{issue.slug}", headers=BEARER)
        assert shown.status_code == 200 and issue.subject in shown.text


def test_the_login_form_sets_a_cookie_that_opens_the_preview(settings):
    with site_with_draft(settings, admin_token=TOKEN) as (site, issue):
        token = csrf_token(site, "/login?next=/preview")
        wrong = site.http.post("/login", data={"csrf_token": token, "token": "guess", "next": "/preview"})
        assert wrong.status_code == 401 and "not the admin token" in wrong.text
        assert "digest_editor" not in site.http.cookies
        answer = site.http.post("/login", data={"csrf_token": token, "token": TOKEN, "next": "//evil.example/x"})
        assert answer.status_code == 303 and answer.headers["location"] == "/preview"  # never another host
        assert site.http.get(f"/preview/{issue.slug}").status_code == 200
        site.http.post("/logout", data={"csrf_token": token})
        assert site.http.get(f"/preview/{issue.slug}").status_code == 401


def test_a_login_cookie_stops_working_when_the_admin_token_changes(settings):
    with site_with_draft(settings, admin_token=TOKEN) as (site, issue):
        token = csrf_token(site, "/login")
        site.http.post("/login", data={"csrf_token": token, "token": TOKEN, "next": "/preview"})
        cookie = site.http.cookies["digest_editor"]
    with site_with_draft(settings, admin_token="a-new-token") as (site, issue):
        site.http.cookies.set("digest_editor", cookie)
        assert site.http.get(f"/preview/{issue.slug}").status_code == 401


def test_without_an_admin_token_only_this_machine_is_let_in(settings):
    with site_with_draft(settings, admin_token=None) as (site, issue):
        assert site.http.get(f"/preview/{issue.slug}").status_code == 200
        proxied = site.http.get(f"/preview/{issue.slug}", headers={"X-Forwarded-For": "203.0.113.9"})
        assert proxied.status_code == 403 and "DIGEST_ADMIN_TOKEN" in proxied.text


def test_a_change_without_the_forms_csrf_token_is_refused(settings):
    with site_with_draft(settings, admin_token=None) as (site, issue):
        top = issue.content["top"]["id"]
        refused = site.http.post(f"/preview/{issue.slug}/articles/{top}/leave-out", data={})
        assert refused.status_code == 400
        assert issue_of(site).left_out == []


# --- what it shows ------------------------------------------------------------------------------


def test_the_preview_shows_subject_preheader_size_and_the_email_with_sample_values(settings):
    with site_with_draft(settings, admin_token=TOKEN) as (site, issue):
        page = site.http.get("/preview", headers=BEARER, follow_redirects=True)
        assert page.url.path == f"/preview/{issue.slug}"
        assert issue.subject in page.text and issue.preheader in page.text
        kb = round(len(issue.html.encode()) / 1024)
        assert f"{kb} KB</span> of Gmail's 102 KB" in page.text
        assert 'src="/preview/2026-w48/email.html"' in page.text and 'width="640"' in page.text
        assert 'width="375"' in site.http.get(f"/preview/{issue.slug}?view=mobile", headers=BEARER).text

        email = site.http.get(f"/preview/{issue.slug}/email.html", headers=BEARER)
        assert "%%" not in email.text and issue.content["top"]["title"] in email.text
        assert f"{site.url}/unsubscribe/preview" in email.text
        assert "frame-ancestors 'self'" in email.headers["content-security-policy"]

        text = site.http.get(f"/preview/{issue.slug}?view=text", headers=BEARER).text
        assert '<pre id="text">' in text and "%%" not in text
        assert issue.content["top"]["title"] in text


def test_every_page_carries_a_content_security_policy(settings):
    with site_with_draft(settings, admin_token=TOKEN) as (site, issue):
        mark_sent(site, issue)
        for path in ("/", "/issues", "/manage", "/login", "/subscribe", f"/issues/{issue.slug}"):
            response = site.http.get(path)
            assert response.status_code == 200, path
            policy = response.headers["content-security-policy"]
            assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy, path
            assert "script-src" not in policy or "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
        assert "script-src" not in site.http.get(f"/issues/{issue.slug}").headers["content-security-policy"]


# --- the editor's changes -----------------------------------------------------------------------


def test_leaving_an_article_out_and_rebuilding_removes_it_and_later_rebuilds_keep_it_out(settings):
    with site_with_draft(settings, admin_token=TOKEN) as (site, issue):
        gone = issue.content["sections"][0]["articles"][0]
        answer = site.http.post(f"/preview/{issue.slug}/articles/{gone['id']}/leave-out", headers=BEARER)
        assert answer.status_code == 303
        assert gone["title"] in card_titles(issue_of(site))  # stored, not yet rebuilt
        page = site.http.get(f"/preview/{issue.slug}", headers=BEARER).text
        assert 'id="pending"' in page

        site.http.post(f"/preview/{issue.slug}/rebuild", headers=BEARER)
        rebuilt = issue_of(site)
        assert gone["title"] not in card_titles(rebuilt) and gone["url"] not in rebuilt.html
        assert rebuilt.left_out == [gone["id"]]
        assert 'id="pending"' not in site.http.get(f"/preview/{issue.slug}", headers=BEARER).text

        # The weekly run recomposes the draft: the editor's choice holds.
        weekly.build(site.core, None)
        assert gone["title"] not in card_titles(issue_of(site))

        site.http.post(f"/preview/{issue.slug}/articles/{gone['id']}/put-back", headers=BEARER)
        site.http.post(f"/preview/{issue.slug}/rebuild", headers=BEARER)
        assert gone["title"] in card_titles(issue_of(site))


def test_pinning_makes_the_top_story_and_leaving_it_out_unpins_it(settings):
    with site_with_draft(settings, admin_token=TOKEN) as (site, issue):
        chosen = issue.content["sections"][-1]["articles"][-1]
        site.http.post(f"/preview/{issue.slug}/articles/{chosen['id']}/pin", headers=BEARER)
        site.http.post(f"/preview/{issue.slug}/rebuild", headers=BEARER)
        pinned = issue_of(site)
        assert pinned.content["top"]["id"] == chosen["id"] and pinned.top_article_id == chosen["id"]
        assert pinned.subject.endswith(chosen["title"])

        site.http.post(f"/preview/{issue.slug}/articles/{chosen['id']}/leave-out", headers=BEARER)
        site.http.post(f"/preview/{issue.slug}/rebuild", headers=BEARER)
        after = issue_of(site)
        assert after.top_article_id is None and chosen["title"] not in card_titles(after)


def test_an_edited_teaser_and_excerpt_reach_the_rebuilt_email(settings):
    with site_with_draft(settings, admin_token=TOKEN) as (site, issue):
        card = issue.content["sections"][0]["articles"][0]
        edit = f"/preview/{issue.slug}/articles/{card['id']}/edit"
        site.http.post(
            edit, headers=BEARER, data={"teaser": card["teaser"], "excerpt": "An editor wrote this excerpt."}
        )
        with site.core.sessions() as session:
            edited = session.get(Article, card["id"])
            assert edited.teaser_override is None  # an untouched field keeps following the summary
            assert edited.excerpt_override == "An editor wrote this excerpt."
        site.http.post(
            edit, headers=BEARER, data={"teaser": "An editor's teaser.", "excerpt": "An editor wrote this excerpt."}
        )
        site.http.post(f"/preview/{issue.slug}/rebuild", headers=BEARER)
        rebuilt = issue_of(site)
        [again] = [a for s in rebuilt.content["sections"] for a in s["articles"] if a["id"] == card["id"]]
        assert again["teaser"] == "An editor's teaser." and again["excerpt"] == "An editor wrote this excerpt."
        # A section's article is a compact row by default: its teaser shows, its excerpt does not.
        assert "An editor's teaser." in html.unescape(rebuilt.html) and "An editor's teaser." in rebuilt.text
        assert "An editor wrote this excerpt." not in rebuilt.html

        # The top story is shown in full, its excerpt with it.
        top = rebuilt.content["top"]
        site.http.post(
            f"/preview/{issue.slug}/articles/{top['id']}/edit",
            headers=BEARER,
            data={"teaser": top["teaser"], "excerpt": "An editor wrote the lead's excerpt."},
        )
        site.http.post(f"/preview/{issue.slug}/rebuild", headers=BEARER)
        rebuilt = issue_of(site)
        assert "An editor wrote the lead's excerpt." in html.unescape(rebuilt.html)
        assert "An editor wrote the lead's excerpt." in rebuilt.text

        empty = site.http.post(edit, headers=BEARER, data={"teaser": "  ", "excerpt": card["excerpt"]})
        assert empty.status_code == 400 and "must not be empty" in empty.text
        site.http.post(edit, headers=BEARER, data={"reset": "1"})
        site.http.post(f"/preview/{issue.slug}/rebuild", headers=BEARER)
        [back] = [a for s in issue_of(site).content["sections"] for a in s["articles"] if a["id"] == card["id"]]
        assert back["teaser"] == card["teaser"]


def test_an_edited_teaser_wins_over_the_dek_in_the_email_its_text_part_and_the_archive(settings):
    dek = "The publisher wrote this line to stand on its own."
    mine = "An editor wrote this teaser for the card."
    with site_with_draft(settings, admin_token=TOKEN) as (site, issue):
        card = issue.content["sections"][0]["articles"][0]
        with site.core.sessions.begin() as session:
            session.get(Article, card["id"]).dek = dek  # as a feed's description or og:description gives it
        site.http.post(f"/preview/{issue.slug}/rebuild", headers=BEARER)
        with_dek = issue_of(site)
        # The card's one line is the teaser, here the publisher's clean dek, and the preview edits that line.
        assert dek in with_dek.html and dek in with_dek.text
        assert f">{dek}</textarea>" in site.http.get(f"/preview/{issue.slug}", headers=BEARER).text

        edit = f"/preview/{issue.slug}/articles/{card['id']}/edit"
        site.http.post(edit, headers=BEARER, data={"teaser": mine, "excerpt": card["excerpt"]})
        site.http.post(f"/preview/{issue.slug}/rebuild", headers=BEARER)
        rebuilt = issue_of(site)
        assert mine in rebuilt.html and mine in rebuilt.text
        assert dek not in rebuilt.html and dek not in rebuilt.text
        assert f">{mine}</textarea>" in site.http.get(f"/preview/{issue.slug}", headers=BEARER).text

        mark_sent(site, rebuilt)
        archived = site.http.get(f"/issues/{issue.slug}")
        assert archived.status_code == 200 and mine in archived.text and dek not in archived.text


def test_the_preview_shows_the_fresh_teaser_of_an_article_changed_since_the_draft_was_built(settings):
    with site_with_draft(settings, admin_token=TOKEN) as (site, issue):
        card = issue.content["sections"][0]["articles"][0]
        with site.core.sessions.begin() as session:  # what a gather stores for an article changed upstream
            article = session.get(Article, card["id"])
            article.content_html = (
                "<p>The envoys signed the revised accord on Thursday after a second night of talks.</p>"
                "<p>Both delegations said the text now covers the river's lower reaches as well.</p>"
            )
            article.content_hash = "changed-upstream"
        page = site.http.get(f"/preview/{issue.slug}", headers=BEARER).text
        assert "The envoys signed the revised accord on Thursday" in page and 'id="pending"' in page
        with site.core.sessions() as session:
            article = session.get(Article, card["id"])
        assert not is_stale(article, site.core.summary_limits) and article.teaser.startswith("The envoys signed")


def test_a_sent_issue_can_no_longer_change(settings):
    with site_with_draft(settings, admin_token=TOKEN) as (site, issue):
        mark_sent(site, issue)
        top = issue.content["top"]["id"]
        answer = site.http.post(f"/preview/{issue.slug}/articles/{top}/leave-out", headers=BEARER)
        assert answer.status_code == 400 and "only a draft can change" in answer.text
        assert issue_of(site).left_out == []


# --- figures ------------------------------------------------------------------------------------


def test_a_sent_issues_figures_follow_the_stored_provider_events(settings):
    signer = WebhookSigner()
    with site_with_draft(settings, admin_token=TOKEN, sendgrid_webhook_public_key=signer.public_b64) as (site, issue):
        readers = send_to_readers(site, issue)
        figures = site.http.get(f"/preview/{issue.slug}/figures.json", headers=BEARER).json()
        assert figures["recipients"] == 3 and figures["delivered"] == figures["clicked"] == 0

        ada, bo, cy = (r.email for r in readers)
        top = issue.content["top"]
        tracked = (
            top["url"]
            + ("&" if "?" in top["url"] else "?")
            + f"utm_source=x&utm_medium=email&utm_campaign={issue.slug}"
        )

        def event(n, kind, email, **extra):
            return {"sg_event_id": f"e{n}", "event": kind, "email": email, "timestamp": 1796000000 + n,
                    "issue_id": str(issue.id), **extra}  # fmt: skip

        batch = [
            event(1, "delivered", ada),
            event(2, "delivered", bo),
            event(3, "delivered", cy),
            event(4, "open", ada),
            event(5, "open", ada),
            event(6, "open", bo),
            event(7, "click", ada, url=tracked),
            event(8, "click", ada, url=tracked),
            event(9, "click", bo, url=tracked),
            event(10, "click", bo, url="https://bsky.app/profile/meridian"),
            event(11, "spamreport", cy),
        ]
        body = json.dumps(batch).encode()
        headers = signer.headers(body, NOW.timestamp())
        assert site.http.post("/webhooks/sendgrid", content=body, headers=headers).status_code == 200
        # One reader leaves through the mail's own one-click link, which the provider never sees.
        site.http.post(site.path(site.core.unsubscribe_url(readers[1])), data={"List-Unsubscribe": "One-Click"})

        figures = site.http.get(f"/preview/{issue.slug}/figures.json", headers=BEARER).json()
        assert {k: figures[k] for k in ("recipients", "delivered", "opened", "clicked", "complained")} == {
            "recipients": 3,
            "delivered": 3,
            "opened": 2,
            "clicked": 2,
            "complained": 1,
        }
        assert figures["unsubscribed"] == 1 and figures["bounced"] == 0
        [row] = [a for a in figures["articles"] if a["url"] == top["url"]]
        assert (row["people"], row["clicks"]) == (2, 3)
        assert figures["other_clicks"] == 1

        page = site.http.get(f"/preview/{issue.slug}", headers=BEARER).text
        assert re.search(r'id="figure-opened">2<', page) and re.search(r'id="figure-complained">1<', page)
        # The figures never reach a public page.
        assert "figure-" not in site.http.get(f"/issues/{issue.slug}").text


# --- the public archive -------------------------------------------------------------------------


def test_the_archive_lists_only_sent_issues_and_their_pages_show_no_readers_token(settings):
    with site_with_draft(settings, admin_token=TOKEN) as (site, issue):
        assert issue.subject not in site.http.get("/issues").text
        assert site.http.get(f"/issues/{issue.slug}").status_code == 404  # a draft is not public
        readers = send_to_readers(site, issue)
        listing = site.http.get("/issues").text
        assert f'href="/issues/{issue.slug}"' in listing

        page = site.http.get(f"/issues/{issue.slug}")
        assert page.status_code == 200 and issue.content["top"]["title"] in page.text
        assert "%%" not in page.text
        for reader in readers:
            for link in (site.core.unsubscribe_url(reader), site.core.preferences_url(reader)):
                assert link.rsplit("/", 1)[1] not in page.text
            assert reader.email not in page.text and reader.first_name not in page.text
        assert f'href="{site.url}/manage"' in page.text
        assert re.search(r"/(unsubscribe|preferences)/", page.text) is None
        assert site.http.get("/manage").status_code == 200


def test_the_archive_is_paged_newest_first_and_has_an_atom_feed(settings):
    with site_with_draft(settings, admin_token=TOKEN) as (site, issue):
        mark_sent(site, issue)
        with site.core.sessions.begin() as session:
            for n in range(1, 26):
                old = make_issue(session, f"2025-W{n:02d}", subject=f"Issue number {n}")
                old.window_start, old.window_end = Week(2025, n).window(site.core.config.tz)
                old.status, old.sent_at = "sent", old.window_end
        first = site.http.get("/issues").text
        assert first.count("<li>") == 20 and "Page 1 of 2" in first
        shown = re.findall(r'href="/issues/([0-9a-z-]+)"', first)
        assert shown[:3] == [issue.slug, "2025-w25", "2025-w24"]
        second = site.http.get("/issues?page=2").text
        assert second.count("<li>") == 6 and "Issue number 1<" in second
        assert site.http.get("/issues?page=3").status_code == 404

        feed = feedparser.parse(site.http.get("/issues/feed.xml").content)
        assert not feed.bozo and feed.feed.title == site.core.config.name
        assert len(feed.entries) == 20
        assert all(e.link.startswith(f"{site.url}/issues/") for e in feed.entries)


def test_the_front_page_has_the_name_tagline_sign_up_and_latest_issues(settings):
    with site_with_draft(settings) as (site, issue):
        mark_sent(site, issue)
        page = site.http.get("/").text
        assert site.core.config.name in page and site.core.config.tagline in page
        assert 'href="/subscribe"' in page and f'href="/issues/{issue.slug}"' in page
        assert site.http.get("/healthz").json() == {"ok": True}
        with site.core.sessions() as session:
            assert session.scalars(select(Issue.status)).one() == "sent"


def test_the_preview_shows_its_times_in_the_newsletters_timezone_with_its_name(settings):
    with site_with_draft(settings, admin_token=TOKEN) as (site, issue):
        page = site.http.get(f"/preview/{issue.slug}", headers=BEARER).text
        tz = site.core.config.tz  # America/New_York: EST in November
        start, end = (moment.astimezone(tz) for moment in (issue.window_start, issue.window_end))
        window = re.search(r'<dd id="window">([^<]*)</dd>', page)[1]
        assert window == f"{start:%Y-%m-%d %H:%M} EST to {end:%Y-%m-%d %H:%M} EST"
        published = re.findall(r"· ((?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d\d \w{3} \d\d:\d\d \w+)</span>", page)
        assert published and all(p.endswith(" EST") for p in published)
