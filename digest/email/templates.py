"""The one Jinja2 environment of templates/: e-mail parts, the confirmation mail and the web pages.

The newsletter's own templates_dir comes first, so a file of the same name there replaces the packaged
one (templates/). Every template is HTML and autoescaped, except plain-text parts (`*.txt.j2`).

One environment per list of template folders, kept for the life of the process: building one throws
away every compiled template, which cost more than the rest of an issue's render (Jinja2 still checks
each file's modification time, so an edited template is picked up).
"""

from __future__ import annotations

import functools
import textwrap
from collections.abc import Sequence
from pathlib import Path

import jinja2

TEXT_SUFFIX = ".txt.j2"
# Environments kept: one per distinct list of folders (a process serves one or a few newsletters).
CACHED_ENVIRONMENTS = 32


def is_html(name: str | None) -> bool:
    return not (name or "").endswith(TEXT_SUFFIX)


def wrap_text(text: str, width: int = 72) -> str:
    """Each line of `text` wrapped at spaces only: never inside a word, a URL or a hyphenated name.

    A word longer than `width` (a URL) stands alone on its line, whole, so mail clients can link it."""
    return "\n".join(
        textwrap.fill(line, width, break_long_words=False, break_on_hyphens=False) if line.strip() else ""
        for line in text.splitlines()
    )


def template_environment(dirs: Sequence[Path]) -> jinja2.Environment:
    """Templates looked up in `dirs`, first match wins; a missing variable is an error, never blank.

    The same environment comes back for the same folders (see the module's note)."""
    return _environment(tuple(str(d) for d in dirs))


@functools.lru_cache(maxsize=CACHED_ENVIRONMENTS)
def _environment(dirs: tuple[str, ...]) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(list(dirs)),
        autoescape=is_html,  # noqa: S701 (a function: on for every template but the plain-text parts)
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["wrap"] = wrap_text
    return env
