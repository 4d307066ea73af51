"""One error tree: every error the digest raises is a DigestError whose class says its exit code and
HTTP status, and the CLI and the web app each turn it into an answer in one place."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from digest.cli import main
from digest.core import build_core
from digest.errors import (
    ConfigError,
    DeliveryError,
    DigestError,
    NothingToSend,
    ProviderError,
    TemplateError,
    UsageError,
)
from digest.gather.fetch import FetchError, RefusedFetch
from digest.web.app import create_app
from subscribers.events import BadEvents, SignatureError
from subscribers.store import InvalidAddress, InvalidInput, InvalidName
from subscribers.tokens import BadToken
from tests.conftest import EXAMPLE_CONFIG
from tests.fakes.seed import make_issue

TREE = {
    # class: (exit code, HTTP status)
    DigestError: (1, 503),
    UsageError: (2, 400),
    ConfigError: (2, 503),
    InvalidInput: (2, 422),
    InvalidAddress: (2, 422),
    InvalidName: (2, 422),
    BadToken: (2, 400),
    SignatureError: (2, 403),
    BadEvents: (2, 400),
    FetchError: (1, 502),
    RefusedFetch: (1, 502),
    ProviderError: (1, 502),
    TemplateError: (1, 500),
    NothingToSend: (1, 404),
    DeliveryError: (1, 503),
}


@pytest.mark.parametrize("error", list(TREE), ids=lambda e: e.__name__)
def test_every_error_is_a_digest_error_with_its_exit_code_and_status(error):
    assert issubclass(error, DigestError)
    assert (error.exit_code, error.http_status) == TREE[error]


def raising(error: DigestError):
    def route():
        raise error

    return route


@pytest.fixture
def client(settings):
    from digest.config import load_newsletter

    core = build_core(settings, load_newsletter(EXAMPLE_CONFIG))
    app = create_app(core)
    app.add_api_route("/boom/token", raising(BadToken("this link was altered")))
    app.add_api_route("/boom/provider", raising(ProviderError("SendGrid failed (502): bad gateway")))
    app.add_api_route("/api/boom/input", raising(InvalidAddress("the address has a line break in it")))
    app.add_api_route("/webhooks/boom", raising(SignatureError("the request is not signed")))
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as http:
        yield http
    core.close()


def test_the_web_app_answers_each_error_with_its_own_status_and_words(client):
    token = client.get("/boom/token")
    assert token.status_code == 400
    assert "This link is not valid" in token.text and "This link was altered." in token.text

    provider = client.get("/boom/provider")
    assert provider.status_code == 502 and "Something went wrong on our side" in provider.text

    # Under /api/ and /webhooks/ the same errors are JSON.
    api = client.get("/api/boom/input")
    assert api.status_code == 422 and api.json() == {"error": "the address has a line break in it"}
    assert client.get("/webhooks/boom").status_code == 403


def test_the_cli_turns_a_provider_error_into_one_line_and_its_exit_code(monkeypatch, capsys, cli_env, core):
    with core.sessions.begin() as session:
        make_issue(session, "2026-W48")
    for key, value in cli_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DIGEST_SMTP_URL", "smtp://127.0.0.1:1?tls=none")  # nothing listens on port 1
    monkeypatch.setenv("DIGEST_PROVIDER", "smtp")
    # A provider error raised deep in the send path reaches the user as one line, not a traceback.
    code = main(["send", "--test", "reader@example.org", "--week", "2026-W48"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.startswith("digest: error: the test message to reader@example.org was not sent: ")
    assert "cannot reach the SMTP server 127.0.0.1:1" in err and "Traceback" not in err
