"""The one Jinja2 environment of templates/: e-mail parts, the confirmation mail and the web pages.

The newsletter's own templates_dir comes first, so a file of the same name there replaces the packaged
one (templates/). Every template is HTML and autoescaped, except plain-text parts (`*.txt.j2`).

One environment per list of template folders and language, kept for the life of the process: building
one throws away every compiled template, which cost more than the rest of an issue's render (Jinja2 still
checks each file's modification time, so an edited template is picked up).

Our own words in the templates go through gettext (Jinja2's i18n extension, new-style: `_("...")`,
`{% trans %}`, plurals by `{% pluralize %}`) with the newsletter's language (`digest.locale`); each
template also gets `i18n`, that language (its `dir`, and `start` and `end`, the sides a line starts and
ends on), and the filters `day` (a date in the language), `when` (a time, with day and month names in
it), `issue_date` (a stored issue's date) and `translated` (a message made in Python, marked with
`digest.locale.N_`).
"""

from __future__ import annotations

import functools
import textwrap
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import jinja2

from digest.locale import Language, language

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


def issue_date(lang: Language, issue: Any) -> str:
    """A stored issue's date in the language: its content's date, else its ISO week (Week 48, 2026)."""
    content = getattr(issue, "content", None) or {}
    try:
        return lang.day(date.fromisoformat(str(content.get("date") or "")))
    except ValueError:
        pass
    year, _, number = str(getattr(issue, "week", "")).upper().partition("-W")
    if year.isdigit() and number.isdigit():
        return lang.week(int(year), int(number))
    return str(content.get("date_display") or getattr(issue, "week", ""))


def template_environment(dirs: Sequence[Path], language_tag: str = "en") -> jinja2.Environment:
    """Templates looked up in `dirs`, first match wins; a missing variable is an error, never blank.

    Our words in them are in `language_tag`, the newsletter's `language`. The same environment comes back
    for the same folders and language (see the module's note)."""
    return _environment(tuple(str(d) for d in dirs), language_tag)


@functools.lru_cache(maxsize=CACHED_ENVIRONMENTS)
def _environment(dirs: tuple[str, ...], language_tag: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(list(dirs)),
        autoescape=is_html,  # noqa: S701 (a function: on for every template but the plain-text parts)
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
    )
    # A {% trans %} block's message is its text with runs of white space made one space, as pybabel
    # extracts it (babel.cfg: trimmed), so a template's line breaks never change a message.
    env.policies["ext.i18n.trimmed"] = True
    lang = language(language_tag)
    env.install_gettext_translations(lang.translations, newstyle=True)  # type: ignore[attr-defined]
    env.globals["i18n"] = lang
    env.filters["wrap"] = wrap_text
    # A message made in Python (marked with digest.locale.N_), translated as plain text: autoescaped like any
    # value, never trusted as markup nor read as a format string, as `_()` would be.
    env.filters["translated"] = lang.gettext
    env.filters["day"] = lang.day
    env.filters["when"] = lang.when
    env.filters["issue_date"] = functools.partial(issue_date, lang)
    return env
