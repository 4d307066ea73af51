"""The one Jinja2 environment of templates/: e-mail parts, the confirmation mail and the web pages.

The newsletter's own templates_dir comes first, so a file of the same name there replaces the packaged
one (templates/). Every template is HTML and autoescaped, except plain-text parts (`*.txt.j2`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import jinja2

TEXT_SUFFIX = ".txt.j2"


def is_html(name: str | None) -> bool:
    return not (name or "").endswith(TEXT_SUFFIX)


def template_environment(dirs: Sequence[Path]) -> jinja2.Environment:
    """Templates looked up in `dirs`, first match wins; a missing variable is an error, never blank."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in dirs]),
        autoescape=is_html,  # noqa: S701 (a function: on for every template but the plain-text parts)
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
