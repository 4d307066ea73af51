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
import re
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import jinja2
from jinja2.nodes import EvalContext
from markupsafe import Markup

from digest.locale import Language, language

TEXT_SUFFIX = ".txt.j2"
# Environments kept: one per distinct list of folders (a process serves one or a few newsletters).
CACHED_ENVIRONMENTS = 32


def is_html(name: str | None) -> bool:
    return not (name or "").endswith(TEXT_SUFFIX)


_SPACE_RUN = re.compile(r"( +)")
# A word made only of white space other than the space (a lone no-break space): textwrap drops it at a
# line's ends, as it does spaces.
_BLANK_WORD = re.compile(r"(?:^| )[^\S ]+(?= |$)")


def wrap_text(text: str, width: int = 72) -> str:
    """Each line of `text` wrapped at spaces only: never inside a word, a URL or a hyphenated name.

    A word longer than `width` (a URL) stands alone on its line, whole, so mail clients can link it.
    The lines are textwrap.fill's (break_long_words and break_on_hyphens off), made without building a
    TextWrapper for each of an issue's few hundred lines: the text part took twice as long that way."""
    if width <= 0:
        raise ValueError(f"invalid width {width!r} (must be > 0)")
    return "\n".join(_wrap_line(line, width) if line.strip() else "" for line in text.splitlines())


def _wrap_line(line: str, width: int) -> str:
    """textwrap.wrap's lines of one line of str.splitlines: of textwrap's white space only tabs and spaces
    are left in it, and a tab expands to the next multiple of 8 columns as textwrap expands it."""
    if "\t" in line:
        line = line.expandtabs()
    if len(line) <= width and not line[-1].isspace():
        return line  # one line, and no white space at its end to drop
    if line[0] != " " and line[-1] != " " and "  " not in line and not _BLANK_WORD.search(line):
        return _wrap_words(line, width)
    chunks = [chunk for chunk in _SPACE_RUN.split(line) if chunk]
    lines: list[str] = []
    at, count = 0, len(chunks)
    while at < count:
        # As textwrap: a chunk that is all white space (str.strip's, so a lone no-break space too) is
        # dropped at the start of every line but the first and at the end of every line, once.
        if lines and not chunks[at].strip():
            at += 1
        start, used = at, 0
        while at < count and used + len(chunks[at]) <= width:
            used += len(chunks[at])
            at += 1
        if at == start and at < count and len(chunks[at]) > width:
            at += 1  # a word longer than the line stands alone, whole
        end = at
        if end > start and not chunks[end - 1].strip():
            end -= 1
        if end > start:
            lines.append("".join(chunks[start:end]))
    return "\n".join(lines)


def _install_direct_gettext(env: jinja2.Environment, translations: Any) -> None:
    """`_`, `gettext` and `ngettext` as Jinja2's new-style ones (translated, made Markup when the template
    autoescapes, always formatted with `%`), calling the catalogue directly.

    An issue calls them about 75 times, and Jinja2's own pass each call through its context three times
    (`_` looks `gettext` up in the context at every call, so a template could be given another; no
    template of ours is, and the language is the environment's)."""

    @jinja2.pass_eval_context
    def gettext(eval_ctx: EvalContext, string: str, /, **variables: Any) -> str:
        made = translations.gettext(string)
        return (Markup(made) if eval_ctx.autoescape else made) % variables  # noqa: S704 (our catalogue, as Jinja2 trusts it)

    @jinja2.pass_eval_context
    def ngettext(eval_ctx: EvalContext, singular: str, plural: str, num: int, /, **variables: Any) -> str:
        variables.setdefault("num", num)
        made = translations.ngettext(singular, plural, num)
        return (Markup(made) if eval_ctx.autoescape else made) % variables  # noqa: S704 (our catalogue, as Jinja2 trusts it)

    env.globals.update(_=gettext, gettext=gettext, ngettext=ngettext)


def _wrap_words(line: str, width: int) -> str:
    """_wrap_line of words parted by single spaces: each line ends at the last space that leaves it at most
    `width` long (that space dropped), or after its first word when that word alone is longer."""
    lines, start, end = [], 0, len(line)
    while end - start > width:
        cut = line.rfind(" ", start, start + width + 1)
        if cut < 0:
            cut = line.find(" ", start)
            if cut < 0:
                break
        lines.append(line[start:cut])
        start = cut + 1
    lines.append(line[start:])
    return "\n".join(lines)


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
    _install_direct_gettext(env, lang.translations)
    env.globals["i18n"] = lang
    env.filters["wrap"] = wrap_text
    # A message made in Python (marked with digest.locale.N_), translated as plain text: autoescaped like any
    # value, never trusted as markup nor read as a format string, as `_()` would be.
    env.filters["translated"] = lang.gettext
    env.filters["day"] = lang.day
    env.filters["when"] = lang.when
    env.filters["issue_date"] = functools.partial(issue_date, lang)
    return env
