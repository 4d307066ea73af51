"""The `digest` command: the Typer app with its commands in the order `digest --help` lists them,
DigestGroup, the one place an error becomes a line on stderr and an exit code, and `main`, the
console script.

Errors reach the user as one line on stderr: exit code 2 for bad input or configuration, 1 for
failures (each DigestError class says its code). `--json` output is one object per line.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup
from typer.main import get_command

from digest.cli import articles, db, doctor, init, issues, schedule, serve, sources, subscribers
from digest.cli.common import closing_cores
from digest.cli.output import err
from digest.errors import DigestError
from digest.folder import choose
from digest.logs import setup_logging

if TYPE_CHECKING:
    from typer._click import Context  # Typer carries its own copy of click; TyperGroup.invoke takes its Context


class DigestGroup(TyperGroup):
    """The root command: every command runs inside it, so this is where an error meant for a person
    becomes one line on stderr and the exit code its class says, and where the command's core is closed."""

    def invoke(self, ctx: Context) -> Any:
        try:
            with closing_cores():
                return super().invoke(ctx)
        except DigestError as exc:
            err.print(f"digest: error: {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("digest: interrupted")
            raise typer.Exit(130) from None
        finally:
            choose(None)  # --dir holds for this command only (the tests run many in one process)


app = typer.Typer(
    cls=DigestGroup,
    help="Build and send a publication's weekly e-mail digest.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.callback()(init.root)
app.command()(init.init)
app.command()(issues.run)
app.command()(sources.gather)
app.command()(sources.sources)
app.command("inspect-feed")(sources.inspect_feed)
app.command()(issues.build)
app.command()(issues.render)
app.command()(issues.send)
app.command()(articles.excerpt)
app.command()(schedule.schedule)
app.command()(serve.serve)
app.command()(doctor.doctor)
app.add_typer(subscribers.app, name="subscribers")
app.add_typer(db.app, name="db")
app.add_typer(articles.app, name="articles")


def main(argv: list[str] | None = None) -> int:
    """The `digest` script: runs the command line on `argv` (default: the process's arguments) and
    returns its exit code. Typer reports a mistyped command line itself (exit code 2)."""
    # Warnings and errors, each with its time and level; the services (schedule, serve) log their work
    # at INFO and take --log-format json.
    setup_logging("text", logging.WARNING)
    try:
        get_command(app).main(args=argv, prog_name="digest")
    except SystemExit as exc:  # how Typer ends every run, a good one too
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    return 0
