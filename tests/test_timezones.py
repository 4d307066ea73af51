"""A reader's timezone where it enters: the API, the sign-up form (the browser's own zone, by a static
script the page CSP allows), the preferences page, CSV import and export, `digest subscribers show`.
Every entry checks it against the zoneinfo database; on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, time

import pytest
from sqlalchemy import select

from digest.delivery.waves import local_instant
from subscribers import store
from subscribers.models import Subscriber
from tests.cli_helpers import run_cli
from tests.conftest import ARTIFACTS
from tests.web_site import running_site

TOKEN = "api-token-for-timezone-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def site(settings):
    with running_site(settings) as site:
        yield site


def zone_of(core, address: str) -> str | None:
    with core.sessions() as session:
        return session.scalars(select(Subscriber.timezone).where(Subscriber.email == address)).one()


@pytest.mark.parametrize("zone", ["Asia/Kathmandu", "America/Denver", "Africa/Nairobi", "UTC", "Etc/GMT+7"])
def test_a_zone_of_the_zoneinfo_database_is_kept_as_it_is(zone):
    assert store.clean_timezone(f" {zone} ") == zone


@pytest.mark.parametrize(
    "bad", ["Mars/Olympus_Mons", "../../etc/passwd", "/usr/share/zoneinfo/UTC", "localtime", "posix/Europe/Berlin",
            "europe/lisbon", "Europe/Lisbon\x00", "+05:45", "x" * 500]
)  # fmt: skip
def test_what_is_not_a_zoneinfo_name_is_refused_with_a_reason(bad):
    with pytest.raises(store.InvalidTimezone, match="not a timezone of the zoneinfo database"):
        store.clean_timezone(bad)


def test_no_zone_is_none_the_newsletters_zone_applies():
    assert (
        store.clean_timezone("") is None and store.clean_timezone("  ") is None and store.clean_timezone(None) is None
    )


# --- the JSON API ---------------------------------------------------------------------------------------


def api(_site):
    return AUTH


@pytest.fixture
def api_site(settings):
    with running_site(settings, api_token=TOKEN) as site:
        yield site


def test_the_api_stores_the_timezone_and_refuses_an_unknown_one_with_422(api_site):
    made = api_site.http.post(
        "/api/subscribers", json={"email": "kathmandu@example.org", "timezone": "Asia/Kathmandu"}, headers=api(api_site)
    )
    assert made.status_code == 201 and made.json()["timezone"] == "Asia/Kathmandu"
    assert zone_of(api_site.core, "kathmandu@example.org") == "Asia/Kathmandu"
    bad = api_site.http.post(
        "/api/subscribers", json={"email": "mars@example.org", "timezone": "Mars/Olympus"}, headers=api(api_site)
    )
    assert bad.status_code == 422 and "zoneinfo" in bad.json()["errors"]["timezone"]
    wrong_type = api_site.http.post(
        "/api/subscribers", json={"email": "mars@example.org", "timezone": 545}, headers=api(api_site)
    )
    assert wrong_type.status_code == 422 and wrong_type.json()["errors"]["timezone"] == "must be a string"
    with api_site.core.sessions() as session:
        assert session.scalars(select(Subscriber.email)).all() == ["kathmandu@example.org"]


# --- the sign-up form -----------------------------------------------------------------------------------


def form_token(site) -> str:
    page = site.http.get("/subscribe")
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]


def test_the_form_carries_a_hidden_zone_field_filled_by_a_static_script_the_csp_allows(site):
    page = site.http.get("/subscribe")
    assert '<input type="hidden" name="timezone" id="timezone" value="">' in page.text
    assert '<script src="/static/timezone.js"></script>' in page.text
    assert "<script>" not in page.text  # no inline script
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    script = site.http.get("/static/timezone.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "Intl.DateTimeFormat().resolvedOptions().timeZone" in script.text


def test_a_sign_up_keeps_the_zone_sent_and_a_bad_one_signs_up_with_the_newsletters(site):
    for address, zone in (("denver@example.org", "America/Denver"), ("odd@example.org", "Nowhere/Special")):
        answer = site.http.post("/subscribe", data={"email": address, "timezone": zone, "csrf_token": form_token(site)})
        assert answer.status_code == 200 and "Check your inbox" in answer.text
    assert zone_of(site.core, "denver@example.org") == "America/Denver"
    assert zone_of(site.core, "odd@example.org") is None


def test_a_visitor_cannot_change_the_zone_of_an_active_reader_by_typing_their_address(site):
    with site.core.sessions.begin() as session:
        store.add(session, "ada@example.org", None, now=site.core.now(), cause="test", timezone="Europe/London")
    site.http.post(
        "/subscribe", data={"email": "ada@example.org", "timezone": "Asia/Tokyo", "csrf_token": form_token(site)}
    )
    assert zone_of(site.core, "ada@example.org") == "Europe/London"


def test_in_a_browser_the_form_sends_the_browsers_own_zone(settings, browser, database_url):
    with running_site(settings) as site:
        context = browser.new_context(timezone_id="Asia/Kathmandu")
        page = context.new_page()
        page.goto(f"{site.url}/subscribe")
        # Chromium's ICU names some zones by their older IANA alias (Asia/Katmandu): still a zoneinfo name.
        detected = page.input_value("#timezone")
        assert detected in ("Asia/Kathmandu", "Asia/Katmandu")
        page.fill("#email", "jun@example.org")
        page.click("button[type=submit]")
        page.wait_for_selector("text=Check your inbox")
        page.screenshot(path=str(ARTIFACTS / f"subscribe-timezone-{database_url.split(':')[0]}.png"))
        context.close()
        stored = zone_of(site.core, "jun@example.org")
        assert stored == detected
        assert local_instant(stored, date(2026, 12, 7), time(7)) == datetime(2026, 12, 7, 1, 15, tzinfo=UTC)


# --- the preferences page -------------------------------------------------------------------------------


def test_the_preferences_page_shows_the_zone_and_saves_a_new_one(site):
    with site.core.sessions.begin() as session:
        reader, _ = store.add(session, "rita@example.org", None, now=site.core.now(), cause="t", timezone="Asia/Tokyo")
    path = site.path(site.core.preferences_url(reader))
    page = site.http.get(path)
    assert '<option value="Asia/Tokyo" selected>' in page.text
    assert "The newsletter&#39;s (America/New_York)" in page.text or "The newsletter's (America/New_York)" in page.text
    sections = site.core.config.sections
    saved = site.http.post(path, data={"section": sections, "action": "save", "timezone": "Africa/Nairobi"})
    assert saved.status_code == 200 and '<option value="Africa/Nairobi" selected>' in saved.text
    assert zone_of(site.core, "rita@example.org") == "Africa/Nairobi"
    refused = site.http.post(path, data={"section": sections, "action": "save", "timezone": "Atlantis/Capital"})
    assert refused.status_code == 400 and zone_of(site.core, "rita@example.org") == "Africa/Nairobi"
    site.http.post(path, data={"section": sections, "action": "save", "timezone": ""})
    assert zone_of(site.core, "rita@example.org") is None


# --- CSV import and export, `subscribers show` ------------------------------------------------------------


def test_import_keeps_each_rows_zone_and_rejects_an_unknown_zone_with_its_line(core, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(
        "email,name,timezone\n"
        "denver@example.org,Dee,America/Denver\n"
        "mars@example.org,Marvin,Mars/Olympus_Mons\n"
        "nozone@example.org,Noe,\n"
        "kathmandu@example.org,Kat,Asia/Kathmandu\n",
        encoding="utf-8",
    )
    with core.sessions() as session:
        report = store.import_csv(session, path, now=core.now())
    assert report.added == 3
    [rejected] = report.rejected
    assert (rejected.line, rejected.value) == (3, "mars@example.org") and "Mars/Olympus_Mons" in rejected.reason
    assert zone_of(core, "denver@example.org") == "America/Denver" and zone_of(core, "nozone@example.org") is None
    # A zone given again replaces the stored one; a row without one keeps it.
    path.write_text("email,timezone\ndenver@example.org,Europe/Lisbon\nkathmandu@example.org,\n", encoding="utf-8")
    with core.sessions() as session:
        again = store.import_csv(session, path, now=core.now())
    assert (again.updated, again.unchanged) == (1, 1)
    assert zone_of(core, "denver@example.org") == "Europe/Lisbon"
    assert zone_of(core, "kathmandu@example.org") == "Asia/Kathmandu"
    out = io.StringIO()
    with core.sessions() as session:
        store.export_csv(session, out)
    rows = {r["email"]: r["timezone"] for r in csv.DictReader(io.StringIO(out.getvalue()))}
    assert rows == {
        "denver@example.org": "Europe/Lisbon",
        "nozone@example.org": "",
        "kathmandu@example.org": "Asia/Kathmandu",
    }


def test_the_command_line_imports_exports_and_shows_the_zone(cli_env, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("email,timezone\nnairobi@example.org,Africa/Nairobi\nbad@example.org,Moon/Base\n", encoding="utf-8")
    imported = run_cli(["subscribers", "import", path], cli_env, tmp_path)
    assert "1 added" in imported.stdout and "1 rejected" in imported.stdout
    assert "people.csv:3: skipped 'bad@example.org': 'Moon/Base' is not a timezone" in imported.stderr
    added = run_cli(["subscribers", "add", "lisbon@example.org", "--timezone", "Europe/Lisbon"], cli_env, tmp_path)
    assert added.returncode == 0, added.stderr
    refused = run_cli(["subscribers", "add", "moon@example.org", "--timezone", "Moon/Base"], cli_env, tmp_path)
    assert refused.returncode == 2 and "--timezone: 'Moon/Base' is not a timezone" in refused.stderr
    shown = run_cli(["subscribers", "show", "lisbon@example.org"], cli_env, tmp_path)
    assert re.search(r"^timezone\s+Europe/Lisbon$", shown.stdout, re.M), shown.stdout
    shown = run_cli(["subscribers", "show", "nairobi@example.org"], cli_env, tmp_path)
    assert re.search(r"^timezone\s+Africa/Nairobi$", shown.stdout, re.M), shown.stdout
    exported = run_cli(["subscribers", "export", tmp_path / "out.csv"], cli_env, tmp_path)
    assert exported.returncode == 0
    rows = {r["email"]: r["timezone"] for r in csv.DictReader((tmp_path / "out.csv").open(encoding="utf-8"))}
    assert rows == {"nairobi@example.org": "Africa/Nairobi", "lisbon@example.org": "Europe/Lisbon"}
