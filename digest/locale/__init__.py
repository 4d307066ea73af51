"""The newsletter's language: our own words translated (gettext catalogs), dates in its locale, its direction.

The catalogs are `<language>/LC_MESSAGES/digest.po` beside this module, compiled to `.mo` files that ship
in the package (`make translations` extracts, updates and compiles them). English is the source: its
catalog is empty, every message is its own translation. A language with no catalog of ours keeps our words
in English, with one warning per process; a language Babel knows still gets its dates and its direction
(an Arabic-script or Hebrew newsletter reads right to left even before we have its catalog).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.support import NullTranslations, Translations

DOMAIN = "digest"
CATALOGS = Path(__file__).parent
SOURCE_LANGUAGE = "en"

log = logging.getLogger(__name__)


def N_(message: str) -> str:  # noqa: N802 (the conventional name, which pybabel extracts)
    """Marks a message for the catalogs where it is made; the template translates it when shown."""
    return message


@dataclass(frozen=True)
class Language:
    """What rendering needs of a newsletter's `language`: the locale, our words in it, its direction."""

    tag: str  # as the newsletter file gives it: the `lang` attribute of mail and pages
    locale: Locale  # Babel's: dates and plural rules; English when the tag is no locale Babel knows
    translations: NullTranslations
    translated: bool  # False: our words stay in English (no catalog for this language)

    @functools.cached_property  # read for every article of every render; Babel looks it up each time
    def dir(self) -> str:
        """`rtl` or `ltr`, the writing direction of the language (Babel's CLDR data)."""
        return "rtl" if self.locale.text_direction == "rtl" else "ltr"

    @property
    def start(self) -> str:
        """The side a line starts on: `left`, or `right` in a right-to-left language."""
        return "right" if self.dir == "rtl" else "left"

    @property
    def end(self) -> str:
        return "left" if self.dir == "rtl" else "right"

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.translations.ngettext(singular, plural, n)

    def pgettext(self, context: str, message: str) -> str:
        """A short message whose sense `context` settles for the translator ("there", greeting a reader)."""
        return str(self.translations.pgettext(context, message))

    def day(self, value: date) -> str:
        """A date as readers of the language write it in full: November 30, 2026; 30 novembre 2026."""
        return format_date(value, "long", locale=self.locale)

    def when(self, moment: datetime, zone: tzinfo | None = None, pattern: str = "EEE d MMM HH:mm") -> str:
        """A time as the editor reads it, with names in the language ("Mon 30 Nov 07:00 CET", "lun. 30 nov.
        07:00 CET"); in `zone` with its abbreviation, else as it is (a time without a zone is UTC)."""
        aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        local = aware.astimezone(zone) if zone else aware
        shown = format_datetime(local, pattern, locale=self.locale)
        return f"{shown} {local:%Z}" if zone else shown

    def week(self, year: int, number: int) -> str:
        """An ISO week as readers see it, when an issue has no date: Week 48, 2026."""
        return self.gettext("Week %(number)s, %(year)s") % {"number": number, "year": year}


def available() -> list[str]:
    """The languages we have a catalog for (English, the source, included)."""
    return sorted(p.parent.parent.name for p in CATALOGS.glob(f"*/LC_MESSAGES/{DOMAIN}.mo"))


def _parse(tag: str) -> Locale | None:
    try:
        return Locale.parse(tag.strip().replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return None


@functools.lru_cache(maxsize=32)
def language(tag: str) -> Language:
    """The newsletter's language (its `language` setting, such as "fr" or "pt-BR"); see the module's note."""
    locale = _parse(tag)
    if locale is None:
        log.warning(
            "language %r in the newsletter file is not a language code (such as en, fr or ar): the issue and the "
            "web pages are in English; set `language` to one of %s",
            tag,
            ", ".join(available()),
        )
        return Language(tag, Locale.parse(SOURCE_LANGUAGE), NullTranslations(), translated=False)
    found = Translations.load(str(CATALOGS), [str(locale), locale.language], DOMAIN)
    translated = locale.language == SOURCE_LANGUAGE or isinstance(found, Translations)
    if not translated:
        log.warning(
            "no translation of the digest's own words (Keep reading, the footer, the web pages) into %r: they "
            "stay in English (dates are in %s); the languages there are: %s",
            tag,
            locale.get_display_name(SOURCE_LANGUAGE),
            ", ".join(available()),
        )
    return Language(tag, locale, found, translated=translated)
