"""The chunked CSV import gives what `add`, row after row, gives; the export streams every row (both stores)."""

from __future__ import annotations

import base64
import csv
import io

import pytest
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, text

from subscribers import store
from subscribers.models import Subscriber, SubscriberChange, Suppression

MIXED = (
    "email,name,timezone\n"
    "new1@example.org,New One,\n"  # 2 new
    "pending@example.org,Pending Person,\n"  # 3 pending: the operator vouches, active
    "active@example.org,Active Renamed,Asia/Tokyo\n"  # 4 active: renamed, zone set
    "same@example.org,Same,\n"  # 5 active as it is: unchanged
    "left@example.org,Left,\n"  # 6 unsubscribed: kept out
    "bounced@example.org,,\n"  # 7 bounced: kept out
    "erased@example.org,Erased,\n"  # 8 erased (a suppression, no row): kept out
    "not-an-address,Nobody,\n"  # 9 rejected
    "ok@example.org,Bad Zone,Mars/Olympus\n"  # 10 rejected: the zone
    "NEW1@example.org,New One Renamed,\n"  # 11 the same address again: updated
    ",Empty,\n"  # 12 rejected
    "new2@example.org,  Two   Spaces ,Europe/Lisbon\n"  # 13 new, the name cleaned
    "new2@example.org,,\n"  # 14 again, nothing new: unchanged
    "suppressed@example.org,Complained Once,\n"  # 15 suppressed (no row): kept out
    "same@example.org,,\n"  # 16 unchanged
)


def prepare(core) -> None:
    now = core.now()
    with core.sessions.begin() as session:
        store.sign_up(session, "pending@example.org", None, store.Consent("form"), now=now, double_opt_in=True)
        for address in ("active@example.org", "same@example.org", "left@example.org", "bounced@example.org"):
            store.add(session, address, "Same" if address.startswith("same") else None, now=now, cause="test")
        session.flush()
        for address, status in (("left@example.org", "unsubscribed"), ("bounced@example.org", "bounced")):
            subscriber = store.find(session, address)
            assert subscriber is not None
            store.set_status(session, subscriber, status, "test", now)
        store.add(session, "erased@example.org", None, now=now, cause="test")
        session.flush()
        store.erase(session, "erased@example.org", now=now)
        store.suppress(session, "suppressed@example.org", "complained", now)


def import_row_by_row(core, path, *, force_consent: bool = False) -> store.ImportReport:
    """What the import did before it was chunked: `add` for each row, in the file's order."""
    report = store.ImportReport()
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for line, row in store.read_csv(handle, str(path)):
            raw = row.get("email", "")
            try:
                with core.sessions.begin() as session:
                    _, outcome = store.add(
                        session, raw, row.get("name"), now=core.now(), force_consent=force_consent,
                        cause=f"import {path.name}:{line}", timezone=row.get("timezone"),
                    )  # fmt: skip
            except store.InvalidInput as exc:
                report.rejected.append(store.Rejected(line, raw, str(exc)))
            else:
                setattr(report, outcome, getattr(report, outcome) + 1)
    return report


def state(core) -> tuple[list[tuple], list[tuple], list[str]]:
    with core.sessions() as session:
        people = [
            (s.email, s.name, s.status, s.consent_source, s.confirmed_at is not None, s.timezone, len(s.link_key))
            for s in session.scalars(select(Subscriber).order_by(Subscriber.email))
        ]
        history = session.execute(
            select(Subscriber.email, SubscriberChange.from_status, SubscriberChange.to_status, SubscriberChange.cause)
            .join(Subscriber, Subscriber.id == SubscriberChange.subscriber_id)
            .order_by(Subscriber.email, SubscriberChange.id)
        ).all()
        suppressed = sorted(session.scalars(select(Suppression.email_hash)))
    return people, [tuple(h) for h in history], suppressed


def reset(core) -> None:
    with core.sessions.begin() as session:
        for table in ("subscriber_changes", "subscribers", "suppressions"):
            session.execute(text(f"DELETE FROM {table}"))  # noqa: S608 (fixed names)


@pytest.mark.parametrize("force_consent", [False, True])
@pytest.mark.parametrize("chunk", [3, 1000])
def test_a_mixed_file_gives_what_adding_row_after_row_gives(core, tmp_path, monkeypatch, chunk, force_consent):
    path = tmp_path / "people.csv"
    path.write_text(MIXED, encoding="utf-8")
    prepare(core)
    expected_report = import_row_by_row(core, path, force_consent=force_consent)
    expected = state(core)
    reset(core)

    prepare(core)
    monkeypatch.setattr(store, "IMPORT_BATCH_ROWS", chunk)
    monkeypatch.setattr(store, "IMPORT_BATCH_ROWS_POSTGRESQL", chunk)
    monkeypatch.setattr(store, "IMPORT_PAUSE_SECONDS", 0)
    with core.sessions() as session:
        report = store.import_csv(session, path, now=core.now(), force_consent=force_consent)

    assert report == expected_report
    assert state(core) == expected
    assert [r.line for r in report.rejected] == [9, 10, 12]
    if force_consent:
        assert (report.added, report.reactivated, report.kept_out) == (4, 2, 0)
    else:
        assert (report.added, report.updated, report.unchanged, report.kept_out) == (2, 3, 3, 4)


def test_an_import_run_twice_leaves_every_row_unchanged_the_second_time(core, tmp_path, monkeypatch):
    monkeypatch.setattr(store, "IMPORT_BATCH_ROWS", 7)
    monkeypatch.setattr(store, "IMPORT_BATCH_ROWS_POSTGRESQL", 7)
    monkeypatch.setattr(store, "IMPORT_PAUSE_SECONDS", 0)
    path = tmp_path / "people.csv"
    path.write_text("email,name\n" + "".join(f"p{n}@example.org,Person {n}\n" for n in range(40)), encoding="utf-8")
    seen: list[tuple[int, int]] = []
    with core.sessions() as session:
        first = store.import_csv(session, path, now=core.now(), progress=lambda done, total: seen.append((done, total)))
        second = store.import_csv(session, path, now=core.now())
    assert (first.added, second.added, second.unchanged) == (40, 0, 40)
    assert seen[-1] == (40, 40) and len(seen) > 2, "progress is reported chunk by chunk"
    people, history, _ = state(core)
    assert len(people) == 40 and len({p[0] for p in people}) == 40
    assert sorted(h[3] for h in history) == sorted(f"import people.csv:{line}" for line in range(2, 42))


def test_the_export_streams_every_subscriber_and_round_trips_through_the_import(core, tmp_path, monkeypatch):
    monkeypatch.setattr(store, "EXPORT_CHUNK", 4)
    prepare(core)
    with core.sessions.begin() as session:
        for n in range(10):
            store.add(session, f"r{n}@example.org", f"Reader {n}", now=core.now(), cause="test", timezone="Asia/Tokyo")
        jo = store.find(session, "r3@example.org")
        assert jo is not None
        store.set_left_out_sections(session, jo, ["Opinion", "Books"], ["Books", "Opinion"], now=core.now())
    buffer = io.StringIO()
    with core.sessions() as session:
        written = store.export_csv(session, buffer)
        expected = [
            (s.email, s.name or "", s.status) for s in session.scalars(select(Subscriber).order_by(Subscriber.id))
        ]
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    assert written == len(rows) == len(expected) == 15
    assert [(r["email"], r["name"], r["status"]) for r in rows] == expected
    r3 = next(r for r in rows if r["email"] == "r3@example.org")
    assert (r3["exclude_sections"], r3["timezone"]) == ("Books;Opinion", "Asia/Tokyo")
    assert r3["created_at"].endswith("+00:00") and r3["consent_source"] == "import"

    exported = tmp_path / "out.csv"
    exported.write_text(buffer.getvalue(), encoding="utf-8")
    with core.sessions() as session:
        again = store.import_csv(session, exported, now=core.now())
    # Everyone active stays as they are; who left stays out; the pending reader is vouched for by the operator.
    assert (again.added, again.updated, again.unchanged, again.kept_out, again.rejected) == (0, 1, 12, 2, [])


@pytest.mark.parametrize(
    "address",
    [
        "Ann.Lee+news@Example.ORG", "a@b.c", "-a@b.com", "_@b.com", "a@localhost", "a@x.test", "a@b..c",
        "a@-b.com", "a@b.invalid", "a@m\u00fcnchen.de", "x@192.168.0.1", "a@[1.2.3.4]", "a@b.local", "a@example",
        "a@b.com.", " a@B.Com ", "a" * 64 + "@example.org", "a" * 65 + "@example.org",
        "a@" + "b" * 63 + ".com", "a@" + "b" * 64 + ".com", "a" * 60 + "@" + ("b" * 60 + ".") * 3 + "org",
        "a..b@example.org", ".a@example.org", "a.@example.org", "a@b\u200e.com", "a\u00e9@example.org",
    ],
)  # fmt: skip
def test_the_quick_path_for_plain_addresses_agrees_with_email_validator(address):
    try:
        result = validate_email(address.strip(), check_deliverability=False, allow_smtputf8=False)
        expected: str | None = (result.ascii_email or result.normalized).lower()
    except EmailNotValidError:
        expected = None
    try:
        got: str | None = store.normalize_email(address)
    except store.InvalidAddress:
        got = None
    assert got == expected


def export_as_before(session, status=None) -> str:
    """The CSV the export wrote before the store formatted the fields itself (ORM-free, per row in Python)."""
    import json

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(store.EXPORT_COLUMNS)
    query = select(Subscriber).order_by(Subscriber.id)
    if status:
        query = query.where(Subscriber.status == status)
    for s in session.scalars(query):
        left_out = json.loads(json.dumps(s.preferences or {})).get("exclude_sections", ())

        def stamp(value):
            return f"{value.replace(tzinfo=None).isoformat()}+00:00" if value else ""

        writer.writerow(
            (
                s.email, s.name or "", s.status, s.consent_source or "", stamp(s.consent_at), s.consent_ip or "",
                stamp(s.confirmed_at), ";".join(left_out), s.timezone or "", stamp(s.created_at), stamp(s.updated_at),
            )
        )  # fmt: skip
    return buffer.getvalue()


@pytest.mark.parametrize("status", [None, "active", "pending"])
def test_the_export_writes_the_csv_it_wrote_before_field_for_field(core, status, monkeypatch):
    from datetime import UTC, datetime

    monkeypatch.setattr(store, "EXPORT_CHUNK", 3)
    prepare(core)
    now = core.now()
    awkward = [
        ("comma@example.org", "Lee, Ann"), ("quote@example.org", 'Ann "Nan" Lee'), ("empty@example.org", ""),
        ("accents@example.org", "Zoë Ğül 李"), ("semi@example.org", "a;b"), ("spaces@example.org", " lead"),
    ]  # fmt: skip
    with core.sessions.begin() as session:
        for address, name in awkward:
            store.add(session, address, name, now=now, cause="test", timezone="America/New_York")
        store.sign_up(session, "form@example.org", "Form, Person", store.Consent("form", "203.0.113.7", "UA"),
                      now=now, double_opt_in=True)  # fmt: skip
        session.flush()
        whole = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)  # no fraction of a second: isoformat leaves it out
        tiny = datetime(2026, 3, 1, 8, 0, 0, 5, tzinfo=UTC)
        for subscriber in session.scalars(select(Subscriber)):
            if subscriber.email.startswith(("comma", "quote")):
                subscriber.created_at, subscriber.consent_at = whole, tiny
            if subscriber.email == "empty@example.org":
                subscriber.name = ""  # an empty name as stored text, not NULL
        jo = store.find(session, "semi@example.org")
        assert jo is not None
        store.set_left_out_sections(session, jo, ["Opinion", "Books"], ["Opinion", "World", "Books"], now=now)
        same = store.find(session, "same@example.org")
        assert same is not None
        same.preferences = {"exclude_sections": []}
    buffer = io.StringIO()
    seen: list[tuple[int, int]] = []
    with core.sessions() as session:
        written = store.export_csv(session, buffer, status, progress=lambda done, total: seen.append((done, total)))
        expected = export_as_before(session, status)
    assert buffer.getvalue() == expected
    assert written == expected.count("\n") - 1 == seen[-1][0]
    if status != "pending":
        assert "2026-03-01T08:00:00+00:00" in expected and "2026-03-01T08:00:00.000005+00:00" in expected
        assert '"Lee, Ann"' in expected and "Opinion;Books" in expected


@pytest.mark.parametrize(
    "text",
    [
        "email,name,timezone\na@example.org,Ann,Europe/Lisbon\n\n\nb@example.org\nc@example.org,Cy,,extra,more\n",
        " Email , NAME \n a@example.org ,  Ann  Lee \n",
        "email,name,email\nfirst@example.org,Ann,second@example.org\nonly@example.org,Bo\n",
        'email,name\n"multi\nline@example.org","Ann\nLee"\nok@example.org,"Lee, Ann"\n',
        "name,email\nAnn,a@example.org\nBo\n,\n",
        "email\r\na@example.org\r\nb@example.org\r\n",
        "email,timezone\na@example.org,Mars/Olympus\nb@example.org, Asia/Tokyo \n",
    ],
)
def test_the_import_reads_each_row_as_read_csv_reads_it(tmp_path, text):
    """The import's own reader (a plain csv.reader) gives the rows, lines and rejections read_csv and the
    checks of `add` give."""
    path = tmp_path / "people.csv"
    path.write_text(text, encoding="utf-8")
    expected: list[tuple] = []
    rejected: list[store.Rejected] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for line, row in store.read_csv(handle, str(path)):
            try:
                expected.append((line, store.normalize_email(row.get("email", "")), store.clean_name(row.get("name")),
                                 store.clean_timezone(row.get("timezone"))))  # fmt: skip
            except store.InvalidInput as exc:
                rejected.append(store.Rejected(line, row.get("email", ""), str(exc)))
    report = store.ImportReport()
    counted = [0]
    with path.open(newline="", encoding="utf-8-sig") as handle:
        got = [tuple(r) for r in store._checked_rows(handle, str(path), report, counted)]
    assert got == expected
    assert report.rejected == rejected
    assert counted[0] == len(expected) + len(rejected)


def test_link_keys_made_per_chunk_are_what_new_link_key_makes():
    keys = store._link_keys(2000)
    assert len(set(keys)) == 2000
    for key in keys:
        assert len(key) == 22 and key.rstrip("-_").replace("-", "").replace("_", "").isalnum()
        raw = base64.urlsafe_b64decode(key + "==")
        assert len(raw) == 16 and base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == key
    # every bit varies: no fixed byte or fixed character where the per-chunk encoding could leave one
    assert all(len({k[i] for k in keys}) > 1 for i in range(22))


def _reference(address: str) -> str | None:
    try:
        result = validate_email(address.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return None
    return (result.ascii_email or result.normalized).lower()


def test_the_import_checks_addresses_as_email_validator_does_on_many_tricky_addresses(tmp_path):
    """Thousands of addresses built from awkward pieces: what the import's inline check keeps or rejects is
    exactly what email-validator (normalize_email's full path) keeps or rejects."""
    import random

    rng = random.Random(20)
    locals_ = ["a", "A.b", "a..b", ".a", "a.", "a+b", "a-b", "_", "-", "+", "a b", 'a"b', '"a"', "a!b", "a#b",
               "a'b", "a/b", "a=b", "a?b", "a^b", "a`b", "a{b", "a|b", "a}b", "a~b", "a$b", "a%b", "a&b", "a*b",
               "é", "a\u200eb", "a\tb", "a@b", "", "x" * 63, "x" * 64, "x" * 65, "1", "a.b.c", "a(b)", "a,b",
               "a;b", "a:b", "a[b]", "a\\b", "a<b>", "A" * 20 + "." + "b" * 43]  # fmt: skip
    domains = ["example.org", "EXAMPLE.ORG", "b.c", "localhost", "x.test", "b..c", "-b.com", "b-.com", "b.invalid",
               "münchen.de", "192.168.0.1", "[1.2.3.4]", "[IPv6:::1]", "b.local", "example", "b.com.", ".b.com",
               "b_c.com", "b c.com", "b\u200e.com", "xn--mnchen-3ya.de", "xn--zz.com", "a." * 40 + "org",
               "b" * 63 + ".com", "b" * 64 + ".com", ("c" * 62 + ".") * 4 + "org", "123.com", "b.123", "b.c0m",
               "B.Com", "b.com ", "b!.com", "b*.com", "b/.com", "", "b.onion", "b.arpa", "b.example", "b.co.uk",
               "a-" * 30 + "b.org", "xn--b.com", "B\u0301.com"]  # fmt: skip
    addresses = [f"{lo}@{do}" for lo in locals_ for do in domains]
    addresses += [f"{rng.choice(locals_)}{rng.choice(['', '.', '+', '-'])}{rng.choice(locals_)}@{rng.choice(domains)}"
                  for _ in range(2000)]  # fmt: skip
    addresses += [" a@example.org ", "a@@example.org", "@example.org", "a@", "a", "a@b@example.org"]
    path = tmp_path / "tricky.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["email"])
        out.writerows([a] for a in addresses)
    report = store.ImportReport()
    with path.open(newline="", encoding="utf-8-sig") as handle:
        kept = {r.line: r.email for r in store._checked_rows(handle, str(path), report, [0])}
    refused = {r.line for r in report.rejected}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        read = list(store.read_csv(handle, str(path)))
    assert len(read) == len(addresses)
    accepted = 0
    for line, row in read:
        expected = _reference(row["email"]) if row["email"] else None
        assert kept.get(line) == expected, row["email"]
        assert (line in refused) == (expected is None), row["email"]
        accepted += expected is not None
    assert 200 < accepted < len(addresses) - 200, "both kept and refused addresses are covered"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_import_gives_its_connection_back_as_it_found_it(core, tmp_path):
    """SQLite: the import's pragmas (page cache, checkpoints, syncs) are its own; the pooled connection the web
    or a later command gets has the store's usual ones, and the log was checkpointed at the end."""
    engine = core.sessions.kw["bind"]
    names = ("cache_size", "wal_autocheckpoint", "journal_size_limit", "synchronous")

    def pragmas():
        with engine.connect() as connection:
            driver = connection.connection.driver_connection
            return {name: driver.execute(f"PRAGMA {name}").fetchone()[0] for name in names}

    before = pragmas()
    path = tmp_path / "people.csv"
    path.write_text("email\n" + "".join(f"p{n}@example.org\n" for n in range(30)), encoding="utf-8")
    with core.sessions() as session:
        assert store.import_csv(session, path, now=core.now()).added == 30
    assert pragmas() == before
    with engine.connect() as connection:
        busy, log, done = connection.connection.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert busy == 0 and log == done


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        (b"bad\xff@example.org\n", r"not UTF-8 text \(invalid start byte"),
        (b"x" * 200_000 + b"\n", r"line 2002: not CSV: field larger"),
    ],
)
def test_a_file_that_breaks_halfway_keeps_the_chunks_before_and_says_where(core, tmp_path, monkeypatch, tail, message):
    """The rows are read ahead on a thread of their own: what stops the reading still stops the import, with
    its message, after the chunks already written (a second run finishes the file)."""
    from digest.errors import UsageError

    monkeypatch.setattr(store, "IMPORT_BATCH_ROWS", 100)
    monkeypatch.setattr(store, "IMPORT_BATCH_ROWS_POSTGRESQL", 100)
    monkeypatch.setattr(store, "IMPORT_PAUSE_SECONDS", 0)
    path = tmp_path / "people.csv"
    path.write_bytes(b"email\n" + b"".join(b"p%d@example.org\n" % n for n in range(2000)) + tail)
    with core.sessions() as session, pytest.raises(UsageError, match=message):
        store.import_csv(session, path, now=core.now())
    people, _, _ = state(core)
    written = len(people)
    assert written and written % 100 == 0, "whole chunks, the first ones"
    assert sorted(p[0] for p in people) == sorted(f"p{n}@example.org" for n in range(written))
    if tail.startswith(b"x"):
        assert written == 1900  # the chunk in the making when the error came is not written
