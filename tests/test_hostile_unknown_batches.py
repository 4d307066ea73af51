"""SendGrid accepts a batch and its answer never comes back: the batch is of unknown fate, is never sent
again by itself, and is settled without guessing, by SendGrid's signed events naming it or by hand.

The real `digest send` runs against the fake SendGrid on loopback ("accept, then never answer"); the
settling events go through the real /webhooks/sendgrid of a running site on the same store."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from digest.config import DeliveryConfig, Settings, load_newsletter
from digest.core import build_core
from digest.delivery.providers.sendgrid_api import SendGridProvider
from digest.delivery.run import deliver
from digest.errors import FailureKind, ProviderError
from digest.store.models import Batch, Delivery, Issue
from tests.cli_helpers import CliResult
from tests.conftest import EXAMPLE_CONFIG, SAMPLE_WEEK
from tests.fakes.seed import address, make_issue, seed_subscribers, sendgrid_send_env
from tests.fakes.sendgrid import FakeSendGrid, WebhookSigner, post_events
from tests.test_delivery_sendgrid import ISSUE, recipient
from tests.test_send_crash import run_send
from tests.web_site import running_site

ALL = [address(i) for i in range(1, 301)]
HUNG = ("accept_then_hang", 30)
TOKEN = "editor-token-for-the-unknown-batches"


@pytest.fixture
def fake():
    with FakeSendGrid() as server:
        yield server


@pytest.fixture
def env(cli_env, settings, fake, tmp_path):
    """300 subscribers, the sample week's issue rendered, batches of 100, a 1 s answer timeout."""
    return sendgrid_send_env(cli_env, settings, fake, tmp_path, subscribers=300, timeout_seconds=1)


def flat(text: str) -> str:
    return " ".join(text.split())


def store_state(settings) -> dict:
    core = build_core(settings, load_newsletter(EXAMPLE_CONFIG), migrate=False)
    with core.sessions() as session:
        batches = dict(session.execute(select(Batch.number, Batch.status)).all())
        deliveries = session.execute(
            select(Batch.number, Delivery.status, Delivery.message_id).join(Batch, Batch.id == Delivery.batch_id)
        ).all()
        issue = session.scalars(select(Issue.status)).one()
    core.close()
    return {"batches": batches, "deliveries": deliveries, "issue": issue}


def send_with_one_hung_batch(env, fake, tmp_path) -> CliResult:
    fake.set_schedule(lambda n: HUNG if n == 2 else "accept")
    first = run_send(env, tmp_path)
    assert first.returncode == 1, first.stderr
    return first


def test_an_accepted_batch_whose_answer_never_came_is_unknown_and_never_sent_again(env, fake, settings, tmp_path):
    first = send_with_one_hung_batch(env, fake, tmp_path)
    report = flat(first.stderr)
    assert "batch 2 (100 recipients) is in an unknown state" in report
    assert "SendGrid did not answer within 1s after the request was sent" in report
    assert f"digest send --week {SAMPLE_WEEK} --mark-sent 2" in report and "--retry-unknown" in report
    assert "this send 300 recipients in 3 batches: sent 200, failed 0, skipped 0, unknown 100" in first.stdout
    assert "the issue 300 recipients in 3 batches: sent 200, failed 0, skipped 0, unknown 100" in first.stdout
    assert fake.requests == 3  # the hung request was not retried
    assert store_state(settings)["batches"] == {1: "submitted", 2: "submitting", 3: "submitted"}

    again = run_send(env, tmp_path, "--resume")
    assert again.returncode == 1 and "batch 2 (100 recipients) is in an unknown state" in flat(again.stderr)
    assert fake.requests == 3
    assert sorted(fake.emails) == ALL and fake.duplicates == {}  # SendGrid had taken batch 2: everyone once


def test_sendgrids_signed_events_for_the_batch_settle_it(env, fake, settings, tmp_path):
    send_with_one_hung_batch(env, fake, tmp_path)
    hung = next(a for a in fake.accepted if a.request == 2)
    signer = WebhookSigner()
    with running_site(settings, sendgrid_webhook_public_key=signer.public_b64) as site:
        # SendGrid reports on every request it accepted; only batch 2 had an unknown fate.
        answers = post_events(site.url, signer, fake.events(["processed", "delivered"]), chunk=250)
        assert all(a.status_code == 200 for a in answers)
        assert sum(a.json()["batches_settled"] for a in answers) == 1
        replay = post_events(site.url, signer, fake.events(["processed"], requests=[2]))
        assert replay[0].json()["batches_settled"] == 0
    state = store_state(settings)
    assert state["batches"] == {1: "submitted", 2: "submitted", 3: "submitted"} and state["issue"] == "sent"
    batch_2 = [(status, message) for number, status, message in state["deliveries"] if number == 2]
    assert batch_2 == [("sent", hung.message_id)] * 100

    resumed = run_send(env, tmp_path, "--resume")
    assert resumed.returncode == 0 and "was already sent to 300 recipients" in resumed.stdout
    assert fake.requests == 3 and sorted(fake.emails) == ALL and fake.duplicates == {}


def test_events_that_do_not_prove_the_batch_was_accepted_settle_nothing(env, fake, settings, tmp_path):
    send_with_one_hung_batch(env, fake, tmp_path)
    [event] = fake.events(["processed"], requests=[2])[:1]
    signer = WebhookSigner()
    with running_site(settings, sendgrid_webhook_public_key=signer.public_b64) as site:
        with site.core.sessions() as session:
            done_batch = session.scalar(select(Batch.id).where(Batch.number == 1))
        forged = [
            {**event, "event": "open", "sg_event_id": "a"},  # engagement is not SendGrid's word on the request
            {**event, "issue_id": str(int(event["issue_id"]) + 1), "sg_event_id": "b"},  # another issue's
            {**event, "batch_id": "not a number", "sg_event_id": "c"},
            {**event, "batch_id": str(done_batch), "issue_id": event["issue_id"], "sg_event_id": "d"},
        ]
        [unsigned] = post_events(site.url, None, [event])
        assert unsigned.status_code == 403
        [answer] = post_events(site.url, signer, forged)
        assert answer.status_code == 200 and answer.json()["batches_settled"] == 0
        assert store_state(settings)["batches"][2] == "submitting"
        [deferred] = post_events(site.url, signer, [{**event, "event": "deferred", "sg_event_id": "e"}])
        assert deferred.json()["batches_settled"] == 1
    assert store_state(settings)["batches"][2] == "submitted"


def test_the_operator_settles_an_unknown_batch_with_mark_sent(env, fake, settings, tmp_path):
    send_with_one_hung_batch(env, fake, tmp_path)
    wrong = run_send(env, tmp_path, "--mark-sent", "1")
    assert wrong.returncode == 2 and "batch 1 of issue 2026-W48 is submitted, not of unknown fate" in flat(wrong.stderr)
    missing = run_send(env, tmp_path, "--mark-sent", "9")
    assert missing.returncode == 2 and "has no batch 9" in missing.stderr

    marked = run_send(env, tmp_path, "--mark-sent", "2")
    assert marked.returncode == 0, marked.stderr
    assert "batch 2 of issue 2026-W48 marked submitted; 100 recipients recorded as sent" in flat(marked.stdout)
    state = store_state(settings)
    assert set(state["batches"].values()) == {"submitted"} and state["issue"] == "sent"
    assert {status for _, status, _ in state["deliveries"]} == {"sent"}
    assert fake.requests == 3 and sorted(fake.emails) == ALL and fake.duplicates == {}


def test_retry_unknown_states_its_risk_before_sending_again(env, fake, tmp_path):
    help_text = flat(run_send({**env, "COLUMNS": "400"}, tmp_path, "--help").stdout)
    assert "RISK" in help_text and "its recipients get the issue twice" in help_text
    send_with_one_hung_batch(env, fake, tmp_path)
    again = run_send(env, tmp_path, "--resume", "--retry-unknown")
    assert "anyone they had already reached gets the issue a second time" in flat(again.stderr)
    assert len(fake.duplicates) == 100  # what the warning warned of: SendGrid had taken batch 2


def test_the_preview_says_which_batches_are_unknown_and_what_to_do(env, fake, settings, tmp_path):
    send_with_one_hung_batch(env, fake, tmp_path)
    with running_site(settings, admin_token=TOKEN) as site:
        page = flat(site.http.get("/preview/2026-w48", headers={"Authorization": f"Bearer {TOKEN}"}).text)
    assert "1 batch of unknown fate" in page and "batch 2: 100 recipients" in page
    assert f"digest send --week {SAMPLE_WEEK} --mark-sent 2" in page


def sendgrid_core(settings: Settings, fake: FakeSendGrid):
    config = load_newsletter(EXAMPLE_CONFIG)
    delivery = DeliveryConfig(batch_size=10, request_timeout_seconds=2, backoff_seconds=0.01)
    values = {**settings.model_dump(), "provider": "sendgrid", "sendgrid_api_host": fake.url}
    values["sendgrid_api_key"] = fake.api_key
    return build_core(Settings(_env_file=None, **values), config.model_copy(update={"delivery": delivery}))


def test_events_that_arrive_while_the_sender_still_waits_count_the_batch_as_sent(settings, fake):
    fake.set_schedule(lambda n: HUNG if n == 1 else "accept")
    core = sendgrid_core(settings, fake)
    with core.sessions.begin() as session:
        seed_subscribers(session, 20)
        issue = make_issue(session)
    signer = WebhookSigner()
    with running_site(settings, sendgrid_webhook_public_key=signer.public_b64) as site:

        def report_when_accepted():
            assert fake.wait_for_requests(1)
            while not fake.accepted:
                threading.Event().wait(0.01)
            post_events(site.url, signer, fake.events(["processed"]))

        reporter = threading.Thread(target=report_when_accepted)
        reporter.start()
        _, report = deliver(core.mailer(), issue, sleep=lambda s: None)
        reporter.join(10)
    core.close()
    assert report.sent == 20 and report.unknown == [] and fake.requests == 2
    assert sorted(fake.emails) == [address(i) for i in range(1, 21)]


def test_only_a_request_that_may_have_arrived_is_unknown(fake):
    """Refused before sending: nothing arrived, retry. Answered 5xx: refused whole, retry. Connection
    broken after the request went: it may have been accepted, never retry."""
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    kinds = []
    for host, schedule in [(f"http://127.0.0.1:{port}", []), (fake.url, [503]), (fake.url, ["drop"])]:
        fake.set_schedule(schedule)
        with pytest.raises(ProviderError) as caught:
            SendGridProvider(fake.api_key, host=host, timeout=2).send_batch(ISSUE, [recipient(1)], batch_id=1)
        kinds.append(caught.value.kind)
    assert kinds == [FailureKind.TRANSIENT, FailureKind.TRANSIENT, FailureKind.UNKNOWN]
