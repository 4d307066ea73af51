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
subscribers_app = typer.Typer(
    help="The audience: add, import, export, list, count, show and remove subscribers.", no_args_is_help=True
)
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
def send(week: WeekOption = None) -> None:
    """Send the week's rendered issue to every active subscriber not yet mailed."""
    from digest.weekly import find_issue
    from digest.weekly import send as send_issue

    core = _core()
    the_week = _week(core, week)
    issue = find_issue(core, the_week)
    if issue is None:
        raise UsageError(f"no issue for {the_week}; run `digest build --week {the_week}` first")
    planned, report = send_issue(core, issue)
    out.print(
        f"sent {report.sent} in {report.batches} batches ({planned} planned); "
        f"{report.skipped} skipped, {report.failed} failed"
    )
    if report.failed:
        raise typer.Exit(1)


@subscribers_app.command("import")
def subscribers_import(
    file: Annotated[Path, typer.Argument(help="CSV with a header; columns email and (optional) name.")],
    force_consent: Annotated[
        bool,
        typer.Option(
            "--force-consent",
            help="Reactivate unsubscribed, bounced, complained and erased addresses: only with their new consent.",
        ),
    ] = False,
) -> None:
    """Import subscribers from CSV: bad rows are reported by line and skipped, duplicates merged."""
    from subscribers.store import import_csv

    core = _core()
    with core.sessions.begin() as session:
        report = import_csv(session, file, now=core.now(), force_consent=force_consent)
    for rejected in report.rejected:
        err.print(f"{file}:{rejected.line}: skipped {rejected.value!r}: {rejected.reason}", highlight=False)
    reactivated = f", {report.reactivated} reactivated (--force-consent)" if force_consent else ""
    out.print(
        f"imported {file}: {report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
        f"{report.kept_out} kept out (unsubscribed or suppressed){reactivated}, "
        f"{len(report.rejected)} rejected",
        highlight=False,
    )


def _subscriber_json(s) -> dict:
    return {
        "id": s.id,
        "email": s.email,
        "name": s.name,
        "status": s.status,
        "consent_source": s.consent_source,
        "consent_at": s.consent_at.isoformat() if s.consent_at else None,
        "consent_ip": s.consent_ip,
        "consent_user_agent": s.consent_user_agent,
        "confirmed_at": s.confirmed_at.isoformat() if s.confirmed_at else None,
        "exclude_sections": s.excluded_sections,
        "created_at": s.created_at.isoformat(),
        "updated_at": s.updated_at.isoformat(),
    }


def _address(value: str) -> str:
    from subscribers.store import InvalidAddress, normalize_email

    try:
        return normalize_email(value)
    except InvalidAddress as exc:
        raise UsageError(f"{value!r} is not an e-mail address: {exc}") from None


@subscribers_app.command("add")
def subscribers_add(
    email: Annotated[str, typer.Argument(help="The address to add, active at once (you vouch for the consent).")],
    name: Annotated[str | None, typer.Option(help="The subscriber's name.")] = None,
    force_consent: Annotated[
        bool, typer.Option("--force-consent", help="Also reactivate someone who unsubscribed, bounced or complained.")
    ] = False,
) -> None:
    """Add one subscriber as active."""
    from subscribers.store import add

    core = _core()
    address = _address(email)
    with core.sessions.begin() as session:
        subscriber, outcome = add(
            session,
            address,
            name,
            now=core.now(),
            force_consent=force_consent,
            cause="added with digest subscribers add",
        )
        status = subscriber.status if subscriber else "erased"
    if outcome == "kept_out":
        raise UsageError(f"{address} is {status} and stays out; add --force-consent only if they asked to come back")
    out.print(f"{address}: {outcome} ({status})", highlight=False)


@subscribers_app.command("export")
def subscribers_export(
    file: Annotated[Path | None, typer.Argument(help="CSV file to write; default: standard output.")] = None,
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
) -> None:
    """Export subscribers with their consent record as CSV (streamed)."""
    from subscribers.store import export_csv

    core = _core()
    with core.sessions() as session:
        if file is None:
            export_csv(session, sys.stdout, status)
            return
        tmp = file.with_name(file.name + ".tmp")
        try:
            with tmp.open("w", newline="", encoding="utf-8") as handle:
                count = export_csv(session, handle, status)
        except OSError as exc:
            raise UsageError(f"{file}: cannot write: {exc.strerror or exc}") from None
        tmp.replace(file)
    err.print(f"exported {count} subscribers to {file}", highlight=False)


@subscribers_app.command("count")
def subscribers_count(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Count subscribers by status."""
    from subscribers.store import count_by_status

    core = _core()
    with core.sessions() as session:
        counts = count_by_status(session)
    if as_json:
        print(json.dumps({**counts, "total": sum(counts.values())}))
        return
    for status, n in counts.items():
        out.print(f"{status:<13} {n}")
    out.print(f"{'total':<13} {sum(counts.values())}")


@subscribers_app.command("show")
def subscribers_show(
    email: Annotated[str, typer.Argument(help="The subscriber's address.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """One subscriber: consent record, preferences and the history of status changes."""
    from subscribers.store import find, history

    core = _core()
    address = _address(email)
    with core.sessions() as session:
        subscriber = find(session, address)
        if subscriber is None:
            raise UsageError(f"no subscriber {address}; `digest subscribers list` shows who there is")
        changes = history(session, subscriber)
    data = _subscriber_json(subscriber)
    data["history"] = [
        {"at": c.at.isoformat(), "from": c.from_status, "to": c.to_status, "cause": c.cause} for c in changes
    ]
    if as_json:
        print(json.dumps(data))
        return
    for key, value in data.items():
        if key != "history":
            out.print(f"{key:<20} {value if value is not None else ''}", highlight=False)
    out.print("history:")
    for change in data["history"]:
        out.print(f"  {change['at']}  {change['from'] or '-'} -> {change['to']}  ({change['cause']})", highlight=False)


@subscribers_app.command("remove")
def subscribers_remove(
    email: Annotated[str, typer.Argument(help="The subscriber's address.")],
    erase: Annotated[
        bool,
        typer.Option("--erase", help="Delete their personal data; keep only a hash of the address as a suppression."),
    ] = False,
) -> None:
    """Unsubscribe someone (kept with their history), or erase them for good with --erase."""
    from subscribers import store

    core = _core()
    address = _address(email)
    with core.sessions.begin() as session:
        if erase:
            found = store.erase(session, address, now=core.now())
            message = f"{address}: erased; its hash stays as a suppression" + (
                "" if found else " (was not a subscriber)"
            )
        else:
            subscriber = store.find(session, address)
            if subscriber is None:
                raise UsageError(f"no subscriber {address}; use --erase to suppress an address we never had")
            store.unsubscribe(session, subscriber, "removed with digest subscribers remove", now=core.now())
            message = f"{address}: {subscriber.status}"
    out.print(message, highlight=False)


@subscribers_app.command("list")
def subscribers_list(
    status: Annotated[str | None, typer.Option(help="Only this status (active, pending, unsubscribed, ...).")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List subscribers."""
    from subscribers.models import STATUSES
    from subscribers.store import list_subscribers

    if status is not None and status not in STATUSES:
        raise UsageError(f"--status {status!r} is not one of {', '.join(STATUSES)}")
    core = _core()
    with core.sessions() as session:
        rows = list_subscribers(session, status, limit)
    if as_json:
        for s in rows:
            print(json.dumps(_subscriber_json(s)))
        return
    table = Table("id", "email", "name", "status", "consent", "since")
    for s in rows:
        table.add_row(str(s.id), s.email, s.name or "", s.status, s.consent_source or "", f"{s.created_at:%Y-%m-%d}")
    out.print(table)
    out.print(f"{len(rows)} subscribers")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 picks a free one).")] = 8000,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(help="Proxies whose X-Forwarded-For to trust (comma-separated IPs), so limits see real clients."),
    ] = None,
) -> None:
    """Serve sign-up, confirmation, unsubscribe, preferences and the web hooks (uvicorn)."""
    import uvicorn

    from digest.web.app import create_app

    core = _core()
    application = create_app(core)
    err.print(f"serving {core.config.name} on http://{host}:{port} (public address {core.settings.base_url})")
    uvicorn.run(
        application,
        host=host,
        port=port,
        proxy_headers=forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips,
        log_level="warning",
        access_log=False,
    )


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
