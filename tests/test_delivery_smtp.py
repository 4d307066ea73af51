"""The SMTP provider against a real aiosmtpd server on loopback: STARTTLS with a certificate made
for the test, a login, one connection per batch, one message per recipient, refusals one by one."""

from __future__ import annotations

import asyncio
import email
import socket
import ssl
import subprocess
from email import policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlalchemy import select

from digest.config import DeliveryConfig, Settings, load_newsletter
from digest.core import build_core
from digest.delivery.providers.smtp import SMTPProvider, SMTPServer
from digest.delivery.run import deliver
from digest.errors import ConfigError, FailureKind, ProviderError
from digest.store.models import Delivery
from tests.conftest import EXAMPLE_CONFIG, TEST_SECRET_KEY
from tests.fakes.seed import address, make_issue, seed_subscribers


def free_port() -> int:
    # aiosmtpd checks readiness by connecting to its port, so it cannot be given port 0.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mailbox:
    def __init__(self, refuse: set[str] = frozenset()):
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.logins = 0
        self.refuse = refuse

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"digest" and auth_data.password == b"s3cret"
        self.logins += ok
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535 itself


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def smtp_server(certificate, monkeypatch):
    cert, key = certificate
    # The client trusts the test's certificate the way it would trust a real one: through the CA file.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    mailbox = Mailbox(refuse={address(4)})
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=context,
        require_starttls=True,
        authenticator=mailbox.authenticate,
        auth_require_tls=True,
    )
    controller.start()
    yield mailbox, f"smtp://digest:s3cret@127.0.0.1:{controller.port}"
    controller.stop()


def smtp_core(settings: Settings, url: str, batch_size: int = 3):
    values = {**settings.model_dump(), "secret_key": TEST_SECRET_KEY, "provider": "smtp", "smtp_url": url}
    config = load_newsletter(EXAMPLE_CONFIG).model_copy(update={"delivery": DeliveryConfig(batch_size=batch_size)})
    return build_core(Settings(_env_file=None, **values), config)


def test_an_issue_goes_out_over_starttls_one_connection_per_batch(settings, smtp_server):
    mailbox, url = smtp_server
    core = smtp_core(settings, url)
    with core.sessions.begin() as session:
        seed_subscribers(session, 7)
        issue = make_issue(session)
    planned, report = deliver(core.mailer(), issue)

    assert planned == 3  # 7 recipients in batches of 3
    assert mailbox.logins == 3  # one connection (and login) per batch
    assert sorted(r for rcpts, _ in mailbox.messages for r in rcpts) == [address(i) for i in (1, 2, 3, 5, 6, 7)]
    assert report.sent == 6 and report.failed == 1  # the refused address fails alone
    for rcpts, message in mailbox.messages:
        assert message["To"].addresses[0].addr_spec == rcpts[0]
        assert str(message["List-Unsubscribe"]).startswith("<https://news.example.org/unsubscribe/")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
        assert "Café diplomacy" in message.get_body(("plain",)).get_content()
        assert "%%" not in message.get_body(("html",)).get_content()
    with core.sessions() as session:
        rows = dict(session.execute(select(Delivery.subscriber_id, Delivery.status)).all())
        message_ids = session.scalars(select(Delivery.message_id).where(Delivery.status == "sent")).all()
    core.close()
    assert rows[4] == "failed" and {s for k, s in rows.items() if k != 4} == {"sent"}
    assert sorted(message_ids) == sorted(str(m["Message-ID"]) for _, m in mailbox.messages)


def test_a_wrong_password_stops_with_a_pointer_to_the_setting(settings, smtp_server):
    _, url = smtp_server
    provider = SMTPProvider(url.replace("s3cret", "wrong"))
    with pytest.raises(ProviderError, match="check the user and password in DIGEST_SMTP_URL") as caught:
        provider.connect()
    assert caught.value.kind is FailureKind.STOP


def test_a_transactional_message_goes_through_smtp(smtp_server):
    mailbox, url = smtp_server
    message = EmailMessage()
    message["From"] = "The Meridian Review <weekly@meridian-review.example.org>"
    message["To"] = "new.reader@example.org"
    message["Subject"] = "Confirm your subscription"
    message.set_content("Click to confirm: https://news.example.org/confirm/abc")
    message_id = SMTPProvider(url).send_transactional(message)
    assert message_id and message_id.endswith("@meridian-review.example.org>")
    [(rcpts, received)] = mailbox.messages
    assert rcpts == ["new.reader@example.org"] and str(received["Message-ID"]).strip() == message_id


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://u:p%40ss@mail.example.org", SMTPServer("mail.example.org", 587, "starttls", "u", "p@ss")),
        ("smtps://u:p@mail.example.org", SMTPServer("mail.example.org", 465, "ssl", "u", "p")),
        ("smtp://127.0.0.1:2525?tls=none", SMTPServer("127.0.0.1", 2525, "none", None, None)),
    ],
)
def test_the_smtp_url_names_server_port_tls_and_credentials(url, expected):
    assert SMTPServer.from_url(url) == expected


def test_a_bad_smtp_url_names_the_setting():
    with pytest.raises(ConfigError, match="DIGEST_SMTP_URL"):
        SMTPServer.from_url("http://mail.example.org")


class SlowToAnswer(Mailbox):
    """Takes every message, but answers the one for `address` only after the client has given up."""

    def __init__(self, address: str, seconds: float):
        super().__init__()
        self.address, self.seconds = address, seconds

    async def handle_DATA(self, server, session, envelope):
        answer = await super().handle_DATA(server, session, envelope)
        if self.address in envelope.rcpt_tos:
            await asyncio.sleep(self.seconds)
        return answer


def test_a_message_whose_answer_never_came_is_not_sent_again_and_the_rest_go(settings):
    mailbox = SlowToAnswer(address(2), seconds=3)
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        values = {
            **settings.model_dump(),
            "provider": "smtp",
            "smtp_url": f"smtp://127.0.0.1:{controller.port}?tls=none",
        }
        delivery = DeliveryConfig(batch_size=5, request_timeout_seconds=1, backoff_seconds=0.01)
        config = load_newsletter(EXAMPLE_CONFIG).model_copy(update={"delivery": delivery})
        core = build_core(Settings(_env_file=None, **values), config)
        with core.sessions.begin() as session:
            seed_subscribers(session, 5)
            issue = make_issue(session)
        _, report = deliver(core.mailer(), issue)
        # A resume, even one that re-sends batches of unknown fate, has nobody left to mail.
        _, again = deliver(core.mailer(), issue, resume=True, retry_unknown=True)
        with core.sessions() as session:
            outcome = {s: (status, error) for s, status, error in session.execute(
                select(Delivery.subscriber_id, Delivery.status, Delivery.error))}  # fmt: skip
        core.close()
    finally:
        controller.stop()

    # The server took reader 2's message once (its answer was lost), and everyone else's once.
    received = sorted(r for rcpts, _ in mailbox.messages for r in rcpts)
    assert received == [address(i) for i in range(1, 6)]
    assert report.sent == 4 and report.failed == 1 and again.sent == 0
    assert outcome[2][0] == "failed" and "may have been delivered" in outcome[2][1]
    assert {outcome[i][0] for i in (1, 3, 4, 5)} == {"sent"}
