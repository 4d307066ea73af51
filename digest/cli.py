"""The `digest` command: thin commands over the core built by `digest.core.build_core`.

Errors reach the user as one line on stderr: exit code 2 for bad input or configuration, 1 for
failures. `--json` output is one object per line.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.main import get_command

from digest.core import Digest, build_core
from digest.errors import DigestError, NothingToSend, UsageError
from digest.periods import Week

app = typer.Typer(
    help="Build and send a publication's weekly e-mail digest.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
subscribers_app = typer.Typer(help="The audience: add, import and list subscribers.", no_args_is_help=True)
db_app = typer.Typer(help="The store: apply migrations.", no_args_is_help=True)
app.add_typer(subscribers_app, name="subscribers")
app.add_typer(db_app, name="db")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

WeekOption = Annotated[
    str | None,
    typer.Option("--week", help="ISO week such as 2026-W48; default: the current week in the newsletter's timezone."),
]


def _core() -> Digest:
    return build_core()


def _week(core: Digest, week: str | None) -> Week:
    return Week.parse(week) if week else Week.containing(core.now(), core.config.tz)


def _write_issue_files(issue, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "issue.html").write_text(issue.html, encoding="utf-8")
    (folder / "issue.txt").write_text(issue.text, encoding="utf-8")
    (folder / "issue.mjml").write_text(issue.mjml or "", encoding="utf-8")
    return folder / "issue.html"


def _gather_progress(core: Digest):
    progress = Progress(
        TextColumn("gathering"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    task = progress.add_task("", total=len(core.config.sources))

    def advance(report) -> None:
        progress.update(task, advance=1, description=report.name)
        if not report.ok:
            progress.console.print(f"[yellow]source {report.name!r} failed:[/] {report.error}")

    return progress, advance


@app.command()
def run(
    once: Annotated[bool, typer.Option("--once", help="Run the weekly job now and exit.")] = False,
    week: WeekOption = None,
) -> None:
    """Gather, compose, render and send the week's issue (the weekly job)."""
    if not once:
        raise UsageError("digest run needs --once (the recurring job is `digest schedule`)")
    from digest.weekly import run_once

    core = _core()
    the_week = _week(core, week)
    progress, advance = _gather_progress(core)
    try:
        with progress:
            report = run_once(core, the_week, gather_progress=advance)
    except NothingToSend as exc:
        err.print(str(exc))
        return
    g = report.gather
    out.print(f"gathered {g.ok}/{len(g.sources)} sources: {g.new} new, {g.updated} updated articles")
    issue = report.issue
    html_path = _write_issue_files(issue, Path("var/issues") / issue.slug)
    out.print(f"issue {issue.period} ({issue.status}): {issue.subject}")
    out.print(f"rendered issue: {html_path} (and issue.txt, issue.mjml beside it)")
    s = report.send
    out.print(f"sent {s.sent} messages in {s.batches} batches; {s.skipped} skipped, {s.failed} failed")
    if s.unknown_batches:
        out.print(f"[yellow]batches in an unknown state (not re-sent): {s.unknown_batches}[/]")
    if core.provider.name == "outbox":
        out.print(f"outbox mail: {core.settings.outbox_dir / issue.slug}/")
    if s.failed:
        raise typer.Exit(1)


@app.command()
def gather() -> None:
    """Fetch every source now and store new and changed articles."""
    from digest.weekly import gather as gather_now

    core = _core()
    progress, advance = _gather_progress(core)
    with progress:
        report = gather_now(core, progress=advance)
    out.print(
        f"sources ok: {report.ok}, failed: {report.failed}; articles new: {report.new}, "
        f"updated: {report.updated} ({report.seconds:.1f}s)"
    )
    if report.failed and not report.ok:
        raise typer.Exit(1)


@app.command()
def build(
    week: WeekOption = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder for issue.html, issue.txt, issue.mjml.")] = None,
) -> None:
    """Compose and render the week's draft, and write it to files."""
    from digest.weekly import build as build_issue

    core = _core()
    issue = build_issue(core, _week(core, week))
    path = _write_issue_files(issue, out_dir or Path("var/issues") / issue.slug)
    out.print(f"issue {issue.period} ({issue.status}): {issue.subject}")
    out.print(f"rendered issue: {path} ({len(issue.html.encode()) / 1024:.0f} KB)")


@app.command()
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
            "--retry-unknown", help="With --resume: also re-send batches whose fate is unknown (may duplicate)."
        ),
    ] = False,
) -> None:
    """Send the week's rendered issue to every active subscriber not yet mailed, in stored batches."""
    from digest.delivery import cli_send
    from digest.weekly import find_issue

    if sum([dry_run, test is not None, resume]) > 1:
        raise UsageError("use one of --dry-run, --test and --resume")
    if retry_unknown and not resume:
        raise UsageError("--retry-unknown goes with --resume")
    core = _core()
    the_week = _week(core, week)
    issue = find_issue(core, the_week)
    if issue is None:
        raise UsageError(f"no issue for {the_week}; run `digest build --week {the_week}` first")
    if dry_run:
        cli_send.print_dry_run(core, issue, out)
        return
    if test is not None:
        cli_send.send_test(core, issue, test, out)
        return
    code = cli_send.send(core, issue, out=out, err=err, resume=resume, retry_unknown=retry_unknown)
    if code:
        raise typer.Exit(code)


@subscribers_app.command("import")
def subscribers_import(
    file: Annotated[Path, typer.Argument(help="CSV with a header; columns email and (optional) name.")],
) -> None:
    """Import subscribers from CSV: bad rows are reported by line and skipped, duplicates merged."""
    from subscribers.store import import_csv

    core = _core()
    with core.sessions.begin() as session:
        report = import_csv(session, file, now=core.now())
    for rejected in report.rejected:
        err.print(f"{file}:{rejected.line}: skipped {rejected.value!r}: {rejected.reason}", highlight=False)
    out.print(
        f"imported {file}: {report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
        f"{report.kept_out} kept out (unsubscribed or suppressed), {len(report.rejected)} rejected"
    )


@subscribers_app.command("list")
def subscribers_list(
    status: Annotated[str | None, typer.Option(help="Only this status (active, pending, unsubscribed, ...).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List subscribers."""
    from subscribers.store import list_subscribers

    core = _core()
    with core.sessions() as session:
        rows = list_subscribers(session, status)
    if as_json:
        for s in rows:
            print(
                json.dumps(
                    {
                        "id": s.id,
                        "email": s.email,
                        "name": s.name,
                        "status": s.status,
                        "consent_source": s.consent_source,
                        "created_at": s.created_at.isoformat(),
                    }
                )
            )
        return
    table = Table("id", "email", "name", "status", "consent", "since")
    for s in rows:
        table.add_row(str(s.id), s.email, s.name or "", s.status, s.consent_source or "", f"{s.created_at:%Y-%m-%d}")
    out.print(table)
    out.print(f"{len(rows)} subscribers")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the store's migrations (also done automatically on first use)."""
    from digest import db

    core = build_core(migrate=False)
    db.upgrade(core.engine)
    out.print(f"store at revision {db.current_revision(core.engine)}")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="digest: %(levelname)s: %(message)s")
    try:
        result = get_command(app).main(args=argv, prog_name="digest", standalone_mode=False)
    except DigestError as exc:
        err.print(f"digest: error: {exc}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except click.exceptions.Abort:
        err.print("digest: interrupted")
        return 130
    except click.ClickException as exc:
        exc.show()
        return 2
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
