"""The newsletter's `language`: our own words (never the editor's) translated in the issue, the confirmation
mail and the web pages; dates in the language; right to left for Arabic; an unknown language in English
with a warning; and catalogs whose compiled files and template are up to date with the sources."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from datetime import UTC, date, datetime
from html import unescape
from io import BytesIO
from pathlib import Path
from types import SimpleNamespace

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from digest.config import NewsletterConfig, load_newsletter
from digest.email.templates import template_environment
from digest.jobs.figures import Figures
from digest.locale import CATALOGS, DOMAIN, language
from tests.cli_helpers import run_cli
from tests.conftest import EXAMPLE_CONFIG, ROOT
from tests.render_sample import ISSUE_30, example_config, render_sample
from tests.test_render_browser import screenshot
from tests.test_render_mjml_validator import VALIDATOR, validate

TEMPLATE = CATALOGS / f"{DOMAIN}.pot"
TRANSLATED = ["fr", "ar"]
# Checked through the pages that use them: the layout every page extends, the preview's waves.
PARTS = {"base.html", "preview_waves.html"}
CONFIRMATION = ["email/confirm.html.j2", "email/confirm.txt.j2"]
# pybabel extract's options, as the Makefile's `translations` target gives them.
EXTRACT = ["-F", "babel.cfg", "-k", "N_", "--no-location", "--sort-output", "--ignore-dirs", ".* ._ node_modules var"]


def catalog(path: Path):
    with path.open("rb") as f:
        return read_po(f)


def source_fragments() -> list[str]:
    """Our English words, as they can show: each message of the template cut at its placeholders and tags,
    the pieces of two words or more, or one word of 5 letters or more ("Keep reading", "Unsubscribe")."""
    pieces: set[str] = set()
    for message in catalog(TEMPLATE):
        for text in message.id if isinstance(message.id, tuple) else (message.id,):
            for piece in re.split(r"%\(\w+\)s|<[^>]+>|[“”:?()]", text):
                piece = piece.strip(" .,;")
                if len(piece.split()) >= 2 or re.fullmatch(r"[A-Za-z-]{5,}", piece):
                    pieces.add(piece)
    return sorted(pieces)


def editors_words(config: NewsletterConfig) -> str:
    """What the editor wrote (articles, names, tagline, address): English words there are not ours."""
    return "\n".join([ISSUE_30.read_text(), config.name, config.tagline, config.postal_address, *config.sections])


def english_left(output: str, lang: str, config: NewsletterConfig) -> list[str]:
    """Our English pieces found in `output`, except those the translation itself keeps (French "Pages")."""
    translated = "\n".join(
        s for m in catalog(CATALOGS / lang / "LC_MESSAGES" / f"{DOMAIN}.po") for s in _strings(m.string)
    )
    theirs = editors_words(config)
    text = unescape(output)
    return [
        piece
        for piece in source_fragments()
        if re.search(rf"(?<![\w-]){re.escape(piece)}(?![\w-])", text)
        and piece not in translated
        and piece not in theirs
    ]


def _strings(value) -> tuple[str, ...]:
    return value if isinstance(value, tuple) else (value,)


_issues: dict[str, object] = {}


def issue_in(lang: str):
    if lang not in _issues:
        _issues[lang] = render_sample(example_config(language=lang))
    return _issues[lang]


# --- the issue ---------------------------------------------------------------------------------------


def test_the_english_issue_shows_the_words_the_other_checks_look_for():
    # Else "no English left" below would pass on output where the check finds nothing to find.
    config = example_config()
    rendered = issue_in("en")
    for word in ["Keep reading", "min read", "View in browser", "Manage preferences", "Unsubscribe", "Top story"]:
        assert word in rendered.html, word
    assert {"Keep reading", "View in browser", "Manage preferences"} <= set(english_left(rendered.html, "fr", config))
    assert "Follow us" in english_left(rendered.text, "ar", config)


@pytest.mark.parametrize("lang", TRANSLATED)
def test_the_issue_in_french_and_arabic_has_none_of_our_english_words(lang):
    config = example_config(language=lang)
    rendered = issue_in(lang)
    assert english_left(rendered.html, lang, config) == []
    assert english_left(rendered.text, lang, config) == []
    # "By" is too short for the pieces above; before an author's name it would be ours.
    assert not re.search(r"\bBy [A-Z]", rendered.html + rendered.text)


def test_french_and_arabic_issues_say_keep_reading_the_reading_time_and_the_date_in_their_language():
    fr, ar = issue_in("fr"), issue_in("ar")
    assert "Lire la suite" in fr.html and "min de lecture" in fr.html and "À la une" in fr.html
    assert "30 novembre 2026" in fr.html and "30 novembre 2026" in fr.text
    assert "تابع القراءة" in ar.html and "إلغاء الاشتراك" in ar.html
    assert "30 نوفمبر 2026" in ar.html and "30 نوفمبر 2026" in ar.text
    # The hidden name of each Keep reading link quotes the headline as the language does.
    assert "«\u00a0Bolivian lawmakers" in fr.html and "«Bolivian lawmakers" in ar.html


@pytest.mark.parametrize(("lang", "direction"), [("en", "ltr"), ("fr", "ltr"), ("ar", "rtl")])
def test_the_issue_is_written_right_to_left_in_arabic_only(lang, direction):
    rendered = issue_in(lang)
    assert re.search(rf'<mjml lang="{lang}" dir="{direction}">', rendered.mjml)
    assert re.search(rf'<html lang="{lang}" dir="{direction}"', rendered.html)
    # Text starts on the language's side: MJML writes each block's alignment into its style.
    start, end = ("right", "left") if direction == "rtl" else ("left", "right")
    headline_block = re.search(r'<div style="[^"]*text-align:(\w+)[^"]*">\s*<h2 class="label"', rendered.html)
    assert headline_block and headline_block[1] == start
    assert f"direction:{'ltr' if direction == 'rtl' else 'rtl'}" not in rendered.html
    assert f"border-{start}:3px solid" in rendered.html.replace(": ", ":")  # the pull quote's rule
    assert f'align="{end}"' in rendered.html  # "View in browser" and the rows' photos: the far side


def test_the_arabic_reading_time_takes_each_of_the_six_plural_forms():
    ar = language("ar")
    forms = [ar.ngettext("%(num)s min read", "%(num)s min read", n) % {"num": n} for n in (0, 1, 2, 3, 11, 100)]
    assert forms == [
        "أقل من دقيقة قراءة",
        "دقيقة واحدة للقراءة",
        "دقيقتان للقراءة",
        "3 دقائق للقراءة",
        "11 دقيقة للقراءة",
        "100 دقيقة للقراءة",
    ]
    assert language("fr").ngettext("%(num)s min read", "%(num)s min read", 4) % {"num": 4} == "4 min de lecture"


@pytest.mark.parametrize("lang", TRANSLATED)
def test_the_issue_in_french_and_arabic_passes_the_official_mjml_validator(lang, tmp_path):
    if not VALIDATOR.exists():
        pytest.skip(f"the MJML validator is not installed at {VALIDATOR}; run `make mjml-validator`")
    source = tmp_path / f"issue-{lang}.mjml"
    source.write_text(issue_in(lang).mjml)
    result = validate(VALIDATOR, source)
    assert result.returncode == 0, result.stdout + result.stderr


# --- the confirmation mail and the web pages ----------------------------------------------------------


def page_contexts(config: NewsletterConfig) -> list[tuple[str, dict]]:
    """Every template a reader (or the editor's login) sees, once per branch, with made-up values."""
    issue = SimpleNamespace(
        slug="2026-w48", subject="Bolivian lawmakers delay vote", preheader="", week="2026-W48",
        content={"date": "2026-11-30"},
    )  # fmt: skip
    reader = SimpleNamespace(email="ana@example.org", status="active", timezone=None)
    gone = SimpleNamespace(email="ana@example.org", status="unsubscribed", timezone=None)
    form = {"csrf_token": "t", "email": "", "name": "", "honeypot": "website", "action": "/confirm/x"}
    sections = list(config.sections)
    return [
        ("archive.html", {"issues": [issue, issue], "pages": 3, "number": 2, "total": 45}),
        ("archive.html", {"issues": [], "pages": 1, "number": 1, "total": 0}),
        ("archive_missing.html", {"message": "There is no issue %(slug)s.", "details": {"slug": "'x'"}}),
        ("confirm.html", {**form, "error": "This page has expired or came from another site. Press the button again."}),
        ("confirmed.html", {"status": "active", "email": "ana@example.org", "preferences_url": "/p"}),
        ("confirmed.html", {"status": "unsubscribed", "email": "ana@example.org", "preferences_url": "/p"}),
        ("editor_message.html", {"title": "The form could not be read", "message": "", "back": "/preview"}),
        ("error.html", {"title": "This link no longer works", "message": "This address is no longer on our list."}),
        ("home.html", {"issues": [issue], "total": 12}),
        ("home.html", {"issues": [], "total": 0}),
        ("login.html", {**form, "error": "That is not the admin token.", "next": "/preview"}),
        ("manage.html", {}),
        (
            "preferences.html",
            {
                "subscriber": reader,
                "saved": True,
                "left_out": sections,
                "sections": sections,
                "zones": ["Europe/Paris"],
                "newsletter_zone": "UTC",
            },
        ),  # fmt: skip
        ("resubscribed.html", {"subscriber": reader, "status": "active"}),
        ("resubscribed.html", {"subscriber": reader, "status": "pending"}),
        ("resubscribed.html", {"subscriber": reader, "status": "bounced"}),
        (
            "subscribe.html",
            {**form, "error": "This form has expired or came from another site. Please submit it again."},
        ),
        ("subscribe_done.html", {"email": "ana@example.org", "double_opt_in": True}),
        ("subscribe_done.html", {"email": "ana@example.org", "double_opt_in": False}),
        ("unsubscribe.html", {"subscriber": reader, "token": "x", "done": False}),
        ("unsubscribe.html", {"subscriber": gone, "token": "x", "done": True}),
        ("preview_empty.html", {"csrf_token": "t"}),
        *[("preview.html", preview_values(status)) for status in ("draft", "sent")],
    ]


def preview_values(status: str) -> dict:
    """The editor's preview of a draft (articles in each state, edit forms) or of a sent issue (figures, waves,
    batches of unknown fate)."""
    when = datetime(2026, 11, 30, 7, tzinfo=UTC)
    issue = SimpleNamespace(
        id=1, week="2026-W48", slug="2026-w48", status=status, sent_at=when, subject="s", preheader="",
        html="<p>", window_start=when, window_end=when,
    )  # fmt: skip
    article = SimpleNamespace(
        id=7, section="Reporting", published_at=when, url="https://x.example/a", title="Bolivian lawmakers delay vote",
        shown_teaser="t", shown_excerpt="e", page_error="timed out", teaser_override="t", excerpt_override=None,
    )  # fmt: skip
    rows = [
        SimpleNamespace(state=state, pinned=state == "top", article=article)
        for state in ("top", "in", "left_out", "out")
    ]
    figures = Figures(recipients=120, delivered=118, opened=60, clicked=20, bounced=2, complained=0, unsubscribed=1)
    figures.articles = [
        SimpleNamespace(url="https://x.example/a", title="Bolivian lawmakers delay vote", people=9, clicks=11)
    ]
    zones = ["UTC", "Europe/London", "Africa/Accra", "Atlantic/Reykjavik", "Europe/Lisbon", "Africa/Dakar"]
    wave = SimpleNamespace(
        number=1, send_at=when, local="2026-11-30 07:00", offset="+00:00", zones=zones, recipients=40, sent=30,
        pending=8, skipped=1, cancelled=1, delivered=29, opened=12, clicked=4,
    )  # fmt: skip
    unknown = [
        SimpleNamespace(number=3, recipients=250, reason="timed out"),
        SimpleNamespace(number=4, recipients=1, reason=""),
    ]
    return {
        "issue": issue, "view": "text", "frame_width": None, "text": "…", "size_kb": 120.0, "limit_kb": 102,
        "over_limit": True, "articles": rows, "pending": "", "figures": figures if status == "sent" else None,
        "unknown": unknown if status == "sent" else [], "waves": [wave], "issues": [issue], "error": None,
        "logged_in": True, "csrf_token": "t",
    }  # fmt: skip


def render_page(config: NewsletterConfig, name: str, values: dict) -> str:
    env = template_environment(config.template_dirs(), config.language)
    return env.get_template(f"web/{name}").render(newsletter=config, **values)


def test_every_readers_page_is_checked():
    checked = {name for name, _ in page_contexts(example_config())}
    on_disk = {p.name for p in (ROOT / "templates/web").glob("*.html")}
    assert on_disk - PARTS == checked


def test_the_english_pages_show_the_words_the_other_checks_look_for():
    config = example_config()
    found = {
        piece
        for name, values in page_contexts(config)
        for piece in english_left(render_page(config, name, values), "fr", config)
    }
    assert {"Subscribe", "Check your inbox", "Latest issues", "Your preferences"} <= found


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_readers_page_in_french_and_arabic_has_none_of_our_english_words(lang):
    config = example_config(language=lang)
    for name, values in page_contexts(config):
        html = render_page(config, name, values)
        assert english_left(html, lang, config) == [], name
        assert f'<html lang="{lang}" dir="{"rtl" if lang == "ar" else "ltr"}">' in html, name


def test_archive_and_home_pages_date_each_issue_in_the_newsletters_language():
    fr, ar = example_config(language="fr"), example_config(language="ar")
    (_, archive), (_, home) = page_contexts(fr)[0], page_contexts(fr)[8]
    assert "30 novembre 2026" in render_page(fr, "archive.html", archive)
    assert "30 نوفمبر 2026" in render_page(ar, "home.html", home)
    undated = SimpleNamespace(slug="2026-w48", subject="s", preheader="", week="2026-W48", content={})
    assert "Semaine 48, 2026" in render_page(fr, "home.html", {"issues": [undated], "total": 1})
    # The editor's preview names days and months in the language too (an article's time in the newsletter's
    # zone, New York in the example; a wave's in UTC).
    preview = render_page(fr, "preview.html", preview_values("sent"))
    assert "lun. 30 nov. 02:00 EST" in preview and "<td>lun. 07:00</td>" in preview


def test_a_message_made_in_python_is_translated_but_stays_text_not_markup():
    config = example_config(language="fr")
    html = render_page(config, "error.html", {"title": "This link no longer works", "message": "<b>50% off</b>"})
    assert "Ce lien ne fonctionne plus" in html
    assert "&lt;b&gt;50% off&lt;/b&gt;" in html


@pytest.mark.parametrize("lang", TRANSLATED)
def test_the_confirmation_mail_in_french_and_arabic_has_none_of_our_english_words(lang):
    config = example_config(language=lang)
    env = template_environment(config.template_dirs(), lang)
    for name in CONFIRMATION:
        for person in ("Ana", None):
            values = {"name": person, "newsletter": config.name, "confirm_url": "https://x.example/c",
                      "postal_address": config.postal_address, "language": lang}  # fmt: skip
            assert english_left(env.get_template(name).render(values), lang, config) == [], (name, person)
    assert language(lang).gettext("Confirm your subscription to %(newsletter)s") != (
        "Confirm your subscription to %(newsletter)s"
    )


# --- languages we have no words for ------------------------------------------------------------------


def test_a_language_without_our_catalog_keeps_our_words_in_english_with_a_warning(caplog):
    language.cache_clear()
    with caplog.at_level(logging.WARNING, logger="digest.locale"):
        german = language("de")
        nonsense = language("not a language")
    assert german.gettext("Keep reading") == "Keep reading" and not german.translated
    assert german.day(date(2026, 11, 30)) == "30. November 2026"  # Babel still knows German dates
    assert nonsense.gettext("Keep reading") == "Keep reading" and nonsense.dir == "ltr"
    assert nonsense.day(date(2026, 11, 30)) == "November 30, 2026"
    warnings = [r.getMessage() for r in caplog.records]
    assert any("'de'" in w and "stay in English" in w for w in warnings), warnings
    assert any("'not a language'" in w and "ar, en, fr" in w for w in warnings), warnings
    # Hebrew has no catalog of ours yet, but it is written right to left all the same.
    assert language("he").dir == "rtl" and language("pt-BR").locale.territory == "BR"
    # A regional variant reads its language's catalog.
    assert language("fr-CA").gettext("Keep reading") == "Lire la suite" and language("ar_EG").dir == "rtl"


def test_an_issue_in_a_language_we_have_no_words_for_renders_in_english():
    rendered = render_sample(example_config(language="xx"))
    assert "Keep reading" in rendered.html and 'lang="xx" dir="ltr"' in rendered.html


# --- the catalogs ------------------------------------------------------------------------------------


def test_the_compiled_catalogs_are_those_of_the_po_files():
    # The .mo files ship in the package; a .po edited without `make translations` would not show.
    po_files = sorted(CATALOGS.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))
    assert {p.parent.parent.name for p in po_files} == {"en", "fr", "ar"}
    for po in po_files:
        compiled = po.with_suffix(".mo")
        assert compiled.exists(), f"{compiled} is missing: run make translations"
        made = BytesIO()
        write_mo(made, catalog(po))
        assert made.getvalue() == compiled.read_bytes(), f"{compiled} is older than {po.name}: run make translations"


def test_every_message_is_translated_in_french_and_arabic_and_none_is_fuzzy():
    for lang in TRANSLATED:
        for message in catalog(CATALOGS / lang / "LC_MESSAGES" / f"{DOMAIN}.po"):
            if message.id:
                assert all(_strings(message.string)), (lang, message.id)
                assert not message.fuzzy, (lang, message.id)


def test_the_template_holds_every_message_of_the_sources(tmp_path):
    # What `make translations` extracts now is what the committed digest.pot holds.
    out = tmp_path / "digest.pot"
    result = subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "-q", "extract", *EXTRACT, "-o", str(out), "."],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    fresh = {m.id for m in catalog(out) if m.id}
    committed = {m.id for m in catalog(TEMPLATE) if m.id}
    assert fresh == committed, f"run make translations: new {fresh - committed}, gone {committed - fresh}"
    for lang in ("en", *TRANSLATED):
        assert {m.id for m in catalog(CATALOGS / lang / "LC_MESSAGES" / f"{DOMAIN}.po") if m.id} == committed, lang


def test_doctor_warns_of_a_language_we_have_no_words_for_and_says_which_we_have(cli_env, tmp_path):
    newsletter = tmp_path / "digest.toml"
    text = EXAMPLE_CONFIG.read_text()
    assert 'language = "en"' in text
    newsletter.write_text(text.replace('language = "en"', 'language = "xx"'))
    result = run_cli(["doctor", "--no-dns", "--json"], {**cli_env, "DIGEST_CONFIG": str(newsletter)}, tmp_path)
    found = {f["check"]: f for f in (json.loads(line) for line in result.stdout.splitlines() if line.strip())}
    assert found["language"]["status"] == "warn", result.stdout
    assert "'xx'" in found["language"]["detail"] and "ar, en, fr" in found["language"]["detail"]
    newsletter.write_text(text.replace('language = "en"', 'language = "fr"'))
    french = run_cli(["doctor", "--no-dns", "--json"], {**cli_env, "DIGEST_CONFIG": str(newsletter)}, tmp_path)
    assert '"check": "language"' not in french.stdout and '"check": "newsletter"' in french.stdout


def test_a_reader_with_no_name_is_greeted_in_the_newsletters_language_unless_the_file_says_how(tmp_path):
    text = EXAMPLE_CONFIG.read_text()
    line = 'first_name_fallback = "there"'
    assert line in text
    unset = tmp_path / "digest.toml"
    unset.write_text(text.replace('language = "en"', 'language = "fr"').replace(line, ""))
    assert load_newsletter(unset).issue.first_name_fallback == "à vous"
    unset.write_text(text.replace('language = "en"', 'language = "ar"').replace(line, ""))
    assert load_newsletter(unset).issue.first_name_fallback == "عزيزي القارئ"
    unset.write_text(text.replace(line, ""))
    assert load_newsletter(unset).issue.first_name_fallback == "there"
    unset.write_text(text.replace('language = "en"', 'language = "fr"').replace(line, 'first_name_fallback = "ami"'))
    assert load_newsletter(unset).issue.first_name_fallback == "ami"


# --- in Chromium ---------------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["en", "fr", "ar"])
@pytest.mark.parametrize("name", ["subscribe.html", "home.html", "preferences.html", "archive.html"])
def test_a_readers_page_reads_in_its_direction_at_375px_without_sideways_scrolling(browser, name, lang):
    config = example_config(language=lang)
    values = next(values for page_name, values in page_contexts(config) if page_name == name)
    page = browser.new_page(viewport={"width": 375, "height": 900})
    page.route("**/*", lambda route: route.abort())
    page.set_content(render_page(config, name, values), wait_until="load")
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1] == 375  # the hidden honeypot field sits off the start side, not widening it
    direction, align, h1_left, h1_right, main_left, main_right = page.evaluate(
        """(() => { const h = document.querySelector('main h1, main h2'), r = document.createRange();
                    r.selectNodeContents(h); const t = r.getBoundingClientRect(),
                    m = getComputedStyle(document.querySelector('main'));
                    const box = document.querySelector('main').getBoundingClientRect();
                    return [getComputedStyle(h).direction, getComputedStyle(h).textAlign, t.left, t.right,
                            box.left + parseFloat(m.paddingLeft), box.right - parseFloat(m.paddingRight)]; })()"""
    )
    assert direction == ("rtl" if lang == "ar" else "ltr")
    # The heading's words start at the side the language starts from.
    if lang == "ar":
        assert abs(h1_right - main_right) < 2, (h1_right, main_right)
    else:
        assert abs(h1_left - main_left) < 2, (h1_left, main_left)
    screenshot(page, f"web-{name.removesuffix('.html')}-{lang}-375.png")
    page.close()
