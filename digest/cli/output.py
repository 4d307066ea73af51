"""How the commands print: two consoles (results on stdout, progress and problems on stderr), typed
results as JSON, the progress bar, and the files an issue is written to."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeAlias

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from digest.delivery.sender import Progress as BatchProgress

# Both consoles look sys.stdout and sys.stderr up when they print, so a test that swaps them captures them.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JSON: TypeAlias = "str | int | float | bool | None | list[JSON] | dict[str, JSON]"


def json_fields(result: DataclassInstance) -> dict[str, JSON]:
    """A typed result as a JSON object, in field order; a field's `json` metadata names its key."""
    return {
        field.metadata.get("json", field.name): jsonable(getattr(result, field.name))
        for field in dataclasses.fields(result)
    }


def jsonable(value: object) -> JSON:
    """Plain JSON values: dataclasses as objects (json_fields), datetimes as ISO 8601 text; dicts and lists walked."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_fields(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"{type(value).__name__} is not a result the command line prints as JSON")


def print_json(value: object, *, ascii_only: bool = True) -> None:
    """One JSON object on one line of stdout, flushed: a script reading the lines sees each at once.
    `ascii_only=False` keeps non-ASCII text as it is (the commands that always did so)."""
    print(json.dumps(jsonable(value), ensure_ascii=ascii_only), flush=True)


def progress_bar() -> Progress:
    """Progress bars on stderr, one per task (its `what`: gathering, sending...), gone when done. On a
    stderr that is not a terminal (a log file, a pipe, cron) they show nothing at all."""
    return Progress(
        TextColumn("{task.fields[what]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        # Results on stdout go there, never into the bar's console (`subscribers export` streams its CSV
        # there while its bar runs); a log line on stderr is printed above the bar.
        redirect_stdout=False,
        # Not started at all off a terminal: a stopped bar would still leave a line break behind.
        disable=not err.is_terminal,
    )


def counting(progress: Progress, what: str) -> Callable[[int, int], None]:
    """A bar of `progress` for work counted in rows, and the callback that moves it: (done, total)."""
    task = progress.add_task("", total=None, what=what)

    def advance(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    return advance


@dataclass
class SendBar:
    """The send's bar: its steps before sending (planning, rendering segments), then one tick per recipient."""

    progress: Progress
    task: TaskID | None = None

    def on_stage(self, stage: str) -> None:
        if self.task is None:
            self.task = self.progress.add_task(stage, total=None, what="sending")
        else:
            self.progress.update(self.task, description=stage)

    def on_start(self, recipients: int) -> None:
        if self.task is None:
            self.task = self.progress.add_task("", total=recipients, what="sending")
        else:
            self.progress.update(self.task, total=recipients, completed=0, description="")

    def on_batch(self, done: BatchProgress) -> None:
        if self.task is not None:
            self.progress.update(
                self.task, advance=done.sent + done.failed + done.skipped, description=f"batch {done.number}"
            )


class IssueParts(Protocol):
    """A stored issue or a rendering of one: what goes into issue.html, issue.txt and issue.mjml."""

    @property
    def html(self) -> str | None: ...
    @property
    def text(self) -> str | None: ...
    @property
    def mjml(self) -> str | None: ...


def write_issue_files(issue: IssueParts, folder: Path) -> Path:
    """Writes the issue's files; returns issue.html's path, relative when it is under the working directory."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "issue.html").write_text(issue.html or "", encoding="utf-8")
    (folder / "issue.txt").write_text(issue.text or "", encoding="utf-8")
    (folder / "issue.mjml").write_text(issue.mjml or "", encoding="utf-8")
    html = folder / "issue.html"
    return html.relative_to(Path.cwd()) if html.is_absolute() and html.is_relative_to(Path.cwd()) else html


def size_line(html: str, path: Path) -> str:
    from digest.email.render import GMAIL_CLIP_BYTES, GMAIL_CLIP_KB

    size = len(html.encode())
    line = f"rendered issue: {path} ({size / 1024:.0f} KB)"
    if size > GMAIL_CLIP_BYTES:
        line += f" [yellow]over {GMAIL_CLIP_KB} KB: Gmail will clip it; lower [issue] articles_per_section[/]"
    return line
