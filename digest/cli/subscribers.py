"""`digest subscribers …`: the audience from the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from digest.cli.common import JsonLines, JsonObject, open_core
from digest.cli.output import counting, err, json_fields, out, print_json, progress_bar
from digest.errors import UsageError

app = typer.Typer(
    help="The audience: add, import, export, list, count, show and remove subscribers.", no_args_is_help=True
)


def _address(value: str) -> str:
    from subscribers.store import InvalidAddress, normalize_email

    try:
        return normalize_email(value)
    except InvalidAddress as exc:
        raise UsageError(f"{value!r} is not an e-mail address: {exc}") from None


@app.command("import")
def subscribers_import(
    file: Annotated[Path, typer.Argument(help="CSV with a header; columns email and (optional) name and timezone.")],
    force_consent: Annotated[
        bool,
        typer.Option(
            "--force-consent",
            help="Reactivate unsubscribed, bounced, complained and erased addresses: only with their new consent.",
        ),
    ] = False,
) -> None:
    """Import subscribers from CSV: bad rows are reported by line and skipped, duplicates merged."""
    from digest.jobs.audience import import_subscribers

    core = open_core()
    with progress_bar() as progress:
        report = import_subscribers(core, file, force_consent=force_consent, progress=counting(progress, "importing"))
    for rejected in report.rejected:
        err.print(f"{file}:{rejected.line}: skipped {rejected.value!r}: {rejected.reason}", highlight=False)
    reactivated = f", {report.reactivated} reactivated (--force-consent)" if force_consent else ""
    rows = report.added + report.updated + report.unchanged + report.reactivated + report.kept_out
    rows += len(report.rejected)
    out.print(
        f"imported {file}, {rows} rows: {report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
        f"{report.kept_out} kept out (unsubscribed or suppressed){reactivated}, "
        f"{len(report.rejected)} rejected",
        highlight=False,
    )


@app.command("add")
def subscribers_add(
    email: Annotated[str, typer.Argument(help="The address to add, active at once (you vouch for the consent).")],
    name: Annotated[str | None, typer.Option(help="The subscriber's name.")] = None,
    timezone: Annotated[
        str | None,
        typer.Option(help='Their IANA timezone (Europe/Lisbon), for deliver = "local"; none: the newsletter\'s.'),
    ] = None,
    force_consent: Annotated[
        bool, typer.Option("--force-consent", help="Also reactivate someone who unsubscribed, bounced or complained.")
    ] = False,
) -> None:
    """Add one subscriber as active."""
    from digest.jobs.audience import add_subscriber
    from subscribers.store import InvalidName, InvalidTimezone, clean_name, clean_timezone

    core = open_core()
    address = _address(email)
    try:
        name = clean_name(name)
    except InvalidName as exc:
        raise UsageError(f"--name: {exc}") from None
    try:
        zone = clean_timezone(timezone)
    except InvalidTimezone as exc:
        raise UsageError(f"--timezone: {exc}") from None
    added = add_subscriber(core, address, name, force_consent=force_consent, timezone=zone)
    if added.outcome == "kept_out":
        raise UsageError(
            f"{address} is {added.status} and stays out; add --force-consent only if they asked to come back"
        )
    out.print(f"{address}: {added.outcome} ({added.status})", highlight=False)


@app.command("export")
def subscribers_export(
    file: Annotated[Path | None, typer.Argument(help="CSV file to write; default: standard output.")] = None,
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
) -> None:
    """Export subscribers with their consent record as CSV (streamed)."""
    from digest.jobs.audience import export_subscribers

    core = open_core()
    if file is None:
        with progress_bar() as progress:  # on stderr: the CSV on stdout stays clean
            export_subscribers(core, sys.stdout, status, progress=counting(progress, "exporting"))
        return
    tmp = file.with_name(file.name + ".tmp")
    try:
        with tmp.open("w", newline="", encoding="utf-8") as handle, progress_bar() as progress:
            count = export_subscribers(core, handle, status, progress=counting(progress, "exporting"))
    except OSError as exc:
        raise UsageError(f"{file}: cannot write: {exc.strerror or exc}") from None
    tmp.replace(file)
    err.print(f"exported {count} subscribers to {file}", highlight=False)


@app.command("count")
def subscribers_count(as_json: JsonObject = False) -> None:
    """Count subscribers by status."""
    from digest.jobs.audience import count_subscribers

    counts = count_subscribers(open_core())
    total = sum(counts.values())
    if as_json:
        print_json({**counts, "total": total})
        return
    for status, n in counts.items():
        out.print(f"{status:<13} {n}")
    out.print(f"{'total':<13} {total}")


@app.command("show")
def subscribers_show(
    email: Annotated[str, typer.Argument(help="The subscriber's address.")],
    as_json: JsonObject = False,
) -> None:
    """One subscriber: consent record, preferences and the history of status changes."""
    from digest.jobs.audience import subscriber_shown

    core = open_core()
    address = _address(email)
    subscriber = subscriber_shown(core, address)
    if subscriber is None:
        raise UsageError(f"no subscriber {address}; `digest subscribers list` shows who there is")
    if as_json:
        print_json(subscriber)
        return
    # The text shows the values as the JSON has them (times in ISO 8601), one per line.
    for key, value in json_fields(subscriber).items():
        if key != "history":
            out.print(f"{key:<20} {value if value is not None else ''}", highlight=False)
    out.print("history:")
    for change in subscriber.history:
        at, before = change.at.isoformat(), change.from_status or "-"
        out.print(f"  {at}  {before} -> {change.to_status}  ({change.cause})", highlight=False)


@app.command("remove")
def subscribers_remove(
    email: Annotated[str, typer.Argument(help="The subscriber's address.")],
    erase: Annotated[
        bool,
        typer.Option("--erase", help="Delete their personal data; keep only a hash of the address as a suppression."),
    ] = False,
) -> None:
    """Unsubscribe someone (kept with their history), or erase them for good with --erase."""
    from digest.jobs.audience import remove_subscriber

    core = open_core()
    removed = remove_subscriber(core, _address(email), erase=erase)
    if erase:
        found = "" if removed.found else " (was not a subscriber)"
        out.print(f"{removed.address}: erased; its hash stays as a suppression{found}", highlight=False)
    else:
        out.print(f"{removed.address}: {removed.status}", highlight=False)


@app.command("list")
def subscribers_list(
    status: Annotated[str | None, typer.Option(help="Only this status (active, pending, unsubscribed, ...).")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many.")] = None,
    as_json: JsonLines = False,
) -> None:
    """List subscribers."""
    from digest.jobs.audience import subscriber_lines
    from subscribers.models import STATUSES

    if status is not None and status not in STATUSES:
        raise UsageError(f"--status {status!r} is not one of {', '.join(STATUSES)}")
    rows = subscriber_lines(open_core(), status, limit)
    if as_json:
        for s in rows:
            print_json(s)
        return
    table = Table("id", "email", "name", "status", "consent", "since")
    for s in rows:
        table.add_row(str(s.id), s.email, s.name or "", s.status, s.consent_source or "", f"{s.created_at:%Y-%m-%d}")
    out.print(table)
    out.print(f"{len(rows)} subscribers")
