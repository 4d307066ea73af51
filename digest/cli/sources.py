"""The sources' commands: `digest gather`, `digest sources` and `digest inspect-feed`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from digest.cli.common import JsonLines, JsonPerInput, WeekOption, open_core, week_or_default
from digest.cli.output import err, out, print_json, progress_bar

if TYPE_CHECKING:
    from digest.gather import GatherReport, SourceReport


def gather_progress(sources: int, progress: Progress | None = None) -> tuple[Progress, Callable[[SourceReport], None]]:
    """The progress bar of a gather over `sources` sources (a new one, or a task of `progress`), and the
    callback that moves it on."""
    progress = progress or progress_bar()
    task = progress.add_task("", total=sources, what="gathering")

    def advance(report: SourceReport) -> None:
        progress.update(task, advance=1, description=report.name)
        # On a terminal a failure shows as it happens; the lines after the run name it again for logs,
        # so a log (not a terminal) gets each failure once.
        if not report.ok and progress.console.is_terminal:
            progress.console.print(f"[yellow]source {report.name!r} failed:[/] {report.error}")

    return progress, advance


def print_source_problems(report: GatherReport) -> None:
    """A line on stderr for each source that failed, and each whose article pages were refused."""
    for failed in (r for r in report.sources if not r.ok):
        err.print(f"source {failed.name!r}: {failed.error}", highlight=False)
    for refused in (r for r in report.sources if r.ok and r.refused):
        err.print(f"source {refused.name!r}: {refused.refused_note}", highlight=False)


def gather(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per source, in file order.")] = False,
) -> None:
    """Fetch every source now and store new and changed articles.

    Exit code 0 when every source was read, 1 when some failed (what the others gave is stored), 2 for a
    bad setting or newsletter file."""
    from digest.jobs.sources import gathered_sources
    from digest.jobs.weekly import gather as gather_now

    core = open_core()
    progress, advance = gather_progress(len(core.config.sources))
    with progress:
        report = gather_now(core, progress=advance)
    print_source_problems(report)
    if as_json:
        for record in gathered_sources(report):
            print_json(record)
    else:
        out.print(
            f"sources ok: {report.ok}, failed: {report.failed}; articles new: {report.new}, "
            f"updated: {report.updated} ({report.seconds:.1f}s)"
        )
    if report.failed:
        # For cron and monitors: a failing source needs a person even though the others were stored.
        raise typer.Exit(1)


def sources(week: WeekOption = None, as_json: JsonLines = False) -> None:
    """The state of every source: last success, last error, the last fetch's items and how many were kept,
    articles this week, and article pages that could not be fetched (their articles show the feed's text)."""
    from digest.jobs.sources import source_states

    core = open_core()
    the_week = week_or_default(core, week)
    states = source_states(core, the_week)
    if as_json:
        for state in states:
            print_json(state)
        return
    table = Table(
        "name", "url", "last success", "last error", "last fetch", f"articles {the_week}", "article pages",
        title="sources",
    )  # fmt: skip
    for s in states:
        error = f"{core.config.local_time(s.last_error_at)}: {s.last_error}" if s.last_error else ""
        fetched = "" if s.last_items is None else f"{s.last_kept} of {s.last_items} items kept"
        if s.last_items and s.last_kept is not None and s.last_kept < s.last_items:
            fetched = f"[yellow]{fetched}[/]"
        table.add_row(
            s.name,
            s.url,
            core.config.local_time(s.last_success),
            f"[red]{error}[/]" if s.failing else error,
            fetched,
            str(s.articles_this_week),
            f"[yellow]{s.page_failures} failed, feed text used; last: {escape(s.last_page_error or '')}[/]"
            if s.page_failures
            else "",
        )
    out.print(table)


def inspect_feed(
    inputs: Annotated[list[str], typer.Argument(help="Feed or page URLs, file:// URLs or paths.")],
    as_json: JsonPerInput = False,
) -> None:
    """Parse feeds (RSS, Atom, JSON Feed) or article pages without touching the store."""
    from digest.gather.inspect import inspect_inputs

    failed = 0
    for result in inspect_inputs(inputs):
        failed += result["error"] is not None
        if as_json:
            print_json(result, ascii_only=False)
            continue
        if result["error"]:
            out.print(f"[bold]{result['input']}[/]: [red]{result['error']}[/]", highlight=False)
            continue
        table = Table("published", "title", "author", "url", title=f"{result['input']}: {result['format']}, "
                      f"{result['title'] or '(untitled)'}, {len(result['articles'])} articles")  # fmt: skip
        for a in result["articles"]:
            # Say where a URL came from when it is not the item's own link (a GUID, or the channel's link).
            url = a["url"] if a["link_from"] == "link" else f"{a['url']} (from {a['link_from']})"
            table.add_row((a["published"] or "")[:16].replace("T", " "), a["title"], a["author"] or "", url)
        out.print(table)
    if failed and failed == len(inputs):
        raise typer.Exit(1)
