"""Sending through a fake SendGrid that fails on a schedule: every recipient exactly once, retries
that wait as told, failures that fail only their batch, a threshold that pauses, a 401 that stops."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from digest.config import DeliveryConfig, Settings, load_newsletter
from digest.core import build_core
from digest.delivery.lock import SendInProgress, send_lock
from digest.delivery.run import deliver
from digest.errors import DeliveryError
from digest.store.models import Batch, Delivery, Issue
from subscribers.models import Subscriber, Suppression
from subscribers.store import email_hash
from tests.conftest import EXAMPLE_CONFIG, TEST_SECRET_KEY
from tests.fakes.seed import address, make_issue, seed_subscribers
from tests.fakes.sendgrid import FakeSendGrid, every


@pytest.fixture
def fake():
    with FakeSendGrid() as server:
        yield server


def sendgrid_core(settings: Settings, fake: FakeSendGrid, **delivery):
    options = {"batch_size": 100, "backoff_seconds": 0.01, "backoff_max_seconds": 0.05, **delivery}
    config = load_newsletter(EXAMPLE_CONFIG)
    config = config.model_copy(update={"delivery": DeliveryConfig(**options)})
    values = {**settings.model_dump(), "secret_key": TEST_SECRET_KEY}
    values.update(provider="sendgrid", sendgrid_api_key=fake.api_key, sendgrid_api_host=fake.url)
    return build_core(Settings(_env_file=None, **values), config)


def prepare(core, subscribers: int) -> Issue:
    with core.sessions.begin() as session:
        seed_subscribers(session, subscribers)
        return make_issue(session)


def statuses(core, issue) -> dict[str, int]:
    with core.sessions() as session:
        return dict(
            session.execute(
                select(Batch.status, func.count()).where(Batch.issue_id == issue.id).group_by(Batch.status)
            ).all()
        )


def test_five_thousand_recipients_each_once_while_a_fifth_of_requests_fail(settings, fake):
    # Every fifth request fails with an answer: 429, 500 or 503 in turn. (A dropped connection is not
    # retried: SendGrid may have accepted the request; see test_hostile_unknown_batches.py.)
    fake.set_schedule(every(5, [429, 500, 503]))
    core = sendgrid_core(settings, fake)
    issue = prepare(core, 5000)
    waits: list[float] = []
    planned, report = deliver(core.mailer(), issue, sleep=waits.append)
    core.close()

    assert planned == 50
    assert fake.violations == []
    assert fake.duplicates == {}
    assert sorted(fake.emails) == [address(i) for i in range(1, 5001)]
    assert report.sent == 5000 and report.failed == 0 and not report.failed_batches
    failures = [a for a in fake.answers if a != "accept"]
    assert len(failures) >= 10 and {429, 500, 503} <= set(failures)
    assert len(waits) == len(failures)  # one wait before each retry
    assert statuses(core, issue) == {"submitted": 50}
    with core.sessions() as session:
        assert session.scalar(select(Issue.status).where(Issue.id == issue.id)) == "sent"
        sent = session.execute(select(Delivery.status, Delivery.message_id)).all()
    assert {s for s, _ in sent} == {"sent"}
    # Each delivery carries the X-Message-Id of the request that took it.
    assert {m for _, m in sent} == {a.message_id for a in fake.accepted}


def test_a_429_waits_until_the_rate_limit_resets(settings, fake):
    fake.set_schedule(lambda n: 429 if n == 1 else "accept")
    fake.rate_limit_reset_in = 3
    core = sendgrid_core(settings, fake)
    issue = prepare(core, 10)
    waits: list[float] = []
    deliver(core.mailer(), issue, sleep=waits.append)
    core.close()
    assert len(waits) == 1 and 1.5 < waits[0] <= 3.0  # X-RateLimit-Reset is a whole second 3s ahead
    assert sorted(fake.emails) == [address(i) for i in range(1, 11)]


def test_a_refused_batch_fails_with_sendgrids_message_and_the_others_go(settings, fake):
    fake.set_schedule(lambda n: 400 if n == 2 else (413 if n == 4 else "accept"))
    core = sendgrid_core(settings, fake)
    issue = prepare(core, 500)
    _, report = deliver(core.mailer(), issue, sleep=lambda s: None)
    core.close()
    assert [n for n, _ in report.failed_batches] == [2, 4]
    assert "does not match a verified Sender Identity" in report.failed_batches[0][1]
    assert "(413)" in report.failed_batches[1][1] and "too large" in report.failed_batches[1][1]
    assert report.sent == 300 and report.failed == 200
    assert statuses(core, issue) == {"submitted": 3, "failed": 2}
    with core.sessions() as session:
        errors = session.scalars(select(Batch.error).where(Batch.status == "failed").order_by(Batch.number)).all()
    assert "SendGrid refused the request (400)" in errors[0]


def test_a_5xx_that_does_not_stop_fails_the_batch_after_the_retries(settings, fake):
    fake.set_schedule(lambda n: 500 if n <= 4 else "accept")  # batch 1: first try and 3 retries fail
    core = sendgrid_core(settings, fake, retries=3)
    issue = prepare(core, 150)
    waits: list[float] = []
    _, report = deliver(core.mailer(), issue, sleep=waits.append)
    core.close()
    assert report.failed_batches == [(1, "SendGrid failed (500): simulated failure")]
    assert len(waits) == 3  # backoff with jitter: each wait between half and all of 0.01, 0.02, 0.04 s
    assert [0.005 <= waits[0] <= 0.01, 0.01 <= waits[1] <= 0.02, 0.02 <= waits[2] <= 0.04] == [True] * 3
    assert sorted(fake.emails) == [address(i) for i in range(101, 151)]


def test_too_many_failed_batches_pause_the_send_and_resume_finishes_it(settings, fake):
    failing = {"on": True}
    fake.set_schedule(lambda n: 400 if failing["on"] else "accept")
    core = sendgrid_core(settings, fake, max_failed_batches=2)
    issue = prepare(core, 1000)
    _, report = deliver(core.mailer(), issue, sleep=lambda s: None)
    assert report.paused and len(report.failed_batches) == 3
    assert statuses(core, issue) == {"failed": 3, "pending": 7}
    assert fake.emails == []

    failing["on"] = False
    _, again = deliver(core.mailer(), issue, resume=True, sleep=lambda s: None)
    core.close()
    assert not again.paused and again.sent == 1000
    assert sorted(fake.emails) == [address(i) for i in range(1, 1001)]
    assert statuses(core, issue) == {"submitted": 10}


def test_a_401_stops_the_whole_send_and_names_the_setting(settings, fake):
    core = sendgrid_core(settings, fake)
    issue = prepare(core, 300)
    fake.api_key = "SG.another-key"  # the server no longer accepts ours
    with pytest.raises(DeliveryError, match="check DIGEST_SENDGRID_API_KEY"):
        deliver(core.mailer(), issue, sleep=lambda s: None)
    assert fake.requests == 0 and fake.emails == []
    assert statuses(core, issue) == {"pending": 3}  # nothing lost: all can go once the key is fixed
    fake.api_key = core.settings.sendgrid_api_key.get_secret_value()
    deliver(core.mailer(), issue, resume=True, sleep=lambda s: None)
    core.close()
    assert len(fake.emails) == 300 and fake.duplicates == {}


def test_a_timeout_after_the_request_was_sent_is_unknown_and_not_retried(settings, fake):
    fake.set_schedule(lambda n: ("hang", 2.0) if n == 1 else "accept")
    core = sendgrid_core(settings, fake, request_timeout_seconds=0.3, batch_size=10)
    issue = prepare(core, 20)
    _, report = deliver(core.mailer(), issue, sleep=lambda s: None)
    core.close()
    assert fake.requests == 2  # batch 1 was not sent again; batch 2 went
    assert report.sent == 10 and report.failed == 0 and report.unknown_batches == [1]
    assert "did not answer within 0.3s after the request was sent" in report.unknown[0].reason
    assert statuses(core, issue) == {"submitting": 1, "submitted": 1}


def test_people_who_leave_after_the_plan_are_not_mailed(settings, fake):
    core = sendgrid_core(settings, fake, batch_size=10)
    issue = prepare(core, 30)
    gate = threading.Event()
    first_batch_done = threading.Event()

    def on_batch(progress):
        if progress.number == 1:
            first_batch_done.set()
            gate.wait(10)

    worker = threading.Thread(target=lambda: deliver(core.mailer(), issue, on_batch=on_batch, sleep=lambda s: None))
    worker.start()
    assert first_batch_done.wait(10)
    # Batch 2 was claimed while batch 1's request was in flight (the sender's pipeline); batch 3 is
    # claimed only now: its people who leave meanwhile are checked at its claim.
    with core.sessions.begin() as session:
        for i, status in [(22, "unsubscribed"), (21, "bounced"), (25, "complained")]:
            session.scalars(select(Subscriber).where(Subscriber.email == address(i))).one().status = status
        session.add(Suppression(email_hash=email_hash(address(30)), reason="manual"))
    gate.set()
    worker.join(20)
    core.close()
    left = {address(i) for i in (22, 21, 25, 30)}
    assert set(fake.emails) == {address(i) for i in range(1, 31)} - left
    with core.sessions() as session:
        skipped = session.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == "skipped"))
    assert skipped == 4


def test_a_second_send_of_the_same_issue_is_refused_while_one_runs(settings, fake):
    core = sendgrid_core(settings, fake)
    issue = prepare(core, 10)
    other = sendgrid_core(settings, fake)  # another process would have its own engine and connections
    with (
        send_lock(other.engine, issue.id, issue.week),
        pytest.raises(SendInProgress, match="is being sent by another process"),
    ):
        deliver(core.mailer(), issue, sleep=lambda s: None)
    assert fake.requests == 0
    deliver(core.mailer(), issue, sleep=lambda s: None)  # free again once the first let go
    core.close()
    other.close()
    assert len(fake.emails) == 10
