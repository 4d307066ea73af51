"""`digest send --workers N`: N local sender processes on one issue (PostgreSQL).

The parent plans the issue, forks N workers and waits. Each worker builds its own core and is an
ordinary sender (`digest.delivery.run.deliver`): it claims the next due batch with `FOR UPDATE SKIP
LOCKED`, so the N never send one batch twice, and hands its report back through a pipe. The parent adds
the reports up, and takes the recipients' counts and the batches of unknown fate from the store (a worker
that was killed leaves no report, but its work and its batch in flight are there). SIGINT or SIGTERM
reaches every worker: each finishes and records its batch in flight, then stops.

SQLite takes one writer at a time, so a second sender of an issue there would only wait for the first:
`--workers` above 1 on SQLite is refused, with the way to PostgreSQL."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import time
from multiprocessing.connection import Connection

from pydantic import TypeAdapter
from rich.console import Console

from digest.cli.output import progress_bar
from digest.cli.send_report import check_start, local_delivery, outcome, stop_on_signals
from digest.core import Digest
from digest.delivery import run
from digest.delivery.sender import SendReport, merge_reports, pending_count
from digest.errors import DigestError, UsageError
from digest.store.models import Issue

_REPORT = TypeAdapter(SendReport)


def check_workers(core: Digest, workers: int) -> None:
    if workers > 1 and core.engine.dialect.name != "postgresql":
        raise UsageError(
            f"--workers {workers} needs PostgreSQL: SQLite takes one writer at a time, so an issue has one "
            "sender there. Send without --workers, or move the store to PostgreSQL (DIGEST_DATABASE_URL)"
        )


def _worker(week: str, resume: bool, retry_unknown: bool, report_to: Connection) -> None:
    """One worker, forked from the parent: it has the parent's imports (no start-up cost) but builds its
    own core, so the parent's database connections are never used here; sends beside its siblings and
    hands its report back."""
    from digest.core import build_core
    from digest.jobs.issues import find_issue

    err = Console(stderr=True)
    core = build_core(migrate=False)
    try:
        issue = find_issue(core, week)
        if issue is None:
            raise UsageError(f"no issue for {week}")
        with stop_on_signals(Console(stderr=True, quiet=True)) as stop:  # the parent says what a signal does
            _, report = run.deliver(core.mailer(), issue, resume=resume, retry_unknown=retry_unknown, stop=stop)
        report_to.send_bytes(_REPORT.dump_json(report))
    except DigestError as exc:
        err.print(f"digest: error: worker pid {os.getpid()}: {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    finally:
        core.close()


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
    before = run.issue_figures(core.sessions, issue.id)
    unknown_before = {u.number for u in run.unknown_now(mailer, issue)}
    statuses = ("pending", "failed", "submitting") if retry_unknown else ("pending", "failed")
    total = pending_count(core.sessions, issue.id, statuses if resume else ("pending",))
    started = time.monotonic()
    # Forked, not spawned: a fresh Python would spend seconds importing before its first claim. Forked
    # before the progress bar's thread and the signal handlers exist, so the workers inherit neither.
    fork = multiprocessing.get_context("fork")
    core.engine.dispose()  # no pooled connection is inherited: each worker opens its own
    children, pipes = [], []
    for _ in range(workers):
        receive, send = fork.Pipe(duplex=False)
        child = fork.Process(target=_worker, args=(issue.week, resume, retry_unknown, send), daemon=False)
        child.start()
        send.close()
        children.append(child)
        pipes.append(receive)
    bar = progress_bar()
    task = bar.add_task("", total=total, what=f"sending ({workers} workers)")
    with stop_on_signals(err) as stop, bar:
        told = False
        while any(child.is_alive() for child in children):
            if stop.is_set() and not told:
                for child in children:
                    if child.is_alive() and child.pid:
                        os.kill(child.pid, signal.SIGTERM)
                told = True
            for child in children:
                child.join(0.2 / workers)
            bar.update(task, completed=total - pending_count(core.sessions, issue.id, statuses))
    reports = []
    for child, pipe in zip(children, pipes, strict=True):
        with contextlib.suppress(EOFError):  # a worker that died before writing closes the pipe empty
            if pipe.poll():
                reports.append(_REPORT.validate_json(pipe.recv_bytes()))
                continue
        code = child.exitcode or 0
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit {code}"
        err.print(
            f"[yellow]worker pid {child.pid} ended with {how} and no report: a batch it had in flight, "
            "if any, is of unknown fate (below)[/]",
            highlight=False,
        )
    report = merge_reports(reports)
    # What the store says, once every worker has ended: a killed worker's work is there, not in a report.
    after = run.issue_figures(core.sessions, issue.id)
    report.sent, report.failed, report.skipped = (
        after.sent - before.sent,
        after.failed - before.failed,
        after.skipped - before.skipped,
    )
    report.unknown = run.unknown_now(mailer, issue)
    report.unknown_batches = [u.number for u in report.unknown]
    # Those this send left unknown (a killed worker's batch among them), for the summary's "unknown", and
    # the batches this send took as the store counts them, so that a killed worker's earlier ones count.
    new_unknown = [u for u in report.unknown if u.number not in unknown_before]
    report.new_unknown_recipients = sum(u.recipients for u in new_unknown)
    submitted_now = run.plan_state(core.sessions, issue.id).batches.get("submitted", 0)
    report.batches = submitted_now - sent_before + len(new_unknown) + len({n for n, _ in report.failed_batches})
    report.already_submitted = sent_before
    report.not_planned = not_planned
    # The summary's time is the workers' own sending; starting them and planning come on top.
    out.print(f"{workers} workers: {time.monotonic() - started:.1f}s in all, starting them included")
    code = outcome(core, issue, planned, report, out=out, err=err)
    if len(reports) < len(children):
        return code or 1
    return code
