"""Benchmark of `digest send`: recipients per second and peak memory, at 100,000 and 1,000,000
subscribers, on SQLite and PostgreSQL, against the fake SendGrid on loopback; beside it, in the same
run, the bare cost of building and POSTing the same payloads without the store. Targets at 1,000,000:
ours at least 0.8 of the bare rate, and a peak RSS of at most 150 MB. First it prints what a recipient's
two signed links cost, the way they were made before (two itsdangerous tokens) and now (one HMAC).
The bare loop runs just before and just after ours, and the ratio takes the two together (the load of a
shared machine changes from minute to minute); each bare rate is printed below the line.

    PYTHONPATH=$PWD .venv/bin/python bench/send.py [--sizes 100000 1000000] [--databases sqlite postgres]
        [--segments] [--request-process 4]

--segments gives the issue three sections and has one subscriber in 5 leave out Opinion and one in 7
Analysis and Opinion: the plan then groups recipients into three segments and the send renders two
more versions of the issue (with the real templates) before the first batch.

Each measured part runs in a fresh child process so that its peak RSS (ru_maxrss) is its own; the
fake server runs in a process of its own too (it keeps only counts). Ours makes and posts its requests
in a process of its own (digest/delivery/posting.py), whose peak RSS is printed apart. Subscribers are
seeded with one INSERT ... SELECT over a generated series.

--hostile runs instead the whole bad day of issue 14, with the real commands, and checks that every
reader got the issue exactly once:

    PYTHONPATH=$PWD .venv/bin/python bench/send.py --hostile [--readers 20000] [--databases sqlite postgres]

the fake SendGrid fails one request in five (429, 500, 503 in turn), accepts request 7 and never
answers it (the sender times out: unknown), and holds request 23 while `digest send` is SIGKILLed (it
accepts it all the same: unknown too); then `digest send --resume` sends the rest, and the fake's
`processed` and `delivered` events for everything it accepted are posted, signed, to the real
/webhooks/sendgrid of `digest serve`, which settles the unknown batches. It prints the readers, the
messages the fake accepted per reader (min and max: 1 and 1 is the goal), the batches of unknown fate
before the events, and the seconds from the first send to the last event.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import TEST_SECRET_KEY  # noqa: E402
from tests.pgschema import throwaway_schema  # noqa: E402

API_KEY = "SG.bench-key"
WEEK = "2026-W48"


def issue_html() -> str:
    """About 60 KB of HTML, the size of a full issue, with the per-recipient placeholders."""
    card = (
        '<tr><td style="padding:12px 24px;font-family:Georgia,serif;font-size:16px;line-height:1.5;color:#222">'
        '<a href="https://meridian-review.example.org/articles/{i}" style="color:#0b3d91">Article {i}: the week in '
        "diplomacy</a><p>A teaser of about thirty-five words that tells the reader why this article matters this "
        "week, written by an editor and kept short enough to scan in a second or two.</p></td></tr>"
    )
    cards = "".join(card.format(i=i) for i in range(150))
    return (
        "<!doctype html><html><body><p>Hello %%first_name%%,</p><table>" + cards + "</table>"
        '<a href="%%unsubscribe_url%%">Unsubscribe</a> <a href="%%preferences_url%%">Preferences</a></body></html>'
    )


def settings_env(database_url: str, api_host: str, workdir: Path) -> dict:
    return {
        "DIGEST_DIR": str(workdir),  # the publication folder: issue files go to its var/issues/
        "DIGEST_DATABASE_URL": database_url,
        "DIGEST_CONFIG": str(ROOT / "examples" / "digest.toml"),
        "DIGEST_SECRET_KEY": TEST_SECRET_KEY,
        "DIGEST_BASE_URL": "https://news.example.org",
        "DIGEST_PROVIDER": "sendgrid",
        "DIGEST_SENDGRID_API_KEY": API_KEY,
        "DIGEST_SENDGRID_API_HOST": api_host,
        "DIGEST_OUTBOX_DIR": str(workdir / "outbox"),
    }


# --- the parent: set up, run the children, print -------------------------------------------------


def segmented_content() -> dict:
    """Three sections of ten articles each, the shape compose makes."""

    def card(section: str, i: int) -> dict:
        return {
            "title": f"{section} article {i}: the week in diplomacy",
            "url": f"https://meridian-review.example.org/{section.lower()}/{i}",
            "section": section,
            "teaser": "A teaser of about thirty-five words that tells the reader why this article matters.",
            "excerpt": "An excerpt of a paragraph or two, long enough to give the gist of the argument.",
        }

    sections = ["Reporting", "Analysis", "Opinion"]
    return {
        "title": "The Meridian Review",
        "date": "2026-11-30",
        "date_display": "November 30, 2026",
        "intro": "",
        "top": card("Reporting", 0),
        "sections": [{"name": s, "articles": [card(s, i) for i in range(1, 11)]} for s in sections],
    }


def seed(database_url: str, count: int, segmented: bool = False) -> None:
    from sqlalchemy import text

    from digest.config import load_newsletter, load_settings
    from digest.core import build_core
    from digest.store.models import Issue, utcnow
    from subscribers.store import email_hash

    core = build_core(load_settings(database_url=database_url), load_newsletter(ROOT / "examples" / "digest.toml"))
    now = utcnow().replace(tzinfo=None)
    preferences = "'{}'"
    if segmented:
        preferences = (
            'CASE WHEN g.i % 7 = 0 THEN \'{"exclude_sections": ["Analysis", "Opinion"]}\' '
            "WHEN g.i % 5 = 0 THEN '{\"exclude_sections\": [\"Opinion\"]}' ELSE '{}' END"
        )
    with core.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            series = "SELECT generate_series(1, :n) AS i"
            hashed = "encode(sha256(convert_to('reader' || g.i || '@example.org', 'UTF8')), 'hex')"
            if segmented:  # a CASE over text literals is text, and PostgreSQL does not turn it into json itself
                preferences = f"CAST({preferences} AS json)"
        else:
            series = "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :n) SELECT i FROM s"
            conn.connection.driver_connection.create_function("bench_email_hash", 1, email_hash, deterministic=True)  # type: ignore[union-attr]
            hashed = "bench_email_hash('reader' || g.i || '@example.org')"
        conn.execute(
            text(
                "INSERT INTO subscribers (email, email_hash, name, status, consent_source, consent_at, confirmed_at, "
                "preferences, link_key, created_at, updated_at) "
                f"SELECT 'reader' || g.i || '@example.org', {hashed}, 'Reader ' || g.i, 'active', 'import', "
                ":now, :now, "
                f"{preferences}, 'bench-key-' || g.i, :now, :now FROM ({series}) g"
            ),
            {"n": count, "now": now},
        )
    with core.sessions.begin() as session:
        session.add(
            Issue(
                week=WEEK,
                slug=WEEK.lower(),
                status="draft",
                window_start=utcnow(),
                window_end=utcnow(),
                subject="The Meridian Review: the week in diplomacy",
                content=segmented_content() if segmented else {},
                html=issue_html(),
                text="Hello %%first_name%%,\n\nThe week.\n\nUnsubscribe: %%unsubscribe_url%%\n",
                rendered_at=utcnow(),
            )
        )
    core.close()


def child(mode: str, env: dict, count: int) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--count", str(count)],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"{mode} child failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def fake_stats(url: str) -> dict:
    import urllib.request

    with urllib.request.urlopen(url + "/_stats") as response:
        return json.loads(response.read())


def request_process_config(workdir: Path, batches: int) -> Path:
    """The example newsletter with `delivery.request_process_batches` set."""
    text = (ROOT / "examples" / "digest.toml").read_text(encoding="utf-8")
    text, found = re.subn(r"(?m)^request_process_batches = \d+", f"request_process_batches = {batches}", text)
    if not found:
        raise SystemExit("examples/digest.toml has no request_process_batches line")
    path = workdir / "request-process.toml"
    path.write_text(text, encoding="utf-8")
    return path


def measure(database: str, count: int, workdir: Path, segmented: bool = False, config: Path | None = None) -> dict:
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.sendgrid", "--api-key", API_KEY, "--count-only"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    url = fake.stdout.readline().strip()
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(fake.wait)
        cleanup.callback(fake.terminate)
        if database == "sqlite":
            database_url = f"sqlite:///{workdir / f'bench-{count}.db'}"
        else:
            database_url = cleanup.enter_context(throwaway_schema("bench"))
        started = time.perf_counter()
        seed(database_url, count, segmented)
        seeded = time.perf_counter() - started
        env = settings_env(database_url, url, workdir)
        if config is not None:
            env["DIGEST_CONFIG"] = str(config)
        # The bare loop runs before and after ours, and ours is compared with the two together: on a
        # shared machine the load changes from one minute to the next, and one bare run alone measured
        # the minute it ran in as much as the code.
        before = child("bare", env, count)
        ours = child("send", env, count)
        after = child("bare", env, count)
        bare = {
            "send_s": (before["send_s"] + after["send_s"]) / 2,
            "rate": 2 * count / (before["send_s"] + after["send_s"]),
            "peak_mb": max(before["peak_mb"], after["peak_mb"]),
            "rates": (before["rate"], after["rate"]),
        }
        stats = fake_stats(url)
    return {"database": database, "count": count, "seed_s": seeded, "bare": bare, "ours": ours, "fake": stats}


def link_cost(rounds: int = 20_000) -> tuple[float, float]:
    """Microseconds per recipient for their two signed links (unsubscribe, preferences): as they were
    made before (an itsdangerous URLSafeTimedSerializer token per link) and as `SignedLinks` makes them
    now (one HMAC for both). The best of five runs of each, in this process."""
    import timeit

    from itsdangerous import URLSafeTimedSerializer

    from digest.email.links import Links
    from subscribers.audience import Person
    from subscribers.tokens import SignedLinks, Tokens

    person = Person(1, "reader1@example.org", "Reader 1", "bench-key-1")
    links = SignedLinks(Tokens(TEST_SECRET_KEY), Links("https://news.example.org"))

    def before() -> None:
        for purpose in ("unsubscribe", "preferences"):
            URLSafeTimedSerializer([TEST_SECRET_KEY], salt=f"digest.{purpose}").dumps(person.link_key)

    def now() -> None:
        links.managing(person)

    return tuple(min(timeit.repeat(f, number=rounds, repeat=5)) / rounds * 1e6 for f in (before, now))  # type: ignore[return-value]


def print_link_cost() -> None:
    before, now = link_cost()
    print(
        f"signed links per recipient (unsubscribe + preferences): before {before:.1f} us (two itsdangerous "
        f"tokens), now {now:.1f} us (one HMAC), {before / now:.0f}x less",
        flush=True,
    )


# --- the hostile run (issue 14) -------------------------------------------------------------------

HUNG_REQUEST = 7  # accepted, never answered: the sender's timeout leaves its batch unknown
KILL_REQUEST = 23  # held while the sender is SIGKILLed, then accepted: unknown too
HOSTILE_BATCH = 500


def hostile_config(workdir: Path) -> Path:
    text = (ROOT / "examples" / "digest.toml").read_text(encoding="utf-8")
    for old, new in [
        ("batch_size = 1000", f"batch_size = {HOSTILE_BATCH}"),
        ("request_timeout_seconds = 30", "request_timeout_seconds = 2"),
        ("backoff_seconds = 1.0", "backoff_seconds = 0.05"),
        ("backoff_max_seconds = 60.0", "backoff_max_seconds = 0.5"),
    ]:
        assert old in text, old
        text = text.replace(old, new)
    path = workdir / "hostile.toml"
    path.write_text(text, encoding="utf-8")
    return path


def digest(env: dict, *args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "digest.cli", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def unknown_batches(database_url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM batches WHERE status = 'submitting'")).scalar()
    engine.dispose()
    return count


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settle_through_webhook(env: dict, workdir: Path, fake_url: str) -> tuple[int, int]:
    """`digest serve` with a verification key; the fake's events for all it accepted, signed, posted.
    Returns (events posted, batches settled)."""
    import httpx

    from tests.fakes.sendgrid import WebhookSigner, events_for, post_events

    signer = WebhookSigner()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = digest(
        {**env, "DIGEST_SENDGRID_WEBHOOK_PUBLIC_KEY": signer.public_b64}, "serve", "--port", str(port), cwd=workdir
    )
    try:

        def up() -> bool:
            try:
                return httpx.get(url + "/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return server.poll() is not None

        wait_for(up, "digest serve", 60)
        if server.poll() is not None:
            raise SystemExit(f"digest serve failed:\n{server.stderr.read()}")
        accepted = httpx.get(fake_url + "/_accepted", timeout=60).json()
        events = events_for(accepted, ["processed", "delivered"])
        answers = post_events(url, signer, events)
        refused = [a for a in answers if a.status_code != 200]
        if refused:
            raise SystemExit(f"the webhook refused a batch: {refused[0].status_code} {refused[0].text[:200]}")
        return len(events), sum(a.json()["batches_settled"] for a in answers)
    finally:
        server.terminate()
        server.communicate(timeout=20)


def start_fake() -> tuple[subprocess.Popen, str]:
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.sendgrid", "--api-key", API_KEY, "--faults-every", "5",
         "--faults", "429", "500", "503", "--at", f"{HUNG_REQUEST}:accept_then_hang:600",
         "--at", f"{KILL_REQUEST}:delay:3"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    return fake, fake.stdout.readline().strip()


def hostile(database: str, readers: int, workdir: Path) -> dict:
    fake, url = start_fake()
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(fake.wait)
        cleanup.callback(fake.terminate)
        if database == "sqlite":
            database_url = f"sqlite:///{workdir / f'hostile-{readers}.db'}"
        else:
            database_url = cleanup.enter_context(throwaway_schema("hostile"))
        seed(database_url, readers)
        env = {**settings_env(database_url, url, workdir), "DIGEST_CONFIG": str(hostile_config(workdir))}
        started = time.perf_counter()
        sender = digest(env, "send", "--week", WEEK, cwd=workdir)
        wait_for(lambda: fake_stats(url)["requests"] >= KILL_REQUEST or sender.poll() is not None, "the kill request")
        sender.kill()  # SIGKILL: no handler runs, the batch in flight stays `submitting`
        sender.communicate(timeout=30)
        killed = fake_stats(url)
        wait_for(lambda: fake_stats(url)["accepted_requests"] > killed["accepted_requests"], "the held request")
        resumed = digest(env, "send", "--week", WEEK, "--resume", cwd=workdir)
        resume_out, resume_err = resumed.communicate(timeout=600)
        if "Traceback" in resume_err:
            raise SystemExit(f"digest send --resume failed:\n{resume_err}")
        unknown_before = unknown_batches(database_url)
        events, settled = settle_through_webhook(env, workdir, url)
        seconds = time.perf_counter() - started
        final = digest(env, "send", "--week", WEEK, "--resume", cwd=workdir)
        final_out, final_err = final.communicate(timeout=120)
        stats = fake_stats(url)
        unknown_after = unknown_batches(database_url)
    return {
        "database": database,
        "readers": readers,
        "stats": stats,
        "killed_at_request": killed["requests"],
        "resume_exit": resumed.returncode,
        "resume_summary": next((line for line in resume_out.splitlines() if line.startswith("sent ")), ""),
        "unknown_before": unknown_before,
        "unknown_after": unknown_after,
        "events": events,
        "settled": settled,
        "final": (final.returncode, (final_out.strip() or final_err.strip()).splitlines()[-1:]),
        "seconds": seconds,
    }


def print_hostile(r: dict) -> None:
    s = r["stats"]
    print(f"[{r['database']}] readers: {r['readers']:,}", flush=True)
    print(
        f"  messages accepted by the fake per reader: min {s['min_per_recipient']}, max {s['max_per_recipient']} "
        f"({s['distinct_recipients']:,} distinct readers, {s['accepted_recipients']:,} messages in all)"
    )
    print(
        f"  requests: {s['requests']} ({s['requests'] - s['accepted_requests']} answered 429, 500 or 503 and "
        f"retried); sender SIGKILLed at request {r['killed_at_request']}"
    )
    print(f"  digest send --resume: exit {r['resume_exit']}; {r['resume_summary']}")
    print(f"  batches unknown before settling: {r['unknown_before']}")
    print(
        f"  settling: {r['events']:,} signed events posted to /webhooks/sendgrid settled {r['settled']} batches; "
        f"unknown after: {r['unknown_after']}"
    )
    print(f"  then digest send --resume: exit {r['final'][0]}: {' '.join(r['final'][1])}")
    print(f"  seconds (first send to last event): {r['seconds']:.1f}")
    if s["violations"]:
        print("  fake SendGrid saw violations:", s["violations"][:3])
    ok = (
        s["min_per_recipient"] == s["max_per_recipient"] == 1
        and s["distinct_recipients"] == r["readers"]
        and r["unknown_after"] == 0
    )
    print("  every reader mailed exactly once:", "yes" if ok else "NO", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="digest send benchmark")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--segments", action="store_true", help="three segments (see the module's docstring)")
    parser.add_argument(
        "--request-process",
        type=int,
        default=None,
        help="delivery.request_process_batches for ours (default: the example newsletter's, 0: a thread posts)",
    )
    parser.add_argument("--hostile", action="store_true", help="the bad-day run of issue 14 (see the docstring)")
    parser.add_argument("--readers", type=int, default=20_000, help="readers of the --hostile run")
    parser.add_argument("--child")
    parser.add_argument("--count", type=int)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](args.count)))
        return
    if args.hostile:
        for database in args.databases:
            with tempfile.TemporaryDirectory() as tmp:
                print_hostile(hostile(database, args.readers, Path(tmp)))
        return
    print_link_cost()
    print(f"{'store':9} {'subscribers':>11} {'seed s':>7} {'plan s':>7} {'send s':>7} {'ours/s':>8} "
          f"{'bare/s':>8} {'ratio':>6} {'ours MB':>8} {'bare MB':>8} {'accepted':>9}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        config = None if args.request_process is None else request_process_config(Path(tmp), args.request_process)
        for database in args.databases:
            for count in args.sizes:
                r = measure(database, count, Path(tmp), args.segments, config)
                label = database + ("+seg" if args.segments else "")
                ours, bare = r["ours"], r["bare"]
                print(
                    f"{label:9} {count:>11,} {r['seed_s']:>7.1f} {ours['plan_s']:>7.1f} {ours['send_s']:>7.1f} "
                    f"{ours['rate']:>8,.0f} {bare['rate']:>8,.0f} {ours['rate'] / bare['rate']:>6.2f} "
                    f"{ours['peak_mb']:>8.0f} {bare['peak_mb']:>8.0f} {r['fake']['accepted_recipients']:>9,}",
                    flush=True,
                )
                process = f"; ours' request process: {ours['process_mb']:.0f} MB peak RSS" if ours["process_mb"] else ""
                print(
                    f"  bare before and after ours: {bare['rates'][0]:,.0f}/s and {bare['rates'][1]:,.0f}/s; "
                    f"ours sending alone (plan left out): {count / ours['send_s']:,.0f}/s{process}",
                    flush=True,
                )
                if r["fake"]["violations"]:
                    print("  fake SendGrid saw violations:", r["fake"]["violations"][:3])
    print("rate = recipients per second (ours: plan + send, from the store; bare: build + POST only, its runs")
    print("before and after ours taken together);")
    print("ratio = ours / bare (target >= 0.8); MB = peak RSS of the process (target <= 150 at 1,000,000;")
    print("with --request-process, ours also runs a request process, its peak printed below the line);")
    print("accepted = recipients the fake SendGrid took from the three runs (3 x subscribers)")


# --- the children --------------------------------------------------------------------------------


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def peak_children_mb() -> float:
    """The largest peak RSS of this process's children that ended: the send's request process."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def child_send(count: int) -> dict:
    """`digest send` as the CLI does it: plan in the store, then send every batch."""
    from digest.content.weeks import Week
    from digest.core import build_core
    from digest.delivery import run
    from digest.delivery.plan import plan_batches
    from digest.jobs.issues import find_issue
    from digest.store.models import Issue

    core = build_core()
    issue = find_issue(core, Week.parse(WEEK))
    started = time.perf_counter()
    with core.sessions.begin() as session:
        mailer = core.mailer()
        plan_batches(
            session, mailer.audience, session.get_one(Issue, issue.id), batch_size=mailer.batch_size, now=core.now()
        )
    planned = time.perf_counter()
    _, report = run.deliver(core.mailer(), issue)
    done = time.perf_counter()
    assert report.sent == count, (report.sent, count)
    return {
        "plan_s": planned - started,
        "send_s": done - planned,
        "rate": count / (done - started),
        "peak_mb": peak_mb(),
        "process_mb": peak_children_mb(),
    }


def child_bare(count: int) -> dict:
    """The same payloads built and POSTed with no store: the recipients are generated in memory,
    one batch at a time, with the same per-recipient values (signed links) and the same provider."""
    from digest.content.weeks import Week
    from digest.core import build_core
    from digest.delivery import run
    from digest.jobs.issues import find_issue
    from subscribers.audience import Person

    core = build_core()
    issue = find_issue(core, Week.parse(WEEK))
    mailer = core.mailer()
    outgoing = run.outgoing(mailer.addresses, issue)
    provider = mailer.provider
    size = mailer.batch_size
    started = time.perf_counter()
    for first in range(1, count + 1, size):
        recipients = []
        for i in range(first, min(first + size, count + 1)):
            person = Person(i, f"bare{i}@example.org", f"Reader {i}", f"bench-key-{i}")
            recipients.append(core.audience.recipient(person))
        provider.send_batch(outgoing, recipients, batch_id=first // size + 1)
    seconds = time.perf_counter() - started
    return {"send_s": seconds, "rate": count / seconds, "peak_mb": peak_mb()}


CHILDREN = {"send": child_send, "bare": child_bare}

if __name__ == "__main__":
    main()
