"""The smaller holes of issue 14, point 7, each planted through the real entry point on both stores.

Link scanners opening confirm links, address enumeration through the sign-up form, DNS rebinding of
the token-less preview, tokens in logs, weak secret keys, world-readable files, huge page numbers,
cross-site logout, and a sign-up whose process died before its confirmation went out.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import select

from digest.config import EXAMPLE_SECRET_KEYS, Settings
from digest.errors import ConfigError
from digest.store.models import utcnow
from subscribers import confirmation, store
from subscribers.models import ConfirmationMail, Subscriber
from tests.conftest import ROOT, TEST_SECRET_KEY
from tests.web_site import confirm_links, running_site, settle_confirmations, transactional_mail

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ADMIN = "admin-token-for-hostile-web-tests"


def form_token(site, path: str = "/subscribe") -> str:
    return CSRF.search(site.http.get(path).text)[1]


def sign_up(site, address: str):
    return site.http.post("/subscribe", data={"email": address, "csrf_token": form_token(site)})


def status_of(site, address: str) -> str | None:
    with site.core.sessions() as session:
        return session.scalar(select(Subscriber.status).where(Subscriber.email == address))


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# --- confirm links: opening is not confirming --------------------------------------------------------


def test_a_link_scanner_opening_the_confirm_link_confirms_nobody_only_the_pages_button_does(settings):
    with running_site(settings) as site:
        sign_up(site, "scanned@example.org")
        [link] = confirm_links(site.core.settings.outbox_dir)
        path = site.path(link)
        for _ in range(3):  # a scanner, a preview pane, the reader
            shown = site.http.get(path)
            assert shown.status_code == 200 and 'method="post"' in shown.text and 'id="confirm"' in shown.text
        assert status_of(site, "scanned@example.org") == "pending"
        # A post from elsewhere, without the page's token, is not the reader pressing the button.
        site.http.cookies.clear()
        refused = site.http.post(path, data={})
        assert refused.status_code == 400 and "Press the button again" in refused.text
        assert status_of(site, "scanned@example.org") == "pending"
        token = CSRF.search(refused.text)[1]
        confirmed = site.http.post(path, data={"csrf_token": token})
        assert confirmed.status_code == 200 and "You are subscribed" in confirmed.text
        assert status_of(site, "scanned@example.org") == "active"


def test_the_confirmation_mail_asks_the_reader_to_press_the_button(settings):
    with running_site(settings) as site:
        sign_up(site, "told@example.org")
        [mail] = transactional_mail(site.core.settings.outbox_dir)
        assert "press the button" in mail


# --- no enumeration through the sign-up form ---------------------------------------------------------


def _answers(site, addresses: list[str]) -> list[tuple[int, str]]:
    answers = []
    for address in addresses:
        answer = sign_up(site, address)
        answers.append((answer.status_code, answer.text.replace(address, "ADDRESS")))
    return answers


@pytest.mark.parametrize("double_opt_in", [True, False])
def test_the_sign_up_answer_is_the_same_for_new_pending_active_and_unsubscribed_addresses(settings, double_opt_in):
    with running_site(settings, double_opt_in=double_opt_in) as site:
        with site.core.sessions.begin() as session:
            store.add(session, "active@example.org", None, now=site.core.now(), cause="test")
            gone, _ = store.add(session, "gone@example.org", None, now=site.core.now(), cause="test")
            store.unsubscribe(session, gone, "test", now=site.core.now())
        sign_up(site, "pending@example.org")
        if not double_opt_in:
            with site.core.sessions.begin() as session:
                pending = store.find(session, "pending@example.org")
                store.set_status(session, pending, "pending", "test", site.core.now())
        answers = _answers(site, ["new@example.org", "pending@example.org", "active@example.org", "gone@example.org"])
        assert answers[0][0] == 200
        assert all(answer == answers[0] for answer in answers), [a[1] for a in answers]


# --- the token-less preview and DNS rebinding -------------------------------------------------------


def test_without_an_admin_token_the_preview_answers_only_loopback_host_names(settings):
    with running_site(settings, admin_token=None) as site:
        port = site.url.rsplit(":", 1)[1]
        for host in (f"127.0.0.1:{port}", "localhost", f"localhost:{port}", "[::1]:8000", "LOCALHOST"):
            assert site.http.get("/preview", headers={"Host": host}).status_code == 200, host
        # A page on another site whose name was rebound to 127.0.0.1 arrives from here, with its own Host.
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", "localhost.evil.example"):
            refused = site.http.get("/preview", headers={"Host": host})
            assert refused.status_code == 403, host
            assert "DIGEST_ADMIN_TOKEN" in refused.text


# --- no token in any log line -----------------------------------------------------------------------


class Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_no_signed_link_or_bearer_token_shows_in_the_access_log_or_error_log(settings, tmp_path, caplog):
    collect = Collect()
    with running_site(settings, access_log=True, api_token="api-token-never-logged") as site:
        access = logging.getLogger("uvicorn.access")
        access.addHandler(collect)
        try:
            sign_up(site, "logged@example.org")
            [link] = confirm_links(site.core.settings.outbox_dir)
            confirm = site.path(link)
            site.http.post(confirm, data={"csrf_token": CSRF.search(site.http.get(confirm).text)[1]})
            with site.core.sessions() as session:
                reader = store.find(session, "logged@example.org")
            unsubscribe, preferences = site.core.unsubscribe_url(reader), site.core.preferences_url(reader)
            site.http.get(site.path(preferences))
            site.http.get(site.path(unsubscribe))
            site.http.post(site.path(unsubscribe), data={"List-Unsubscribe": "One-Click"})
            bearer = {"Authorization": "Bearer api-token-never-logged"}
            site.http.post("/api/subscribers", json={"email": "x@example.org"}, headers=bearer)
            # Someone who never confirmed asks to come back, and their confirmation cannot be written: the
            # request is answered (the mail is queued), and the sender's failure is logged without the link.
            with site.core.sessions.begin() as session:
                never = store.sign_up(
                    session, "never@example.org", None, store.Consent("form"), now=site.core.now(), double_opt_in=True
                ).subscriber
                store.unsubscribe(session, never, "test", now=site.core.now())
            resubscribe = site.path(site.core.unsubscribe_url(never)).replace("/unsubscribe/", "/resubscribe/")
            # The API sign-up's mail may be being written by the site's sender: let it finish first.
            settle_confirmations(site.core.settings.outbox_dir)
            shutil.rmtree(site.core.settings.outbox_dir)
            site.core.settings.outbox_dir.write_text("not a folder")
            with caplog.at_level(logging.WARNING):
                assert site.http.post(resubscribe).status_code == 200
                settle_confirmations(site.core.settings.outbox_dir)
            assert any("confirmation mail to subscriber" in r.getMessage() for r in caplog.records)
        finally:
            access.removeHandler(collect)
    logged = "\n".join(collect.lines + [r.getMessage() for r in caplog.records])
    tokens = [u.rsplit("/", 1)[1] for u in (link, unsubscribe, preferences, resubscribe)]
    assert "/confirm/[token]" in logged and "/unsubscribe/[token]" in logged and "/resubscribe/[token]" in logged
    for secret in [*tokens, "api-token-never-logged"]:
        assert secret not in logged
        assert secret[-20:] not in logged  # not even the signature's end


# --- the secret key ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("test-secret-key", "is 15 characters long; it needs at least 32"),
        ("x" * 31, "is 31 characters long"),
        (next(iter(EXAMPLE_SECRET_KEYS)), "the example's value"),
        ("", "is not set"),
    ],
)
def test_a_short_or_example_secret_key_is_refused_with_what_to_do(key, words):
    with pytest.raises(ConfigError, match="DIGEST_SECRET_KEY") as refused:
        Settings(_env_file=None, secret_key=key).require_secret_key()
    assert words in str(refused.value) and "secrets.token_urlsafe" in str(refused.value)


def test_the_value_in_env_example_is_refused_and_the_tests_key_is_accepted():
    example = re.search(r"^DIGEST_SECRET_KEY=(.*)$", (ROOT / ".env.example").read_text(), re.MULTILINE)[1]
    with pytest.raises(ConfigError):
        Settings(_env_file=None, secret_key=example).require_secret_key()
    assert Settings(_env_file=None, secret_key=TEST_SECRET_KEY).require_secret_key() == TEST_SECRET_KEY


def test_digest_serve_with_a_short_secret_key_stops_at_start_with_the_reason(cli_env):
    env = {**cli_env, "DIGEST_SECRET_KEY": "short-key", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "digest.cli", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "DIGEST_SECRET_KEY" in result.stderr and "at least 32" in result.stderr


# --- files only their owner can read -----------------------------------------------------------------


def test_the_sqlite_store_and_the_outbox_are_created_for_their_owner_only(settings, tmp_path):
    folder = tmp_path / "fresh" / "var"
    sqlite_settings = {"database_url": f"sqlite:///{folder / 'digest.db'}", "outbox_dir": folder / "outbox"}
    with running_site(settings, **sqlite_settings) as site:
        sign_up(site, "private@example.org")
        settle_confirmations(site.core.settings.outbox_dir)  # the confirmation mail is written from the queue
        assert mode(folder) == 0o700
        assert mode(folder / "digest.db") == 0o600
        for extra in ("digest.db-wal", "digest.db-shm"):
            if (folder / extra).exists():
                assert mode(folder / extra) & 0o077 == 0, extra
        outbox = folder / "outbox"
        assert mode(outbox) == 0o700 and mode(outbox / "transactional") == 0o700
        [mail] = list((outbox / "transactional").glob("*.eml"))
        assert mode(mail) == 0o600


def test_make_env_file_writes_a_usable_key_into_an_owner_only_env(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    # DEMO_DIR=.: the demo folder's .env, here in tmp_path
    run = ["make", "-s", "env-file", f"BIN={os.path.dirname(sys.executable)}", "DEMO_DIR=."]
    subprocess.run(run, cwd=tmp_path, check=True, capture_output=True, timeout=60)
    env = tmp_path / ".env"
    assert mode(env) == 0o600
    key = re.search(r"^DIGEST_SECRET_KEY=(.+)$", env.read_text(), re.MULTILINE)[1]
    assert Settings(_env_file=None, secret_key=key).require_secret_key() == key
    # An existing .env that others could read is closed, and its key kept.
    env.chmod(0o644)
    subprocess.run(run, cwd=tmp_path, check=True, capture_output=True, timeout=60)
    assert mode(env) == 0o600 and key in env.read_text()


# --- the archive's page numbers ----------------------------------------------------------------------


def test_a_huge_or_odd_archive_page_number_is_404_not_500(settings):
    with running_site(settings) as site:
        assert site.http.get("/issues").status_code == 200
        for number in ("99999999999999999999", "9" * 5000, "2", "abc", "1e9", "\u0661"):
            answer = site.http.get("/issues", params={"page": number})
            assert answer.status_code == 404, number
            assert "of the archive" in answer.text


# --- logout needs its CSRF token ---------------------------------------------------------------------


def test_logout_from_another_site_without_the_csrf_token_keeps_the_editor_logged_in(settings):
    with running_site(settings, admin_token=ADMIN) as site:
        token = form_token(site, "/login")
        site.http.post("/login", data={"csrf_token": token, "token": ADMIN, "next": "/preview"})
        assert site.http.get("/preview").status_code == 200
        forged = site.http.post("/logout", data={})
        assert forged.status_code == 400
        assert site.http.get("/preview").status_code == 200
        assert site.http.post("/logout", data={"csrf_token": token}).status_code == 303
        assert site.http.get("/preview").status_code == 401


# --- a crash between claiming and sending the confirmation -------------------------------------------

CRASH = """
import os, signal
from digest.core import build_core
from subscribers import confirmation, signup, store

core = build_core()
signup.sign_up(core.opt_in(), "crashed@example.org", None, store.Consent("form"))
# The sender dies after claiming the queued mail, while the provider has it: it may or may not be out.
core.provider.send_transactional = lambda message: os.kill(os.getpid(), signal.SIGKILL)
confirmation.send_due(core.opt_in())
"""


def test_a_confirmation_whose_sender_died_mid_send_is_never_sent_again_and_a_new_sign_up_gets_one(settings, cli_env):
    env = {**cli_env, "PYTHONPATH": str(ROOT)}
    crashed = subprocess.run([sys.executable, "-c", CRASH], env=env, capture_output=True, timeout=60)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    later = confirmation.SENDING_LEASE + timedelta(minutes=1)
    with running_site(settings, clock=lambda: utcnow() + later) as site:
        assert status_of(site, "crashed@example.org") == "pending"
        # Past the lease, the abandoned mail is of unknown fate: not sent again by any sender.
        assert confirm_links(site.core.settings.outbox_dir) == []
        with site.core.sessions() as session:
            assert session.scalars(select(ConfirmationMail.status)).all() == ["unknown"]

        assert sign_up(site, "crashed@example.org").status_code == 200
        assert len(confirm_links(site.core.settings.outbox_dir)) == 1
        # The mail went out this time, so the resend limit holds again.
        sign_up(site, "crashed@example.org")
        assert len(confirm_links(site.core.settings.outbox_dir)) == 1
