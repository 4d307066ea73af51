"""The issue's commands: `digest run --once` (the weekly job), `build` (the draft), `render` (content
given as JSON, for template work) and `send`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from digest.cli.common import WeekOption, WindowOption, open_core, week_or_default, week_or_window
from digest.cli.output import SendBar, err, out, size_line, write_issue_files
from digest.cli.sources import gather_progress
from digest.errors import NothingToSend, UsageError

if TYPE_CHECKING:
    from digest.gather import SourceReport

OutFolder = Annotated[Path, typer.Option("--out", help="Folder for issue.html, issue.txt, issue.mjml.")]


def run(
    once: Annotated[bool, typer.Option("--once", help="Run the weekly job now and exit.")] = False,
    week: WindowOption = None,
) -> None:
    """Gather, compose, render and send the week's issue (the weekly job).

    A source that fails does not stop the issue: it is built and sent with what the others gave. Exit code
    1 when a source or a message failed (the rest was done; running again mails nobody twice), 2 for a
    bad setting or newsletter file."""
    if not once:
        raise UsageError("digest run needs --once (the recurring job is `digest schedule`)")
    from digest.cli.send_report import failed_recipient_lines, local_delivery, stop_on_signals, summary, unknown_lines
    from digest.delivery.run import issue_figures
    from digest.jobs.weekly import run_once

    core = open_core()
    the_week = week_or_window(week)
    progress, advance = gather_progress(len(core.config.sources))
    sending = SendBar(progress)  # a second bar under the gather's, from composing to the last batch
    gathered: list[SourceReport] = []  # each source's report, final once the run is over (or stopped)

    def on_source(source: SourceReport) -> None:
        gathered.append(source)
        advance(source)

    try:
        # Ctrl-C or SIGTERM while sending: the batch in flight finishes and is recorded first.
        with progress, stop_on_signals(err) as stop:
            report = run_once(
                core,
                the_week,
                gather_progress=on_source,
                stop=stop,
                local=local_delivery(core),
                on_stage=sending.on_stage,
                on_start=sending.on_start,
                on_batch=sending.on_batch,
            )
    except NothingToSend as exc:
        err.print(str(exc))
        sources_failed = _failed_sources(gathered)
        if sources_failed:
            raise typer.Exit(1) from None
        return
    g = report.gather
    out.print(f"gathered {g.ok}/{len(g.sources)} sources: {g.new} new, {g.updated} updated articles")
    sources_failed = _failed_sources(g.sources)
    issue = report.issue
    html_path = write_issue_files(issue, core.settings.issues_dir / issue.slug)
    out.print(f"issue {issue.week} ({issue.status}): {issue.subject}")
    out.print(f"rendered issue: {html_path} (and issue.txt, issue.mjml beside it)")
    s = report.send
    out.print(summary(s, issue_figures(core.sessions, issue.id), issue.week), highlight=False)
    if s.waiting:
        out.print(
            f"{s.waiting} batches ({s.waiting_recipients} recipients) wait for their local time, the next at "
            f"{core.config.local_time(s.next_wave)}; `digest schedule` sends them",
            highlight=False,
        )
    for line in failed_recipient_lines(core, issue):
        err.print(line, highlight=False, markup=False, soft_wrap=True)
    for line in unknown_lines(s, issue.week, core.config):
        err.print(line, highlight=False)
    if core.provider.name == "outbox":
        out.print(f"outbox mail: {core.settings.outbox_dir / issue.slug}/")
    if s.failed or sources_failed:
        # The same meaning as `digest gather`'s 1: what could be done was done, and a person is needed.
        raise typer.Exit(1)


def _failed_sources(reports: list[SourceReport]) -> list[SourceReport]:
    """The sources that failed, each named on stderr with its error; the issue went on without them."""
    failed = [r for r in reports if not r.ok]
    if failed:
        names = ", ".join(repr(r.name) for r in failed)
        err.print(f"failed sources, left out of this run: {names}", highlight=False)
        for r in failed:
            err.print(f"source {r.name!r}: {r.error}", highlight=False)
    return failed


def build(
    week: WindowOption = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder for issue.html, issue.txt, issue.mjml.")] = None,
    top: Annotated[
        int | None, typer.Option("--top", help="Pin this article (its id) as the top story; kept on rebuilds.")
    ] = None,
    unpin: Annotated[bool, typer.Option("--unpin", help="Back to the newest article of the first section.")] = False,
) -> None:
    """Compose and render the draft (stored, status draft) and write it to files.

    Writes issue.html and issue.txt (per-recipient placeholders left in), issue.mjml (the MJML after
    Jinja2, before compiling) and preview.html (sample values filled in, to open in a browser).
    """
    from digest.jobs.weekly import build as build_issue

    if top is not None and unpin:
        raise UsageError("--top and --unpin contradict each other; give one")
    core = open_core()
    try:
        issue = build_issue(core, week_or_window(week), pin=top, unpin=unpin)
    except NothingToSend as exc:
        err.print(str(exc), highlight=False)
        return
    folder = out_dir or core.settings.issues_dir / issue.slug
    path = write_issue_files(issue, folder)
    _write_preview(issue.html or "", folder, core.settings.base_url, core.config.issue.first_name_fallback)
    window = f"{core.config.local_time(issue.window_start)} to {core.config.local_time(issue.window_end)}"
    out.print(f"issue {issue.week} ({issue.status}, articles {window}): {issue.subject}", highlight=False)
    out.print(size_line(issue.html or "", path), highlight=False)


def render(
    issue_json: Annotated[Path, typer.Argument(help="Content as JSON: title, date, intro, sections[].articles[].")],
    out_dir: OutFolder,
) -> None:
    """Render content given as JSON with the templates, without the store (for template work).

    The newsletter's name, address and links come from the newsletter file; each article needs only a
    title and a url. Without a "top", the first article of the first section is the top story.
    """
    from digest.jobs.document import render_document

    made = render_document(issue_json)
    path = write_issue_files(made.rendered, out_dir)
    _write_preview(made.rendered.html, out_dir, made.base_url, made.first_name_fallback)
    out.print(f"rendered {made.articles} articles from {issue_json}", highlight=False)
    out.print(size_line(made.rendered.html, path), highlight=False)


def _write_preview(html: str, folder: Path, base_url: str, first_name_fallback: str) -> None:
    """preview.html: the issue with sample values in its placeholders, to open in a browser."""
    from digest.email import placeholders

    preview = placeholders.fill_preview(html, base_url, first_name_fallback, html_part=True)
    (folder / "preview.html").write_text(preview, encoding="utf-8")


def send(
    week: WeekOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and the first batch's size; send nothing.")
    ] = False,
    test: Annotated[
        str | None, typer.Option("--test", metavar="ADDRESS", help="Send the issue to one address, marked [TEST].")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted or paused send; failed batches go again.")
    ] = False,
    retry_unknown: Annotated[
        bool,
        typer.Option(
            "--retry-unknown",
            help="With --resume: also re-send batches whose fate is unknown. RISK: if the provider had accepted "
            "one, its recipients get the issue twice; check the provider's activity first (or use --mark-sent).",
        ),
    ] = False,
    mark_sent: Annotated[
        int | None,
        typer.Option(
            "--mark-sent",
            metavar="BATCH",
            help="Settle batch number BATCH, of unknown fate, as sent (the provider's activity shows it went "
            "out): records it submitted and its recipients sent; sends nothing.",
        ),
    ] = None,
    cancel: Annotated[
        bool,
        typer.Option(
            "--cancel",
            help='Stop an issue whose waves (deliver = "local") have not all gone: its pending batches are '
            "never sent, and batches handed to SendGrid ahead of their time are cancelled there.",
        ),
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Send with N local processes at once (PostgreSQL only; each claims the next batch, none "
            "twice). More `digest send --resume` on other machines may join the same send.",
        ),
    ] = 1,
) -> None:
    """Send the week's rendered issue to every active subscriber not yet mailed, in stored batches.

    With `[schedule] deliver = "local"`, readers are planned into waves by their timezone and each wave
    goes at its local time: SendGrid takes the waves ahead (`send_at`); with SMTP and the outbox, waves
    not yet due are left to `digest schedule` (or a later `digest send --resume`)."""
    from digest.cli import send_report, send_workers
    from digest.jobs.issues import find_issue

    if sum([dry_run, test is not None, resume, mark_sent is not None, cancel]) > 1:
        raise UsageError("use one of --dry-run, --test, --resume, --mark-sent and --cancel")
    if retry_unknown and not resume:
        raise UsageError("--retry-unknown goes with --resume")
    if workers > 1 and (dry_run or test is not None or mark_sent is not None or cancel):
        raise UsageError(
            "--workers goes with a send (or --resume), not with --dry-run, --test, --mark-sent or --cancel"
        )
    core = open_core()
    send_workers.check_workers(core, workers)
    the_week = week_or_default(core, week)
    issue = find_issue(core, the_week)
    if issue is None:
        raise UsageError(f"no issue for {the_week}; run `digest build --week {the_week}` first")
    if dry_run:
        send_report.print_dry_run(core, issue, out)
        return
    if test is not None:
        send_report.send_test(core, issue, test, out)
        return
    if mark_sent is not None:
        send_report.mark_sent(core, issue, mark_sent, out)
        return
    if cancel:
        send_report.cancel(core, issue, out)
        return
    if workers > 1:
        code = send_workers.send_with_workers(
            core, issue, workers, out=out, err=err, resume=resume, retry_unknown=retry_unknown
        )
    else:
        code = send_report.send(core, issue, out=out, err=err, resume=resume, retry_unknown=retry_unknown)
    if code:
        raise typer.Exit(code)
