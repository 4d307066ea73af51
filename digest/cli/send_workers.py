"""`digest send --workers N`: N local sender processes on one issue (PostgreSQL), and what each of them
runs (`digest send --worker`, not shown in --help).

The parent plans the issue, starts N `digest send --worker` processes and waits. Each worker is an
ordinary sender (`digest.delivery.run.deliver`): it claims the next due batch with `FOR UPDATE SKIP
LOCKED`, so the N never send one batch twice, and it prints its report as one JSON line. The parent
adds the reports up and reads the batches of unknown fate from the store (a worker that was killed
leaves no report, but its batch in flight shows there). SIGINT or SIGTERM reaches every worker: each
finishes and records its batch in flight, then stops.

SQLite takes one writer at a time, so a second sender of an issue there would only wait for the first:
`--workers` above 1 on SQLite is refused, with the way to PostgreSQL."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time

from pydantic import TypeAdapter
from rich.console import Console

from digest.cli.output import progress_bar
from digest.cli.send_report import check_start, local_delivery, outcome, stop_on_signals
from digest.core import Digest
from digest.delivery import run
from digest.delivery.sender import SendReport, merge_reports, pending_count
from digest.errors import UsageError
from digest.store.models import Issue

_REPORT = TypeAdapter(SendReport)
_MARK = "worker report: "  # the line of a worker's stdout that carries its report
_READY = "worker ready"


def check_workers(core: Digest, workers: int) -> None:
    if workers > 1 and core.engine.dialect.name != "postgresql":
        raise UsageError(
            f"--workers {workers} needs PostgreSQL: SQLite takes one writer at a time, so an issue has one "
            "sender there. Send without --workers, or move the store to PostgreSQL (DIGEST_DATABASE_URL)"
        )


def send_as_worker(core: Digest, issue: Issue, *, out: Console, resume: bool, retry_unknown: bool) -> int:
    """One of the parent's workers: send beside the others, then print the report for the parent."""
    quiet = Console(stderr=True, quiet=True)  # the parent says once what a signal does
    state = run.plan_state(core.sessions, issue.id)
    # Started (imports, settings, the store) like its siblings: they begin claiming together.
    print(_READY, flush=True)
    sys.stdin.readline()
    with stop_on_signals(quiet) as stop:
        _, report = run.deliver(
            core.mailer(),
            issue,
            resume=resume,
            retry_unknown=retry_unknown,
            stop=stop,
            local=local_delivery(core) if not state.planned else None,
        )
    out.print(_MARK + _REPORT.dump_json(report).decode(), highlight=False, markup=False, soft_wrap=True)
    return 0


def send_with_workers(
    core: Digest, issue: Issue, workers: int, *, out: Console, err: Console, resume: bool, retry_unknown: bool
) -> int:
    """Plan, start `workers` sender processes, wait for them, print one summary; returns the exit code."""
    state = run.plan_state(core.sessions, issue.id)
    if not check_start(issue, state, out=out, err=err, resume=resume, retry_unknown=retry_unknown):
        return 0
    mailer = core.mailer()
    planned, not_planned, _ = run.prepare(mailer, issue, local=local_delivery(core) if not state.planned else None)
    sent_before = run.plan_state(core.sessions, issue.id).batches.get("submitted", 0)
    before = run.recipient_counts(core.sessions, issue.id)
    statuses = ("pending", "failed", "submitting") if retry_unknown else ("pending", "failed")
    total = pending_count(core.sessions, issue.id, statuses if resume else ("pending",))
    command = [sys.executable, "-m", "digest.cli", "send", "--week", issue.week, "--worker"]
    command += ["--resume"] * resume + ["--retry-unknown"] * retry_unknown
    started = time.monotonic()
    bar = progress_bar(f"sending ({workers} workers)")
    task = bar.add_task("", total=total)
    with stop_on_signals(err) as stop, bar:
        children = [
            subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # noqa: S603
            for _ in range(workers)
        ]
        for child in children:  # each says when it is ready (or ends: an error it has printed)
            if child.stdout:
                child.stdout.readline()
        for child in children:
            with contextlib.suppress(OSError):  # a worker that ended already
                if child.stdin:
                    child.stdin.write("go\n")
                    child.stdin.close()
        told = False
        while any(child.poll() is None for child in children):
            if stop.is_set() and not told:
                for child in children:
                    if child.poll() is None:
                        child.send_signal(signal.SIGTERM)
                told = True
            time.sleep(0.2)
            bar.update(task, completed=total - pending_count(core.sessions, issue.id, statuses))
        outputs = [child.stdout.read() if child.stdout else "" for child in children]
    reports = []
    for child, output in zip(children, outputs, strict=True):
        found = [line[len(_MARK) :] for line in output.splitlines() if line.startswith(_MARK)]
        if found:
            reports.append(_REPORT.validate_json(found[-1]))
            continue
        how = f"signal {signal.Signals(-child.returncode).name}" if child.returncode < 0 else f"exit {child.returncode}"
        err.print(
            f"[yellow]worker pid {child.pid} ended with {how} and no report: a batch it had in flight, "
            "if any, is of unknown fate (below)[/]",
            highlight=False,
        )
    report = merge_reports(reports)
    # What the store says, once every worker has ended: a killed worker's work is there, not in a report.
    after = run.recipient_counts(core.sessions, issue.id)
    report.sent, report.failed, report.skipped = (
        after.get(s, 0) - before.get(s, 0) for s in ("sent", "failed", "skipped")
    )
    report.unknown = run.unknown_now(mailer, issue)
    report.unknown_batches = [u.number for u in report.unknown]
    report.already_submitted = sent_before
    report.not_planned = not_planned
    # The summary's time is the workers' sending; starting N processes (imports, a connection) costs more.
    out.print(f"{workers} workers: {time.monotonic() - started:.1f}s in all, starting the processes included")
    code = outcome(core, issue, planned, report, out=out, err=err)
    if len(reports) < len(children):
        return code or 1
    return code
