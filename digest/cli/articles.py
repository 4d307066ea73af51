"""An editor's commands on articles: `digest articles list` and `edit` (the store's articles and their
overrides), and `digest excerpt` (any page or text, without the store)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from digest.cli.common import JsonLines, JsonPerInput, WeekOption, open_core, week_or_default
from digest.cli.output import err, out, print_json
from digest.errors import UsageError

app = typer.Typer(help="The store's articles and an editor's overrides.", no_args_is_help=True)


@app.command("list")
def articles_list(week: WeekOption = None, as_json: JsonLines = False) -> None:
    """The week's articles with their teasers (an editor's override marked with *).

    Articles not summarized yet (gathering does not summarize) are summarized now, and stored.
    """
    from digest.jobs.articles import week_articles

    core = open_core()
    lines = week_articles(core, week_or_default(core, week))
    if as_json:
        for line in lines:
            print_json(line, ascii_only=False)
        return
    table = Table("id", "published", "section", "title", "teaser")
    for a in lines:
        mark = "*" if a.teaser_override else ""
        table.add_row(str(a.id), f"{a.published:%Y-%m-%d %H:%M}", a.section, a.title, mark + a.teaser)
    out.print(table)


@app.command("edit")
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
    core = open_core()
    article = edit_article(core, article_id, teaser=teaser, excerpt=excerpt_text, reset=reset)
    out.print(f"article {article.id}: {article.title}")
    out.print(f"teaser: {article.shown_teaser}", highlight=False)
    out.print(f"excerpt: {article.shown_excerpt}", highlight=False)
    out.print("rebuild the draft to see it in the issue: digest build")


def excerpt(
    inputs: Annotated[
        list[str], typer.Argument(help="Files or URLs; .html/.htm files and URLs are pages, others plain text.")
    ],
    as_json: JsonPerInput = False,
) -> None:
    """Clean and summarize articles without touching the store."""
    from digest.jobs.excerpt import excerpt_input, excerpt_limits

    limits = excerpt_limits()
    failed = 0
    for item in inputs:
        record = excerpt_input(item, limits)
        failed += record["error"] is not None
        if as_json:
            print_json(record, ascii_only=False)
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
