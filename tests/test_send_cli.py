"""`digest send` options on the outbox provider: the dry run stores and sends nothing, --test mails one
address marked [TEST] and records nothing, the outbox files parse, transactional mail has its folder."""

from __future__ import annotations

import email
import re
from email import policy
from email.message import EmailMessage

import pytest
from sqlalchemy import func, select, update

from digest.delivery.plan import plan_batches
from digest.delivery.providers.outbox import OutboxProvider
from digest.store.models import Batch, Delivery, Issue, utcnow
from tests.cli_helpers import run_cli
from tests.conftest import SAMPLE_WEEK
from tests.fakes.seed import address, make_issue, seed_subscribers
from tests.planned import planned


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


SUMMARY = re.compile(
    r"issue (?P<week>\S+): this send (?P<this>\d+) recipients? in (?P<this_batches>\d+) batch(es)?: "
    r"sent (?P<sent>\d+), failed (?P<failed>\d+), skipped (?P<skipped>\d+), unknown (?P<unknown>\d+) \(.*?\); "
    r"the issue (?P<planned>\d+) recipients? in (?P<batches>\d+) batch(es)?: sent (?P<all_sent>\d+), "
    r"failed (?P<all_failed>\d+), skipped (?P<all_skipped>\d+), unknown (?P<all_unknown>\d+), "
    r"not sent yet (?P<not_sent>\d+)"
)


def summary_of(stdout: str) -> dict[str, int]:
    [line] = [line for line in stdout.splitlines() if line.startswith("issue ") and "this send" in line]
    found = SUMMARY.fullmatch(line)
    assert found, line
    return {key: int(value) for key, value in found.groupdict().items() if value and value.isdigit()}


def test_the_send_summary_is_one_line_whose_numbers_add_up_and_match_the_store(store, send):
    from subscribers import store as audience_store
    from subscribers.models import Subscriber

    with store.sessions.begin() as session:
        issue = session.scalars(select(Issue)).one()
        plan_batches(session, store.audience, issue, batch_size=1000, now=utcnow())
        # Batch 1's answer was lost in an earlier send; five readers of batch 2 left since the plan.
        session.execute(update(Batch).where(Batch.number == 1).values(status="submitting"))
        second = [person for number, person in planned(session) if number == 2]
        leaving = session.scalars(select(Subscriber).where(Subscriber.id.in_(second[:5]))).all()
        for subscriber in leaving:
            audience_store.unsubscribe(session, subscriber, "test", now=utcnow())
    result = send("--resume")
    assert result.returncode == 1  # batch 1 still waits for the operator
    figures = summary_of(result.stdout)
    assert figures["this"] == 500 and figures["this_batches"] == 1
    assert (figures["sent"], figures["failed"], figures["skipped"], figures["unknown"]) == (495, 0, 5, 0)
    assert figures["sent"] + figures["failed"] + figures["skipped"] + figures["unknown"] == figures["this"]
    assert (figures["planned"], figures["batches"]) == (1500, 2)
    assert (figures["all_sent"], figures["all_skipped"], figures["all_unknown"], figures["not_sent"]) == (
        495,
        5,
        1000,
        0,
    )
    parts = ("all_sent", "all_failed", "all_skipped", "all_unknown", "not_sent")
    assert sum(figures[p] for p in parts) == figures["planned"]
    with store.sessions() as session:
        by_status = dict(session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())
        unknown = session.scalars(select(Batch.recipients).where(Batch.number == 1, Batch.members.is_not(None))).one()
    # Batch 1's readers are still its members, not rows: nobody knows yet whether they were mailed.
    assert by_status == {"sent": 495, "skipped": 5} and unknown == 1000


def test_a_first_send_says_the_same_numbers_for_the_send_and_the_issue(store, send):
    result = send()
    assert result.returncode == 0, result.stderr
    figures = summary_of(result.stdout)
    assert figures["this"] == figures["planned"] == figures["sent"] == figures["all_sent"] == 1500
    assert figures["this_batches"] == figures["batches"] == 2
