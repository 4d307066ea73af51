"""Hostile names and addresses through every entry point: the form, the JSON API, a CSV import, the CLI.

Whatever comes in, a stored name holds no line break, control character or bidi override (so it can
never add a header or stop a send), and an address with one is refused with a clear reason.
"""

from __future__ import annotations

import email
import re
from email import policy

import pytest
from sqlalchemy import select

from digest.delivery.run import deliver
from digest.store.models import Batch
from subscribers.models import Subscriber
from tests.fakes.seed import make_issue
from tests.test_subscribers_cli import digest
from tests.web_site import confirm_links, running_site, transactional_mail

TOKEN = "api-token-for-hostile-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MALLORY = "Mallory\r\nBcc: x@example.org"
CLEAN_MALLORY = "Mallory Bcc: x@example.org"
HIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture
def site(settings):
    with running_site(settings, api_token=TOKEN) as site:
        yield site


def form_token(site) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', site.http.get("/subscribe").text)[1]


def sign_up(site, address: str, name: str = ""):
    return site.http.post("/subscribe", data={"email": address, "name": name, "csrf_token": form_token(site)})


def press_confirm(site, link: str) -> None:
    path = site.path(link)
    token = re.search(r'name="csrf_token" value="([^"]+)"', site.http.get(path).text)[1]
    assert site.http.post(path, data={"csrf_token": token}).status_code == 200


def stored(site) -> dict[str, str | None]:
    with site.core.sessions() as session:
        return {s.email: s.name for s in session.scalars(select(Subscriber))}


def headers_of(raw: str) -> email.message.EmailMessage:
    return email.message_from_string(raw, policy=policy.default)


# --- the sign-up form -------------------------------------------------------------------------------


def test_a_name_with_a_line_break_given_after_confirming_cannot_add_a_header_or_stop_the_send(site):
    assert sign_up(site, "mallory@example.org").status_code == 200
    [link] = confirm_links(site.core.settings.outbox_dir)
    press_confirm(site, link)
    sign_up(site, "reader@example.org", "Rita Reader")
    press_confirm(site, confirm_links(site.core.settings.outbox_dir)[-1])

    # A visitor typing her address cannot name her: the form changes nothing of an active subscriber.
    again = sign_up(site, "mallory@example.org", MALLORY)
    assert again.status_code == 200 and "Check your inbox" in again.text
    assert stored(site)["mallory@example.org"] is None
    # The API (it holds a token) may fill in the missing name: it is stored on one line.
    named = site.http.post("/api/subscribers", json={"email": "mallory@example.org", "name": MALLORY}, headers=AUTH)
    assert named.status_code == 200
    assert stored(site)["mallory@example.org"] == CLEAN_MALLORY

    with site.core.sessions.begin() as session:
        issue = make_issue(session)
    deliver(site.core.mailer(), issue)
    with site.core.sessions() as session:
        assert set(session.scalars(select(Batch.status).where(Batch.issue_id == issue.id))) == {"submitted"}
    sent = [headers_of(p.read_text()) for p in sorted((site.core.settings.outbox_dir / issue.slug).glob("*.eml"))]
    assert sorted(m["To"].addresses[0].addr_spec for m in sent) == ["mallory@example.org", "reader@example.org"]
    assert all(m["Bcc"] is None for m in sent)
    assert "x@example.org" not in {a.addr_spec for m in sent for a in m["To"].addresses}


def test_an_address_with_a_line_break_or_control_character_is_refused_with_the_reason(site):
    for address in ("reader@example.org\r\nBcc: x@example.org", "rea\x00der@example.org", "reader@exa\u202emple.org"):
        answer = sign_up(site, address, "Rita")
        assert answer.status_code == 400, address
        assert "Please check the address" in answer.text
    assert "line break or control character" in sign_up(site, "a\nb@example.org").text
    assert stored(site) == {}
    assert transactional_mail(site.core.settings.outbox_dir) == []


def test_control_characters_and_bidi_overrides_are_taken_out_of_a_form_name(site):
    sign_up(site, "ann@example.org", "  Ann\t\tLee\x00\x07 \u202eevil\u202c  ")
    assert stored(site) == {"ann@example.org": "Ann Lee evil"}
    [mail] = transactional_mail(site.core.settings.outbox_dir)
    assert headers_of(mail)["To"].addresses[0].display_name == "Ann Lee evil"


def test_a_name_longer_than_the_column_is_refused_on_the_form(site):
    answer = sign_up(site, "long@example.org", "n" * 301)
    assert answer.status_code == 400 and "at most 300" in answer.text
    assert stored(site) == {}


# --- the JSON API -----------------------------------------------------------------------------------


def test_an_api_sign_up_with_a_line_break_in_the_name_is_stored_clean_and_its_confirmation_goes_out(site):
    answer = site.http.post("/api/subscribers", json={"email": "api@example.org", "name": MALLORY}, headers=AUTH)
    assert answer.status_code == 201 and answer.json()["name"] == CLEAN_MALLORY
    [mail] = transactional_mail(site.core.settings.outbox_dir)
    message = headers_of(mail)
    assert message["Bcc"] is None
    assert [a.addr_spec for a in message["To"].addresses] == ["api@example.org"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"email": "api@example.org\r\nBcc: x@example.org"}, "email", "line break or control character"),
        ({"email": "j\u00f6rg@example.org"}, "email", "only ASCII letters before the @"),
        ({"email": "a@example.org", "name": "n" * 301}, "name", "at most 300"),
    ],
)
def test_a_hostile_api_field_gets_422_naming_the_field_never_500(site, body, field, words):
    answer = site.http.post("/api/subscribers", json=body, headers=AUTH)
    assert answer.status_code == 422
    assert words in answer.json()["errors"][field]
    assert stored(site) == {}


def test_a_lone_surrogate_in_an_api_name_is_dropped_not_a_500(site):
    body = b'{"email": "sur@example.org", "name": "Sur\\ud800rogate"}'
    answer = site.http.post("/api/subscribers", content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert answer.status_code == 201
    assert stored(site) == {"sur@example.org": "Surrogate"}


def test_an_internationalized_domain_is_stored_in_ascii_form_by_the_form_and_the_api_alike(site):
    sign_up(site, "Form@B\u00fccher.example", "Form")
    site.http.post("/api/subscribers", json={"email": "api@b\u00fccher.example"}, headers=AUTH)
    assert set(stored(site)) == {"form@xn--bcher-kva.example", "api@xn--bcher-kva.example"}
    for mail in transactional_mail(site.core.settings.outbox_dir):
        assert mail.isascii()
    # The same person typed either way is one subscriber.
    again = site.http.post("/api/subscribers", json={"email": "FORM@xn--bcher-kva.example"}, headers=AUTH)
    assert again.status_code == 200 and again.json()["created"] is False


# --- CSV import and the command line ----------------------------------------------------------------


def test_a_csv_import_cleans_names_and_rejects_bad_rows_by_line_number(cli_env, tmp_path):
    rows = [
        "email,name",
        'ok@example.org,"Mallory\r\nBcc: x@example.org"',
        '"bad@example.org\r\nBcc: x@example.org",Eve',
        "long@example.org," + "n" * 301,
        "j\u00f6rg@example.org,J\u00f6rg",
        "tab@example.org,\tTab\u202eed\x07",
    ]
    # A quoted field spans two physical lines, so the later rows sit one line further down.
    path = tmp_path / "people.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8", newline="")
    result = digest(cli_env, "subscribers", "import", str(path))
    assert "people.csv:5:" in result.stderr and "line break or control character" in result.stderr
    assert "people.csv:6:" in result.stderr and "at most 300" in result.stderr
    assert "people.csv:7:" in result.stderr and "ASCII" in result.stderr
    assert "3 rejected" in result.stdout + result.stderr
    listed = digest(cli_env, "subscribers", "export").stdout
    assert "ok@example.org,Mallory Bcc: x@example.org," in listed
    assert "tab@example.org,Tabed," in listed
    assert "bad@example.org" not in listed and "long@example.org" not in listed
    assert not HIDDEN.search(listed.replace("\n", ""))


def test_subscribers_add_cleans_the_name_and_refuses_a_hostile_address(cli_env):
    digest(cli_env, "subscribers", "add", "cli@example.org", "--name", MALLORY)
    assert "cli@example.org,Mallory Bcc: x@example.org," in digest(cli_env, "subscribers", "export").stdout
    refused = digest(cli_env, "subscribers", "add", "cli2@example.org\nBcc: x@example.org", check=False)
    assert refused.returncode == 2 and "line break or control character" in refused.stderr
    too_long = digest(cli_env, "subscribers", "add", "cli3@example.org", "--name", "n" * 301, check=False)
    assert too_long.returncode == 2 and "--name" in too_long.stderr
