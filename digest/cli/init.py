"""`digest init DIR`: a new publication folder, and the `--dir` option every command takes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from digest.cli.output import out
from digest.folder import choose, create_folder

DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        help="The publication folder (holding digest.toml); default: DIGEST_DIR, else the working directory "
        "or the nearest folder above it with a digest.toml.",
        show_default=False,
    ),
]


def root(folder: DirOption = None) -> None:
    """Build and send a publication's weekly e-mail digest."""
    choose(folder)


def init(
    folder: Annotated[Path, typer.Argument(help="The folder to make (or an empty one to fill).", show_default=False)],
) -> None:
    """Make FOLDER a publication folder: a commented digest.toml, a .env with a fresh secret key (readable
    by you alone) and an empty templates/ for template overrides. Nothing is overwritten."""
    for path in create_folder(folder):
        out.print(f"wrote {path}{'/' if path.is_dir() else ''}", highlight=False, markup=False)
    out.print(
        f"next: edit {folder / 'digest.toml'} (name, addresses, postal address, sections, [[sources]]), then "
        f"`digest subscribers import people.csv` and `digest run --once` inside {folder} (or with --dir {folder}); "
        f"the store and outbox go in {folder / 'var'}/",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
