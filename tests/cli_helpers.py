"""The `digest` command line run in the test process with Typer's CliRunner: its own stdin, stdout and
stderr, and the environment and working directory a subprocess would have been given.

A run leaves nothing behind: the runner restores the environment, the directory is restored, the app
closes the core its command opened, and the send commands put the signal handlers they set back.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from digest.cli import app
from digest.logs import setup_logging


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str


@contextlib.contextmanager
def _logging_to_stderr() -> Iterator[None]:
    # What `digest.cli.main` sets up in a real process, and what a service command (schedule, serve)
    # sets up over it: all of it goes with the command.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    digest_level = logging.getLogger("digest").level
    setup_logging("text", logging.WARNING)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.getLogger("digest").setLevel(digest_level)


def run_cli(args: Sequence[object], env: Mapping[str, str] | None = None, cwd: Path | str | None = None) -> CliResult:
    """`digest ARGS` in `cwd`; with `env`, the DIGEST_* settings come from it alone, as in a subprocess
    given that environment. An exception that is not an exit (a bug) is raised, not turned into a code."""
    changes: dict[str, str | None] = {}
    if env is not None:
        changes = {key: None for key in os.environ if key.startswith("DIGEST_") and key not in env}
        changes.update(env)
    with contextlib.chdir(cwd or os.getcwd()), _logging_to_stderr():
        result = CliRunner().invoke(
            app, [str(arg) for arg in args], env=changes, catch_exceptions=False, prog_name="digest"
        )
    return CliResult(result.exit_code, result.stdout, result.stderr)
