"""`digest send` options on the outbox provider: the dry run stores and sends nothing, --test mails one
address marked [TEST] and records nothing, the outbox files parse, transactional mail has its folder."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage

import pytest
from sqlalchemy import func, select

from digest.delivery.providers.outbox import OutboxProvider
from digest.store.models import Batch, Delivery
from tests.cli_helpers import run_cli
from tests.conftest import SAMPLE_WEEK
from tests.fakes.seed import address, make_issue, seed_subscribers


@pytest.fixture
def store(core):
    with core.sessions.begin() as session:
        seed_subscribers(session, 1500)
        make_issue(session, SAMPLE_WEEK)
    return core


@pytest.fixture
def send(cli_env, tmp_path):
    """`digest send --week SAMPLE_WEEK ARGS` against the store, in tmp_path."""
    return lambda *args: run_cli(["send", "--week", SAMPLE_WEEK, *args], cli_env, tmp_path)


def counts(core) -> tuple[int, int]:
    with core.sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(Batch)),
            session.scalar(select(func.count()).select_from(Delivery)),
        )


def test_dry_run_prints_the_plan_and_sends_nothing(store, send, tmp_path):
    result = send("--dry-run")
    assert result.returncode == 0, result.stderr
    printed = result.stdout
    assert "would plan: 1500 recipients in 2 batches (nothing stored)" in printed
    assert "first batch to send: 1000 recipients," in printed and "bytes of payload" in printed
    assert counts(store) == (0, 0)
    assert not (tmp_path / "outbox").exists()


def test_test_send_marks_the_subject_and_records_no_delivery(store, send, tmp_path):
    result = send("--test", "Editor@Example.org")
    assert result.returncode == 0, result.stderr
    assert "test message of 2026-W48 sent to Editor@Example.org via outbox" in result.stdout
    [path] = (tmp_path / "outbox" / "2026-w48").glob("*.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert message["Subject"].startswith("[TEST] The Meridian Review")
    assert message["To"].addresses[0].addr_spec == "editor@example.org"
    assert "%%" not in message.get_body(("html",)).get_content()
    assert counts(store) == (0, 0)


def test_send_to_the_outbox_writes_files_that_parse_and_a_second_send_does_nothing(store, send, tmp_path):
    result = send()
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "sent 1500, failed 0, skipped 0, unknown 0" in out
    files = sorted((tmp_path / "outbox" / "2026-w48").glob("*.eml"))
    assert len(files) == 1500
    recipients = []
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        recipients.append(message["To"].addresses[0].addr_spec)
    assert sorted(recipients) == [address(i) for i in range(1, 1501)]
    again = send()
    assert again.returncode == 0, again.stderr
    assert "was already sent to 1500 recipients; nothing to do" in again.stdout
    assert len(list((tmp_path / "outbox" / "2026-w48").glob("*.eml"))) == 1500


def test_retry_unknown_needs_resume(store, send):
    result = send("--retry-unknown")
    assert result.returncode == 2
    assert result.stderr == "digest: error: --retry-unknown goes with --resume\n"


def test_a_transactional_message_lands_in_the_outbox_transactional_folder(tmp_path):
    message = EmailMessage()
    message["From"] = "weekly@meridian-review.example.org"
    message["To"] = "new.reader@example.org"
    message["Subject"] = "Confirm your subscription"
    message.set_content("Confirm: https://news.example.org/confirm/abc")
    message_id = OutboxProvider(tmp_path).send_transactional(message)
    [path] = (tmp_path / "transactional").glob("*.eml")
    parsed = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert str(parsed["Message-ID"]).strip() == message_id and parsed["Subject"] == "Confirm your subscription"
