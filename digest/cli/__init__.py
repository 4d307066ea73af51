"""The `digest` command: thin commands over the core built by `digest.core.build_core`.

Errors reach the user as one line on stderr: exit code 2 for bad input or configuration, 1 for
failures. `--json` output is one object per line.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.table import Table
from typer.main import get_command

from digest.cli.progress import progress_bar
from digest.content.periods import Week
from digest.core import Digest, build_core
from digest.errors import DigestError, NothingToSend, UsageError

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
articles_app = typer.Typer(help="The store's articles and an editor's overrides.", no_args_is_help=True)
app.add_typer(subscribers_app, name="subscribers")
app.add_typer(db_app, name="db")
app.add_typer(articles_app, name="articles")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

WeekOption = Annotated[
    str | None,
    typer.Option("--week", help="ISO week such as 2026-W48; default: the issue built now (the week of yesterday)."),
]
WindowOption = Annotated[
    str | None,
    typer.Option(
        "--week",
        help="ISO week such as 2026-W48 (Monday to Monday, local time); default: the articles since the "
        "last sent issue's window, or the last 7 days ([issue] window in digest.toml).",
    ),
]


def _core() -> Digest:
    return build_core()


def _week(core: Digest, week: str | None) -> Week:
    """--week, or the week of the issue `digest build` makes now without one (digest.jobs.issues.issue_week)."""
    from digest.jobs.issues import issue_week

    return issue_week(core, Week.parse(week) if week else None)


def _week_or_window(week: str | None) -> Week | None:
    """--week, or None: the window since the last sent issue (digest.content.compose.issue_window)."""
    return Week.parse(week) if week else None


def _write_issue_files(issue, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "issue.html").write_text(issue.html, encoding="utf-8")
    (folder / "issue.txt").write_text(issue.text, encoding="utf-8")
    (folder / "issue.mjml").write_text(issue.mjml or "", encoding="utf-8")
    return folder / "issue.html"


def _size_line(html: str, path: Path) -> str:
    from digest.email.render import GMAIL_CLIP_BYTES, GMAIL_CLIP_KB

    size = len(html.encode())
    line = f"rendered issue: {path} ({size / 1024:.0f} KB)"
    if size > GMAIL_CLIP_BYTES:
        line += f" [yellow]over {GMAIL_CLIP_KB} KB: Gmail will clip it; lower [issue] articles_per_section[/]"
    return line


def _gather_progress(core: Digest):
    progress = progress_bar("gathering", err)
    task = progress.add_task("", total=len(core.config.sources))

    def advance(report) -> None:
        progress.update(task, advance=1, description=report.name)
        if not report.ok:
            progress.console.print(f"[yellow]source {report.name!r} failed:[/] {report.error}")

    return progress, advance


@app.command()
def run(
    once: Annotated[bool, typer.Option("--once", help="Run the weekly job now and exit.")] = False,
    week: WindowOption = None,
) -> None:
    """Gather, compose, render and send the week's issue (the weekly job)."""
    if not once:
        raise UsageError("digest run needs --once (the recurring job is `digest schedule`)")
    from digest.jobs.weekly import run_once

    core = _core()
    the_week = _week_or_window(week)
    progress, advance = _gather_progress(core)
    from digest.cli.send_report import stop_on_signals

    try:
        # Ctrl-C or SIGTERM while sending: the batch in flight finishes and is recorded first.
        with progress, stop_on_signals(err) as stop:
            report = run_once(core, the_week, gather_progress=advance, stop=stop)
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
    from digest.cli.send_report import failed_recipient_lines, unknown_lines

    for line in failed_recipient_lines(core, issue):
        err.print(line, highlight=False, markup=False, soft_wrap=True)
    for line in unknown_lines(s, issue.period):
        err.print(line, highlight=False)
    if core.provider.name == "outbox":
        out.print(f"outbox mail: {core.settings.outbox_dir / issue.slug}/")
    if s.failed:
        raise typer.Exit(1)


@app.command()
def gather() -> None:
    """Fetch every source now and store new and changed articles."""
    from digest.jobs.weekly import gather as gather_now

    core = _core()
    progress, advance = _gather_progress(core)
    with progress:
        report = gather_now(core, progress=advance)
    for failed in (r for r in report.sources if not r.ok):
        err.print(f"source {failed.name!r}: {failed.error}", highlight=False)
    for refused in (r for r in report.sources if r.ok and r.refused):
        err.print(f"source {refused.name!r}: {refused.refused_note}", highlight=False)
    out.print(
        f"sources ok: {report.ok}, failed: {report.failed}; articles new: {report.new}, "
        f"updated: {report.updated} ({report.seconds:.1f}s)"
    )
    if report.failed and not report.ok:
        raise typer.Exit(1)


def _when(value) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else "never"


@app.command()
def sources(
    week: WeekOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """The state of every source: last success, last error, articles this week."""
    from digest.gather.run import sync_sources
    from digest.gather.status import source_statuses

    core = _core()
    the_week = _week(core, week)
    start, end = the_week.window(core.config.tz)
    with core.sessions.begin() as session:
        sync_sources(session, core.config)
        rows = source_statuses(session, [s.name for s in core.config.sources], start, end)
    if as_json:
        for r in rows:
            print(
                json.dumps(
                    {
                        "name": r.name,
                        "url": r.url,
                        "section": r.section,
                        "last_success": r.last_success_at.isoformat() if r.last_success_at else None,
                        "last_error": r.last_error,
                        "last_error_at": r.last_error_at.isoformat() if r.last_error_at else None,
                        "failing": r.failing,
                        "articles_this_week": r.articles_this_week,
                        "articles": r.articles_total,
                    }
                )
            )
        return
    table = Table("name", "url", "last success", "last error", f"articles {the_week}", title="sources")
    for r in rows:
        error = f"{_when(r.last_error_at)}: {r.last_error}" if r.last_error else ""
        table.add_row(
            r.name,
            r.url,
            _when(r.last_success_at),
            f"[red]{error}[/]" if r.failing else error,
            str(r.articles_this_week),
        )
    out.print(table)


@app.command("inspect-feed")
def inspect_feed(
    inputs: Annotated[list[str], typer.Argument(help="Feed or page URLs, file:// URLs or paths.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per input, in input order.")] = False,
) -> None:
    """Parse feeds (RSS, Atom, JSON Feed) or article pages without touching the store."""
    from digest.gather.inspect import inspect_inputs

    failed = 0
    for result in inspect_inputs(inputs):
        failed += result["error"] is not None
        if as_json:
            print(json.dumps(result, ensure_ascii=False), flush=True)
            continue
        if result["error"]:
            out.print(f"[bold]{result['input']}[/]: [red]{result['error']}[/]", highlight=False)
            continue
        table = Table("published", "title", "author", "url", title=f"{result['input']}: {result['format']}, "
                      f"{result['title'] or '(untitled)'}, {len(result['articles'])} articles")  # fmt: skip
        for a in result["articles"]:
            table.add_row((a["published"] or "")[:16].replace("T", " "), a["title"], a["author"] or "", a["url"])
        out.print(table)
    if failed and failed == len(inputs):
        raise typer.Exit(1)


@app.command()
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
    from digest.email import placeholders
    from digest.jobs.weekly import build as build_issue

    if top is not None and unpin:
        raise UsageError("--top and --unpin contradict each other; give one")
    core = _core()
    try:
        issue = build_issue(core, _week_or_window(week), pin=top, unpin=unpin)
    except NothingToSend as exc:
        err.print(str(exc), highlight=False)
        return
    folder = out_dir or Path("var/issues") / issue.slug
    path = _write_issue_files(issue, folder)
    preview = placeholders.fill_preview(
        issue.html, core.settings.base_url, core.config.issue.first_name_fallback, html_part=True
    )
    (folder / "preview.html").write_text(preview, encoding="utf-8")
    window = f"{issue.window_start:%Y-%m-%d %H:%M} to {issue.window_end:%Y-%m-%d %H:%M} UTC"
    out.print(f"issue {issue.period} ({issue.status}, articles {window}): {issue.subject}", highlight=False)
    out.print(_size_line(issue.html, path), highlight=False)


@app.command()
def render(
    issue_json: Annotated[Path, typer.Argument(help="Content as JSON: title, date, intro, sections[].articles[].")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for issue.html, issue.txt, issue.mjml.")],
) -> None:
    """Render content given as JSON with the templates, without the store (for template work).

    The newsletter's name, address and links come from the newsletter file; each article needs only a
    title and a url. Without a "top", the first article of the first section is the top story.
    """
    from digest.config import load_newsletter, load_settings
    from digest.content.compose import content_from_document, subject_for
    from digest.email import placeholders
    from digest.email.render import render_issue

    try:
        doc = json.loads(issue_json.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{issue_json}: cannot read: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{issue_json}: not valid JSON: {exc}") from None
    settings = load_settings()
    config = load_newsletter(settings.config)
    content = content_from_document(doc, config, source=issue_json)
    slug = issue_json.stem
    subject = doc.get("title") or subject_for(config, content)
    rendered = render_issue(
        config,
        content,
        subject=subject,
        preheader=content["top"].get("teaser") or content["top"].get("dek") or "",
        view_url=settings.base_url.rstrip("/") + f"/issues/{slug}",
        slug=slug,
    )
    path = _write_issue_files(rendered, out_dir)
    preview = placeholders.fill_preview(
        rendered.html, settings.base_url, config.issue.first_name_fallback, html_part=True
    )
    (out_dir / "preview.html").write_text(preview, encoding="utf-8")
    count = 1 + sum(len(s["articles"]) for s in content["sections"])
    out.print(f"rendered {count} articles from {issue_json}", highlight=False)
    out.print(_size_line(rendered.html, path), highlight=False)


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
) -> None:
    """Send the week's rendered issue to every active subscriber not yet mailed, in stored batches."""
    from digest.cli import send_report as cli_send
    from digest.jobs.issues import find_issue

    if sum([dry_run, test is not None, resume, mark_sent is not None]) > 1:
        raise UsageError("use one of --dry-run, --test, --resume and --mark-sent")
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
    if mark_sent is not None:
        cli_send.mark_sent(core, issue, mark_sent, out)
        return
    code = cli_send.send(core, issue, out=out, err=err, resume=resume, retry_unknown=retry_unknown)
    if code:
        raise typer.Exit(code)


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
        "exclude_sections": s.left_out_sections,
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
    from subscribers.store import InvalidName, add, clean_name

    core = _core()
    address = _address(email)
    try:
        name = clean_name(name)
    except InvalidName as exc:
        raise UsageError(f"--name: {exc}") from None
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
def excerpt(
    inputs: Annotated[
        list[str], typer.Argument(help="Files or URLs; .html/.htm files and URLs are pages, others plain text.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per input, in input order.")] = False,
) -> None:
    """Clean and summarize articles without touching the store."""
    from digest.config import load_settings
    from digest.content.summaries import summary_limits
    from digest.jobs.excerpt import excerpt_input
    from digest.summarize import SummaryLimits

    limits = SummaryLimits()
    try:
        from digest.config import load_newsletter

        limits = summary_limits(load_newsletter(load_settings().config))
    except DigestError:
        pass  # no newsletter file: the default lengths serve well enough for a look at a page
    failed = 0
    for item in inputs:
        record = excerpt_input(item, limits)
        failed += record["error"] is not None
        if as_json:
            print(json.dumps(record, ensure_ascii=False), flush=True)
        elif record["error"]:
            err.print(f"{item}: error: {record['error']}", highlight=False)
        else:
            out.print(f"[bold]{record['input']}[/]  {record['title'] or ''}", highlight=False)
            out.print(f"teaser: {record['teaser']}", highlight=False)
            out.print(f"excerpt: {record['excerpt']}", highlight=False)
            if record["pull_quote"]:
                out.print(f"pull quote: {record['pull_quote']}", highlight=False)
            out.print(f"reading time: {record['reading_minutes']} min\n")
    if failed == len(inputs):
        raise typer.Exit(1)


@articles_app.command("list")
def articles_list(
    week: WeekOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """The week's articles with their teasers (an editor's override marked with *).

    Articles not summarized yet (gathering does not summarize) are summarized now, and stored.
    """
    from digest.jobs.articles import articles_in_week

    core = _core()
    rows = articles_in_week(core, _week(core, week))
    if as_json:
        for a in rows:
            print(
                json.dumps(
                    {
                        "id": a.id,
                        "published": a.published_at.isoformat(),
                        "section": a.section,
                        "title": a.title,
                        "url": a.url,
                        "teaser": a.shown_teaser,
                        "excerpt": a.shown_excerpt,
                        "teaser_override": a.teaser_override is not None,
                        "excerpt_override": a.excerpt_override is not None,
                    },
                    ensure_ascii=False,
                )
            )
        return
    table = Table("id", "published", "section", "title", "teaser")
    for a in rows:
        mark = "*" if a.teaser_override is not None else ""
        table.add_row(str(a.id), f"{a.published_at:%Y-%m-%d %H:%M}", a.section, a.title, mark + a.shown_teaser)
    out.print(table)


@articles_app.command("edit")
def articles_edit(
    article_id: Annotated[int, typer.Argument(help="The article's id (see `digest articles list`).")],
    teaser: Annotated[str | None, typer.Option(help="The teaser readers see instead of the computed one.")] = None,
    excerpt_text: Annotated[
        str | None, typer.Option("--excerpt", help="The excerpt instead of the computed one.")
    ] = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Drop the overrides; show the computed summary again.")
    ] = False,
) -> None:
    """Override an article's teaser or excerpt; the override survives regathering."""
    from digest.jobs.articles import edit_article

    if not (teaser or excerpt_text or reset):
        raise UsageError("give --teaser, --excerpt or --reset")
    core = _core()
    article = edit_article(core, article_id, teaser=teaser, excerpt=excerpt_text, reset=reset)
    out.print(f"article {article.id}: {article.title}")
    out.print(f"teaser: {article.shown_teaser}", highlight=False)
    out.print(f"excerpt: {article.shown_excerpt}", highlight=False)
    out.print("rebuild the draft to see it in the issue: digest build")


@app.command()
def schedule(
    print_jobs: Annotated[
        bool, typer.Option("--print-jobs", help="Print each job's next three runs and exit.")
    ] = False,
) -> None:
    """The long-running scheduler: gather every hour, send the issue every week."""
    from digest import schedule as scheduling

    core = _core()
    if print_jobs:
        tz = core.config.tz
        for job_id, what, times in scheduling.describe_jobs(core.config, core.now()):
            out.print(f"{job_id}: {what}")
            for moment in times:
                out.print(f"  {moment.astimezone(tz):%Y-%m-%d %H:%M %Z}  ({moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC)")
        return
    logging.getLogger("digest").setLevel(logging.INFO)
    scheduler = scheduling.make_scheduler(core)
    scheduling.install_signal_handlers(scheduler)
    out.print(f"scheduler running ({len(scheduler.get_jobs())} jobs); stop with Ctrl-C or SIGTERM")
    scheduler.start()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 picks a free one).")] = 8000,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(help="Proxies whose X-Forwarded-For to trust (comma-separated IPs), so limits see real clients."),
    ] = None,
) -> None:
    """Serve sign-up, confirmation, unsubscribe, preferences, the web hooks, the preview and the archive (uvicorn)."""
    import uvicorn

    from digest.web.app import create_app
    from digest.web.webhooks import startup_notice as webhook_notice

    core = _core()
    application = create_app(core)
    err.print(f"serving {core.config.name} on http://{host}:{port} (public address {core.settings.base_url})")
    if notice := webhook_notice(core.settings):
        level, text = notice
        err.print(f"[bold red]WARNING: {text}[/]" if level == "warning" else text, highlight=False, soft_wrap=True)
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
    from digest.store import db

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
