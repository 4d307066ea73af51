"""The audience in the store, on SQLite and PostgreSQL: sign-up, consent, history, import, erase, links."""

from __future__ import annotations

import base64
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from digest.errors import UsageError
from subscribers import store
from subscribers.models import Subscriber, SubscriberChange, Suppression
from subscribers.tokens import BadToken, Tokens

FORM = store.Consent("form", "203.0.113.7", "Mozilla/5.0 test")


def sign_up(core, address, name=None, *, double_opt_in=True):
    with core.sessions.begin() as session:
        return store.sign_up(session, address, name, FORM, now=core.now(), double_opt_in=double_opt_in)


def get(core, address) -> Subscriber:
    with core.sessions() as session:
        return session.scalars(select(Subscriber).where(Subscriber.email == address)).one()


def changes(core, subscriber_id) -> list[tuple]:
    with core.sessions() as session:
        rows = session.scalars(
            select(SubscriberChange)
            .where(SubscriberChange.subscriber_id == subscriber_id)
            .order_by(SubscriberChange.id)
        )
        return [(c.from_status, c.to_status, c.cause) for c in rows]


def test_a_sign_up_is_stored_normalized_with_its_consent_record_and_history(core):
    result = sign_up(core, "  Ann.Lee@Example.ORG ", "Ann Lee")
    assert result.created and result.send_confirmation
    ann = get(core, "ann.lee@example.org")
    assert (ann.status, ann.name, ann.consent_source, ann.consent_ip) == ("pending", "Ann Lee", "form", "203.0.113.7")
    assert ann.consent_user_agent == "Mozilla/5.0 test" and ann.consent_at is not None and ann.confirmed_at is None
    assert changes(core, ann.id) == [(None, "pending", "sign-up via form")]


def test_the_same_address_in_other_case_is_the_same_subscriber(core):
    sign_up(core, "bob@example.org")
    again = sign_up(core, "BOB@EXAMPLE.ORG")
    assert not again.created
    with core.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 1


@pytest.mark.parametrize("bad", ["", "no-at-sign", "two@@example.org", "a@b", "x@example..org"])
def test_an_invalid_address_is_refused_and_nothing_is_stored(core, bad):
    with pytest.raises(store.InvalidAddress):
        sign_up(core, bad)
    with core.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_confirming_makes_a_pending_subscriber_active_and_an_old_link_never_undoes_an_unsubscribe(core):
    sign_up(core, "cy@example.org")
    with core.sessions.begin() as session:
        cy = session.scalars(select(Subscriber)).one()
        assert store.confirm(session, cy, now=core.now())
        store.unsubscribe(session, cy, "unsubscribe page", now=core.now())
        assert not store.confirm(session, cy, now=core.now())
        assert cy.status == "unsubscribed" and cy.confirmed_at is not None
    assert [c[1] for c in changes(core, cy.id)] == ["pending", "active", "unsubscribed"]


def test_single_opt_in_makes_a_new_subscriber_active_but_someone_who_left_must_confirm(core):
    result = sign_up(core, "di@example.org", double_opt_in=False)
    assert result.subscriber.status == "active" and not result.send_confirmation
    with core.sessions.begin() as session:
        di = session.get(Subscriber, result.subscriber.id)
        store.unsubscribe(session, di, "test", now=core.now())
    # Anyone can type an address into a form: that alone must not put a leaver back on the list.
    again = sign_up(core, "di@example.org", double_opt_in=False)
    assert again.subscriber.status == "pending" and again.send_confirmation


def test_a_pending_sign_up_resends_the_confirmation_at_most_once_a_minute(core):
    first = sign_up(core, "ed@example.org")
    assert first.send_confirmation
    assert not sign_up(core, "ed@example.org").send_confirmation
    core.clock = lambda: first.subscriber.created_at + timedelta(minutes=2)
    assert sign_up(core, "ed@example.org").send_confirmation


def test_fifty_concurrent_sign_ups_of_one_address_make_one_subscriber_and_one_confirmation(core):
    barrier = threading.Barrier(50)

    def one(i):
        barrier.wait()
        return sign_up(core, "Same@Example.org" if i % 2 else "same@example.org", f"Person {i}")

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(one, range(50)))
    assert sum(r.created for r in results) == 1
    assert sum(r.send_confirmation for r in results) == 1
    with core.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 1
        assert session.scalar(select(func.count()).select_from(SubscriberChange)) == 1


# --- links ----------------------------------------------------------------------------------------


def test_a_link_shows_no_id_or_address_in_clear(core):
    result = sign_up(core, "fay@example.org")
    subscriber = result.subscriber
    for purpose in ("confirm", "unsubscribe", "preferences"):
        token = core.tokens.make(purpose, subscriber)
        payload = token.split(".")[0]
        if purpose == "confirm":  # an itsdangerous token: base64 JSON
            payload = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode().strip('"')
        # The payload is readable by anyone: it must be the random key, not the id or the address.
        assert payload == subscriber.link_key
        assert "fay" not in token
        assert core.tokens.read(purpose, token) == subscriber.link_key


def test_a_link_for_one_purpose_or_altered_or_signed_with_another_key_is_refused(core):
    subscriber = sign_up(core, "gus@example.org").subscriber
    token = core.tokens.make("unsubscribe", subscriber)
    with pytest.raises(BadToken, match="not valid"):
        core.tokens.read("preferences", token)
    with pytest.raises(BadToken):
        core.tokens.read("unsubscribe", token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    with pytest.raises(BadToken):
        Tokens("another-secret").read("unsubscribe", token)


def test_a_confirm_link_expires_after_seven_days_and_unsubscribe_links_do_not(core, monkeypatch):
    import itsdangerous.timed

    subscriber = sign_up(core, "hal@example.org").subscriber
    confirm = core.tokens.make("confirm", subscriber)
    unsubscribe = core.tokens.make("unsubscribe", subscriber)
    real_time = itsdangerous.timed.time.time
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: real_time() + 8 * 24 * 3600)
    with pytest.raises(BadToken, match="expired"):
        core.tokens.read("confirm", confirm)
    assert core.tokens.read("unsubscribe", unsubscribe) == subscriber.link_key


def test_links_signed_with_a_rotated_out_key_still_work():
    class Key:
        link_key = "k" * 22

    old = Tokens("old-secret").make("unsubscribe", Key())
    rotated = Tokens("new-secret", ["old-secret"])
    assert rotated.read("unsubscribe", old) == Key.link_key
    assert Tokens("new-secret").make("unsubscribe", Key()) == rotated.make("unsubscribe", Key())


# --- the operator's commands ----------------------------------------------------------------------


def write_csv(tmp_path, text):
    path = tmp_path / "people.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_import_reports_bad_rows_by_line_merges_duplicates_and_keeps_leavers_out(core, tmp_path):
    sign_up(core, "left@example.org")
    with core.sessions.begin() as session:
        left = session.scalars(select(Subscriber).where(Subscriber.email == "left@example.org")).one()
        store.set_status(session, left, "complained", "test", core.now())
        store.suppress(session, "erased@example.org", "erased", core.now())
    path = write_csv(
        tmp_path,
        "Email,Name\nann@example.org,Ann\nnot-an-address,Nobody\nANN@example.org,Ann Lee\n"
        "left@example.org,Left\nerased@example.org,Gone\n,Empty\n",
    )
    with core.sessions.begin() as session:
        report = store.import_csv(session, path, now=core.now())
    assert (report.added, report.updated, report.kept_out) == (1, 1, 2)
    assert [(r.line, r.value) for r in report.rejected] == [(3, "not-an-address"), (7, "")]
    assert get(core, "ann@example.org").name == "Ann Lee"
    assert get(core, "left@example.org").status == "complained"
    with core.sessions() as session:
        assert session.scalar(select(Subscriber).where(Subscriber.email == "erased@example.org")) is None

    with core.sessions.begin() as session:
        forced = store.import_csv(session, path, now=core.now(), force_consent=True)
    assert forced.reactivated == 1 and forced.added == 1
    assert get(core, "left@example.org").status == "active"
    assert changes(core, get(core, "left@example.org").id)[-1][2].endswith("(--force-consent)")


def test_import_without_an_email_column_names_the_file_and_line(core, tmp_path):
    path = write_csv(tmp_path, "address,name\nann@example.org,Ann\n")
    with (
        pytest.raises(UsageError, match=r"people.csv: line 1: the header needs an 'email' column"),
        core.sessions.begin() as session,
    ):
        store.import_csv(session, path, now=core.now())


def test_erase_deletes_the_person_and_keeps_a_suppression_that_stops_later_imports(core, tmp_path):
    sign_up(core, "ida@example.org", "Ida")
    with core.sessions.begin() as session:
        assert store.erase(session, "IDA@example.org", now=core.now())
    with core.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 0
        assert session.scalar(select(func.count()).select_from(SubscriberChange)) == 0
        assert session.scalar(select(Suppression.email_hash)) == store.email_hash("ida@example.org")
    with core.sessions.begin() as session:
        report = store.import_csv(session, write_csv(tmp_path, "email\nida@example.org\n"), now=core.now())
    assert (report.added, report.kept_out) == (0, 1)


def test_export_writes_every_subscriber_with_consent_and_preferences(core, tmp_path):
    import csv
    import io

    sign_up(core, "jo@example.org", "Jo")
    with core.sessions.begin() as session:
        jo = session.scalars(select(Subscriber)).one()
        store.set_left_out_sections(session, jo, ["Opinion", "Nonexistent"], core.config.sections, now=core.now())
    buffer = io.StringIO()
    with core.sessions() as session:
        assert store.export_csv(session, buffer) == 1
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    assert rows[0]["email"] == "jo@example.org" and rows[0]["consent_ip"] == "203.0.113.7"
    assert rows[0]["exclude_sections"] == "Opinion"
