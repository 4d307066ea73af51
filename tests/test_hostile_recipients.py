"""One recipient never stops the send. Subscribers stored by older versions (or any path) with CR/LF
in the name or the address, an internationalized address, a domain with no IDNA form: the real
`digest run --once` and `digest send --resume --retry-unknown` go through the outbox, SMTP (aiosmtpd,
with and without SMTPUTF8) and SendGrid (the fake). Everyone else is mailed and recorded as sent, the
one that cannot be mailed is `failed` with the reason, no header is injected, and nobody is mailed
twice on a resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select, update

from digest.config import load_newsletter
from digest.core import build_core
from digest.delivery.run import deliver
from digest.store.models import Batch, Delivery
from subscribers.models import Subscriber
from tests.cli_helpers import CliResult, run_cli
from tests.conftest import EXAMPLE_CONFIG, ROOT
from tests.fakes.seed import address, make_issue, seed_subscribers, subscriber_row
from tests.fakes.sendgrid import FakeSendGrid
from tests.hostile_helpers import WEEK, outbox_mail, sendgrid_mail, smtp_mail, smtp_server

MALLORY = ("mallory@example.org", "Mallory\r\nBcc: victim@example.org")
CRLF_ADDRESS = ("eve@example.org\r\nBcc: victim@example.org", None)
UTF8_LOCAL = ("josé@exämple.org", "José Ñandú")
IDN_DOMAIN = ("jose@exämple.org", "José, of Exämple")
NO_IDNA = ("bad@exa\u2764mple.org", "Bad Domain")
CSV_PEOPLE = [line.split(",")[0] for line in (ROOT / "examples/subscribers.csv").read_text().splitlines()[1:]]


def _store(session, people) -> None:
    rows = [subscriber_row(email, name) for email, name in people]
    session.execute(insert(Subscriber), rows)


@pytest.fixture
def hostile(cli_env, settings, tmp_path):
    """The odd subscribers, stored directly as old data would be, before and after the six sample ones
    (so that the bad ones sit in the middle of the batch)."""
    core = build_core(settings, load_newsletter(EXAMPLE_CONFIG))
    with core.sessions.begin() as session:
        _store(session, [MALLORY, CRLF_ADDRESS, UTF8_LOCAL])
    imported = run_cli(["subscribers", "import", str(ROOT / "examples/subscribers.csv")], cli_env, tmp_path)
    assert imported.returncode == 0, imported.stderr
    with core.sessions.begin() as session:
        _store(session, [IDN_DOMAIN, NO_IDNA])
    yield cli_env, core
    core.close()


def outcomes(core) -> dict[str, tuple[str, str | None]]:
    """Subscriber address -> (delivery status, error)."""
    with core.sessions() as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.status, Delivery.error).join(
                Delivery, Delivery.subscriber_id == Subscriber.id
            )
        ).all()
    return {email: (status, error) for email, status, error in rows}


def assert_recorded(core, failed: set[str]) -> None:
    found = outcomes(core)
    assert {e for e, (status, _) in found.items() if status == "failed"} == failed
    assert {e for e, (status, _) in found.items() if status == "sent"} == set(found) - failed
    for email in failed:
        assert found[email][1], f"{email!r} failed without a reason"
    with core.sessions() as session:
        assert set(session.scalars(select(Batch.status))) == {"submitted"}  # none left submitting


def assert_no_injected_header(mails) -> None:
    for mail in mails:
        assert all(a != "victim@example.org" for a in mail.to)


def written(folder: Path) -> dict[str, int]:
    """Each message file in the outbox and when it was last written."""
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.eml") if p.is_file()}


def run_once(env: dict, tmp_path: Path) -> CliResult:
    result = run_cli(["run", "--once", "--week", WEEK], env, tmp_path)
    # Exit 1 says some recipients failed; the send itself went through for everyone else.
    assert result.returncode == 1, result.stderr
    return result


def test_outbox_send_completes_for_everyone_else_and_records_the_unmailable_as_failed(hostile, tmp_path):
    env, core = hostile
    result = run_once(env, tmp_path)
    assert "failed" in result.stdout
    folder = tmp_path / "outbox" / "2026-w48"
    mails = outbox_mail(folder)
    to = sorted(a for m in mails for a in m.to)
    assert to == sorted([*CSV_PEOPLE, MALLORY[0], "josé@xn--exmple-cua.org", "jose@xn--exmple-cua.org"])
    assert_no_injected_header(mails)
    mallory = next(p for p in folder.glob("*.eml") if b"mallory@example.org" in p.read_bytes())
    headers = mallory.read_bytes().split(b"\n\n", 1)[0]
    assert b"\nBcc:" not in headers and b"Mallory Bcc: victim@example.org" in headers
    assert_recorded(core, {CRLF_ADDRESS[0], NO_IDNA[0]})
    assert "IDNA" in outcomes(core)[NO_IDNA[0]][1]
    # The operator is told who was not mailed and why, one escaped line each.
    assert "2 recipient(s) could not be mailed" in result.stderr
    assert f"  {NO_IDNA[0]}: " in result.stderr and ascii(CRLF_ADDRESS[0]) in result.stderr

    # Nobody is mailed again: a resume, even one that re-sends unknown batches, finds nothing to send.
    before = written(folder)
    again = run_cli(["send", "--week", WEEK, "--resume", "--retry-unknown"], env, tmp_path)
    assert again.returncode == 0, again.stderr
    assert written(folder) == before


def test_an_outbox_write_failure_mid_batch_records_what_went_and_resume_sends_only_the_rest(hostile, tmp_path):
    env, core = hostile
    folder = tmp_path / "outbox" / "2026-w48"
    (folder / "00000005.eml").mkdir(parents=True)  # the fifth recipient's file cannot be written
    result = run_once(env, tmp_path)
    assert "cannot write" in result.stderr
    # Recorded before the failure: the three written (Mallory, José, Ada) and the CR/LF address refused
    # alone; the rest of the batch stays to be sent.
    found = outcomes(core)
    assert sorted(s for s, _ in found.values()) == ["failed"] + ["sent"] * 3
    with core.sessions() as session:  # the other seven are still the batch's members
        assert session.scalars(select(Batch.recipients).where(Batch.members.is_not(None))).all() == [7]
    sent_before = written(folder)
    assert len(sent_before) == 3

    (folder / "00000005.eml").rmdir()
    resumed = run_cli(["send", "--week", WEEK, "--resume"], env, tmp_path)
    assert resumed.returncode == 1, resumed.stderr  # the unmailable ones stay failed
    after = written(folder)
    assert {n: after[n] for n in sent_before} == sent_before  # nobody written twice
    assert len(after) == 9
    assert_recorded(core, {CRLF_ADDRESS[0], NO_IDNA[0]})


@pytest.mark.parametrize("smtputf8", [True, False], ids=["smtputf8", "ascii-only-server"])
def test_smtp_send_completes_and_an_internationalized_address_goes_only_where_the_server_takes_it(
    hostile, tmp_path, smtputf8
):
    env, core = hostile
    controller, mailbox = smtp_server(smtputf8=smtputf8)
    try:
        smtp_env = {**env, "DIGEST_PROVIDER": "smtp", "DIGEST_SMTP_URL": f"smtp://127.0.0.1:{controller.port}?tls=none"}
        run_once(smtp_env, tmp_path)
        mails = smtp_mail(mailbox)
        envelope = sorted(a for m in mails for a in m.to)
        expected = [*CSV_PEOPLE, MALLORY[0], "jose@xn--exmple-cua.org"]
        if smtputf8:
            expected.append("josé@xn--exmple-cua.org")
        assert envelope == sorted(expected)
        assert_no_injected_header(mails)
        failed = {CRLF_ADDRESS[0], NO_IDNA[0]} | (set() if smtputf8 else {UTF8_LOCAL[0]})
        assert_recorded(core, failed)
        if not smtputf8:
            assert "SMTPUTF8" in outcomes(core)[UTF8_LOCAL[0]][1]

        # A batch of unknown fate (its readers still its members): --retry-unknown re-sends it (the
        # operator's choice) without stopping on the bad rows, and a second resume mails nobody.
        with core.sessions.begin() as session:
            readers = session.scalars(select(Delivery.subscriber_id).order_by(Delivery.subscriber_id)).all()
            session.execute(delete(Delivery))
            session.execute(
                update(Batch).values(status="submitting", members=json.dumps(readers), recipients=len(readers))
            )
        mailbox.messages.clear()
        retried = run_cli(["send", "--week", WEEK, "--resume", "--retry-unknown"], smtp_env, tmp_path)
        assert retried.returncode == 1, retried.stderr
        assert sorted(a for m in smtp_mail(mailbox) for a in m.to) == sorted(expected)
        assert_recorded(core, failed)
        again = run_cli(["send", "--week", WEEK, "--resume", "--retry-unknown"], smtp_env, tmp_path)
        assert again.returncode == 0, again.stderr
        assert len(mailbox.messages) == len(expected)
    finally:
        controller.stop()


def test_sendgrid_request_leaves_out_only_the_recipients_it_cannot_carry(hostile, tmp_path):
    env, core = hostile
    with FakeSendGrid(keep_bodies=True) as fake:
        sg_env = {**env, **fake.env()}
        run_once(sg_env, tmp_path)
        again = run_cli(["send", "--week", WEEK, "--resume", "--retry-unknown"], sg_env, tmp_path)
        assert again.returncode == 0, again.stderr
    assert fake.violations == [] and fake.requests == 1
    assert sorted(fake.recipient_counts.elements()) == sorted([*CSV_PEOPLE, MALLORY[0], "jose@xn--exmple-cua.org"])
    names = [a.get("name") for a in fake.accepted[0].body["personalizations"] for a in a["to"]]
    assert "Mallory Bcc: victim@example.org" in names and not any("\r" in n or "\n" in n for n in names if n)
    assert_no_injected_header(sendgrid_mail(fake))
    assert_recorded(core, {CRLF_ADDRESS[0], NO_IDNA[0], UTF8_LOCAL[0]})
    assert "not ASCII" in outcomes(core)[UTF8_LOCAL[0]][1]


def test_a_subscriber_whose_values_cannot_be_made_fails_alone_and_the_batch_goes(settings, tmp_path):
    """Whatever breaks while one recipient's values are made (a token for a row the signer chokes on,
    say) fails that recipient with the reason; the batch is sent and recorded for the others."""
    core = build_core(settings, load_newsletter(EXAMPLE_CONFIG))
    with core.sessions.begin() as session:
        seed_subscribers(session, 5)
        issue = make_issue(session)
    made = core.audience.values

    def values(person):
        if person.email == address(3):
            raise ValueError("this row cannot be signed")
        return made(person)

    core.audience.values = values
    try:
        _, report = deliver(core.mailer(), issue)
        found = outcomes(core)
    finally:
        core.close()
    assert report.sent == 4 and report.failed == 1 and not report.failed_batches
    assert found[address(3)] == ("failed", "the message could not be built: ValueError: this row cannot be signed")
    assert {e for e, (s, _) in found.items() if s == "sent"} == {address(i) for i in (1, 2, 4, 5)}
    assert sorted(p.name for p in (tmp_path / "outbox" / issue.slug).glob("*.eml")) == [
        f"{i:08d}.eml" for i in (1, 2, 4, 5)
    ]
