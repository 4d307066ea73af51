"""The confirmation queue: a sign-up answers without waiting for the provider; the mail goes from the queue
once, retried with backoff when the provider fails, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import re
import threading
from datetime import timedelta

from sqlalchemy import select

from digest.errors import FailureKind, ProviderError
from digest.store.models import utcnow
from subscribers import confirmation, signup, store
from subscribers.models import ConfirmationMail
from tests.fakes.sendgrid import FakeSendGrid
from tests.web_site import running_site, settle_confirmations

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Recording:
    """A provider that records each confirmation mail's recipient; `failures` raise first, in order."""

    def __init__(self, failures: list[ProviderError] | None = None):
        self.failures = list(failures or [])
        self.sent: list[str] = []
        self._lock = threading.Lock()

    def send_transactional(self, message) -> str | None:
        with self._lock:
            if self.failures:
                raise self.failures.pop(0)
            self.sent.append(str(message["To"]))
        return None


class Clock:
    def __init__(self):
        self.now = utcnow()

    def __call__(self):
        return self.now


def opt_in_with(core, provider, clock=None):
    return dataclasses.replace(core.opt_in(), provider=provider, now=clock or core.now)


def statuses(core) -> list[str]:
    with core.sessions() as session:
        return list(session.scalars(select(ConfirmationMail.status).order_by(ConfirmationMail.id)))


def test_a_sign_up_queues_its_mail_in_its_own_transaction_and_sends_nothing_itself(core):
    provider = Recording()
    opt_in = opt_in_with(core, provider)
    result = signup.sign_up(opt_in, "queued@example.org", None, store.Consent("form"))
    assert result.send_confirmation and provider.sent == []
    assert statuses(core) == ["pending"]
    # A second sign-up within the resend limit queues nothing more.
    signup.sign_up(opt_in, "queued@example.org", None, store.Consent("form"))
    assert statuses(core) == ["pending"]
    assert confirmation.send_due(opt_in).sent == 1
    assert provider.sent == ["queued@example.org"] and statuses(core) == ["sent"]
    assert confirmation.send_due(opt_in).claimed == 0


def test_a_failing_provider_is_tried_again_with_backoff_and_the_mail_goes_once(core):
    clock = Clock()
    transient = ProviderError("SendGrid answered 500", kind=FailureKind.TRANSIENT)
    provider = Recording([transient, transient])
    opt_in = opt_in_with(core, provider, clock)
    signup.sign_up(opt_in, "retry@example.org", None, store.Consent("form"))

    assert confirmation.send_due(opt_in).retrying == 1
    assert confirmation.send_due(opt_in).claimed == 0  # not due before its backoff
    clock.now += confirmation.retry_delay(1)
    assert confirmation.send_due(opt_in).retrying == 1
    clock.now += confirmation.retry_delay(1)
    assert confirmation.send_due(opt_in).claimed == 0  # the second wait is longer
    clock.now += confirmation.retry_delay(2)
    assert confirmation.send_due(opt_in).sent == 1
    clock.now += timedelta(hours=2)
    assert confirmation.send_due(opt_in).claimed == 0
    assert provider.sent == ["retry@example.org"]
    with core.sessions() as session:
        assert session.scalars(select(ConfirmationMail.attempts)).one() == 3


def test_a_refused_or_possibly_accepted_mail_is_never_tried_again(core):
    provider = Recording(
        [
            ProviderError("400 bad address", kind=FailureKind.REFUSED),
            ProviderError("timed out", kind=FailureKind.UNKNOWN),
        ]
    )
    opt_in = opt_in_with(core, provider)
    signup.sign_up(opt_in, "refused@example.org", None, store.Consent("form"))
    signup.sign_up(opt_in, "unknown@example.org", None, store.Consent("form"))
    assert confirmation.send_due(opt_in).failed == 2
    assert statuses(core) == ["failed", "unknown"]
    assert confirmation.send_due(opt_in).claimed == 0 and provider.sent == []


def test_a_mail_for_someone_who_confirmed_or_left_meanwhile_is_skipped(core):
    provider = Recording()
    opt_in = opt_in_with(core, provider)
    signup.sign_up(opt_in, "left@example.org", None, store.Consent("form"))
    with core.sessions.begin() as session:
        store.unsubscribe(session, store.find(session, "left@example.org"), "test", now=core.now())
    assert confirmation.send_due(opt_in).failed == 1
    assert statuses(core) == ["skipped"] and provider.sent == []


def test_senders_racing_over_one_queue_send_each_mail_once(core):
    provider = Recording()
    opt_in = opt_in_with(core, provider)
    addresses = [f"race{n}@example.org" for n in range(40)]
    for address in addresses:
        signup.sign_up(opt_in, address, None, store.Consent("form"))

    def sender() -> None:
        while confirmation.send_due(opt_in, limit=3).claimed:
            pass

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(provider.sent) == sorted(addresses)
    assert set(statuses(core)) == {"sent"}


def test_a_stalled_provider_holds_no_sign_up_and_each_mail_goes_once_when_it_answers(settings):
    with FakeSendGrid(schedule=[("delay", 120)]) as fake:
        provider = {"provider": "sendgrid", "sendgrid_api_key": fake.api_key, "sendgrid_api_host": fake.url}
        with running_site(settings, **provider) as site:
            token = CSRF.search(site.http.get("/subscribe").text)[1]
            first = site.http.post("/subscribe", data={"email": "first@example.org", "csrf_token": token})
            assert first.status_code == 200
            assert fake.wait_for_requests(1)  # the sender is now held by the provider
            others = [f"later{n}@example.org" for n in range(5)]
            for address in others:
                answer = site.http.post("/subscribe", data={"email": address, "csrf_token": token})
                assert answer.status_code == 200
            # Every sign-up was answered while the provider still held the first mail.
            assert fake.requests == 1 and fake.emails == []
            fake.release()
            settle_confirmations(site.core.settings.outbox_dir)
            assert sorted(fake.emails) == sorted(["first@example.org", *others])
            assert fake.duplicates == {}
