"""What `digest send` shows: the dry-run plan, the progress bar, the summary and the batches whose
fate is unknown; and how SIGINT and SIGTERM stop it cleanly (the batch in flight finishes first)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from rich.console import Console

from digest.cli.output import SendBar, progress_bar
from digest.config import NewsletterConfig
from digest.core import Digest
from digest.delivery import run
from digest.delivery.sender import SendReport
from digest.delivery.waves import LocalDelivery
from digest.errors import UsageError
from digest.store.models import Issue


def local_delivery(core: Digest) -> LocalDelivery | None:
    from digest.jobs.local import next_local_delivery

    return next_local_delivery(core)


def wave_lines(waves: list[run.WaveFigures], *, planned: bool) -> list[str]:
    """One line per wave: its zones, their local time and offset, the UTC instant, and its readers."""
    lines = []
    for w in waves:
        zones = ", ".join(w.zones[:6]) + (f" and {len(w.zones) - 6} more" if len(w.zones) > 6 else "")
        figures = f"{w.recipients} recipients"
        if planned:
            figures += f" ({w.sent} sent, {w.pending} pending, {w.skipped} skipped, {w.failed} failed"
            figures += f", {w.cancelled} cancelled)" if w.cancelled else ")"
        lines.append(
            f"  wave {w.number}: {w.local} local (UTC{w.offset}) = {w.send_at:%Y-%m-%d %H:%M} UTC: {figures}; {zones}"
        )
    return lines


def print_dry_run(core: Digest, issue: Issue, out: Console) -> None:
    local = local_delivery(core)
    plan = run.dry_run(core.mailer(), issue, local=local)
    out.print(f"dry run of issue {issue.week} ({issue.status}): {issue.subject}", highlight=False)
    out.print(f"provider: {plan.provider}; batch size {plan.batch_size}")
    if plan.planned:
        states = ", ".join(f"{n} {s}" for s, n in sorted(plan.state.batches.items()))
        out.print(f"stored plan: {plan.recipients} recipients in {plan.batches} batches ({states})")
    else:
        out.print(f"would plan: {plan.recipients} recipients in {plan.batches} batches (nothing stored)")
    if len(plan.segments) > 1 or any(seg.left_out for seg in plan.segments):
        # One rendering per set of left-out sections; each batch carries one of them.
        for seg in plan.segments:
            name = "without " + ", ".join(seg.left_out) if seg.left_out else "the full issue"
            out.print(f"  {name}: {seg.recipients} recipients in {seg.batches} batches", highlight=False)
    if plan.waves:
        how = "planned" if plan.planned else "would plan"
        out.print(f"{how}: {len(plan.waves)} waves, each reader at {plan.waves[0].local.split()[-1]} local time")
        for line in wave_lines(plan.waves, planned=plan.planned):
            out.print(line, highlight=False, markup=False, soft_wrap=True)
    if plan.left_out_everything:
        out.print(f"not mailed: {plan.left_out_everything} subscribers left out every section this issue has")
    if plan.first_batch_recipients:
        out.print(
            f"first batch to send: {plan.first_batch_recipients} recipients, "
            f"{plan.first_batch_bytes:,} bytes of payload ({plan.first_batch_bytes / 1024 / 1024:.2f} MB)"
        )
    else:
        out.print("nothing left to send")
    out.print("nothing was sent")


def send_test(core: Digest, issue: Issue, address: str, out: Console) -> None:
    message_id = run.send_test(core.mailer(), issue, address)
    out.print(f"test message of {issue.week} sent to {address} via {core.provider.name} (message id {message_id})")


@contextlib.contextmanager
def stop_on_signals(err: Console) -> Iterator[threading.Event]:
    """SIGINT and SIGTERM set the event: the batch in flight finishes and is recorded, then we stop.
    A second SIGINT stops at once (the batch in flight is then left in an unknown state)."""
    stop = threading.Event()
    previous: dict[signal.Signals, Callable[[int, FrameType | None], object] | int | None] = {}

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()
        err.print(
            f"[yellow]{signal.Signals(signum).name}: finishing the batch in flight, then stopping "
            "(continue later with `digest send --resume`)[/]"
        )

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def unknown_lines(report: SendReport, week: str, config: NewsletterConfig) -> list[str]:
    """Each batch of unknown fate (since when, in the newsletter's time), why, and the three ways it gets settled."""
    lines = []
    for unknown in report.unknown:
        since = f" since {config.local_time(unknown.since)}" if unknown.since else ""
        why = unknown.reason or "a send stopped during its request"
        lines.append(
            f"[yellow]batch {unknown.number} ({unknown.recipients} recipients) is in an unknown state{since}:[/] "
            f"{why}, so it may or may not have gone out. It was not re-sent. It settles by itself when SendGrid's "
            "signed events for it reach /webhooks/sendgrid (DIGEST_SENDGRID_WEBHOOK_PUBLIC_KEY must be set). "
            f"Or check the provider's activity: if it went out, `digest send --week {week} --mark-sent "
            f"{unknown.number}`; if not, `digest send --week {week} --resume --retry-unknown` re-sends it "
            "(anyone it did reach then gets it twice)."
        )
    return lines


def failed_recipient_lines(core: Digest, issue: Issue, limit: int = 10) -> list[str]:
    """The recipients refused one by one and why, so the operator can fix or remove them."""
    count, rows = run.failed_recipients(core.mailer(), issue.id, limit=limit)
    if not count:
        return []
    lines = [f"{count} recipient(s) could not be mailed (the rest were not held up):"]
    # An address stored by an older version may hold line breaks: shown escaped, it cannot fake a line.
    lines += [f"  {email if email.isprintable() else ascii(email)}: {reason}" for email, reason in rows]
    if count > len(rows):
        lines.append(f"  … and {count - len(rows)} more (deliveries.error in the store)")
    lines.append("  fix or remove these subscribers (`digest subscribers show ADDRESS`); they are not retried")
    return lines


def mark_sent(core: Digest, issue: Issue, number: int, out: Console) -> None:
    recipients = run.mark_sent(core.mailer(), issue, number)
    out.print(
        f"batch {number} of issue {issue.week} marked submitted; {recipients} recipients recorded as sent "
        "(nothing was sent now)",
        highlight=False,
    )


def cancel(core: Digest, issue: Issue, out: Console) -> None:
    done = run.cancel(core.mailer(), issue)
    where = " and at the provider" if done.at_provider else ""
    out.print(
        f"issue {issue.week}: {done.batches} batches ({done.recipients} recipients) cancelled{where}; "
        "they will not be sent",
        highlight=False,
    )
    if done.too_late:
        out.print(
            f"{done.too_late} batches handed to the provider are due within minutes: they may still go out",
            highlight=False,
        )


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}es" if word.endswith("ch") else f"{n} {word}s"


def summary(report: SendReport, issue: run.IssueFigures, week: str) -> str:
    """The one line a send ends with: what this send did with the batches it took, then where every planned
    recipient of the issue stands. Each part adds up: sent + failed + skipped + unknown is the recipients
    of this send's batches, and the issue's figures add up to its planned recipients."""
    this = (
        f"this send {plural(report.recipients, 'recipient')} in {plural(report.batches, 'batch')}: "
        f"sent {report.sent}, failed {report.failed}, skipped {report.skipped}, "
        f"unknown {report.new_unknown_recipients} ({report.seconds:.1f}s, {report.rate:,.0f} recipients/s)"
    )
    whole = (
        f"the issue {plural(issue.recipients, 'recipient')} in {plural(issue.batches, 'batch')}: "
        f"sent {issue.sent}, failed {issue.failed}, skipped {issue.skipped}, unknown {issue.unknown}"
    )
    if issue.cancelled:
        whole += f", cancelled {issue.cancelled}"
    whole += f", not sent yet {issue.not_sent}"
    return f"issue {week}: {this}; {whole}"


def _refuse_unfinished(issue: Issue, state: run.PlanState) -> None:
    parts = ", ".join(f"{n} {s}" for s, n in sorted(state.batches.items()))
    raise UsageError(
        f"issue {issue.week} has an unfinished send ({parts}); "
        "unless a send is running now, continue it with `digest send --resume` (submitted batches are skipped)"
        + (
            f"; {state.batches['submitting']} batch(es) of unknown fate are not re-sent by it"
            if state.batches.get("submitting")
            else ""
        )
        + (
            '; it is sent in waves (deliver = "local"): `digest schedule` sends each wave when due'
            if issue.waves
            else ""
        )
    )


def check_start(
    issue: Issue, state: run.PlanState, *, out: Console, err: Console, resume: bool, retry_unknown: bool
) -> bool:
    """Checks before a send; False when there is nothing to do."""
    if state.unfinished and not resume:
        _refuse_unfinished(issue, state)
    if state.planned and not state.unfinished:
        out.print(f"issue {issue.week} was already sent to {state.recipients} recipients; nothing to do")
        return False
    if retry_unknown and state.batches.get("submitting"):
        err.print(
            f"[yellow]--retry-unknown: re-sending {state.batches['submitting']} batch(es) of unknown fate; "
            "anyone they had already reached gets the issue a second time[/]",
            highlight=False,
        )
    return True


def send(
    core: Digest, issue: Issue, *, out: Console, err: Console, resume: bool = False, retry_unknown: bool = False
) -> int:
    """Run the send with a progress bar; returns the exit code."""
    state = run.plan_state(core.sessions, issue.id)
    if not check_start(issue, state, out=out, err=err, resume=resume, retry_unknown=retry_unknown):
        return 0
    bar = SendBar(progress_bar())
    with stop_on_signals(err) as stop, bar.progress:
        planned, report = run.deliver(
            core.mailer(),
            issue,
            resume=resume,
            retry_unknown=retry_unknown,
            stop=stop,
            on_start=bar.on_start,
            on_batch=bar.on_batch,
            on_stage=bar.on_stage,
            local=local_delivery(core) if not state.planned else None,
        )
    return outcome(core, issue, planned, report, out=out, err=err)


def outcome(core: Digest, issue: Issue, planned: int, report: SendReport, *, out: Console, err: Console) -> int:
    """Print what a send did and what is left; returns the exit code."""
    out.print(summary(report, run.issue_figures(core.sessions, issue.id), issue.week), highlight=False)
    if report.waiting:
        out.print(
            f"{report.waiting} batches ({report.waiting_recipients} recipients) wait for their wave, the next at "
            f"{core.config.local_time(report.next_wave)}: `digest schedule` sends each when due "
            "(or `digest send --resume` then)",
            highlight=False,
        )
        for line in wave_lines(run.planned_waves_of(core.mailer(), issue), planned=True):
            out.print(line, highlight=False, markup=False, soft_wrap=True)
    if report.not_planned:
        out.print(f"not mailed: {report.not_planned} subscribers left out every section this issue has")
    for number, reason in report.failed_batches:
        err.print(f"batch {number} failed: {reason}", highlight=False)
    for line in failed_recipient_lines(core, issue):
        err.print(line, highlight=False, markup=False, soft_wrap=True)
    for line in unknown_lines(report, issue.week, core.config):
        err.print(line, highlight=False)
    if report.paused:
        left_unknown = f" and {report.new_unknown} left unknown" if report.new_unknown else ""
        err.print(
            f"paused: {len(report.failed_batches)} batches failed{left_unknown} (more than "
            f"delivery.max_failed_batches = {core.config.delivery.max_failed_batches}); "
            "fix the cause, then `digest send --resume`"
        )
        return 1
    if report.stopped:
        err.print("stopped; `digest send --resume` continues where this send left off")
        return 130
    if report.failed or report.unknown or report.left_failed:
        if report.left_failed:
            err.print(f"{report.left_failed} batches failed in an earlier send; `digest send --resume` retries them")
        return 1
    return 0
