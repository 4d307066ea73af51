"""Each section layout (digest.config.Layout) on the 30-article sample: valid MJML, one heading outline
(the newsletter an h1, sections h2, headlines h3), as few links per article as the layout allows, each
with a name of its own, the section's name once, a numbered plain-text part; and in Chromium at 375,
600 and 800 px, light and dark, in English, French and Arabic (right to left), no sideways scrolling.
Screenshots: test-artifacts/layout-<layout>-<language>-<width>-<scheme>.png."""

from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser

import pytest

from digest.config import LAYOUTS, Layout, NewsletterConfig
from digest.email import placeholders
from digest.email.render import Rendered
from tests.conftest import IN_CI
from tests.render_sample import all_articles, example_config, render_sample, sample_content
from tests.test_render_browser import open_issue, screenshot
from tests.test_render_mjml_validator import VALIDATOR, validate

# The default layout's 30-article issue stays well under Gmail's 102 KB clip, which would hide the footer.
DEFAULT_MAX_BYTES = 60 * 1024
# The languages the browser checks: the source, one more left-to-right, and one right-to-left.
LANGUAGES = ["en", "fr", "ar"]
# An article's links: the headline, and in full also Keep reading (the bulletproof button of the top story
# and a lead, a styled link on a card).
MOST_LINKS = {"lead": 2, "cards": 2, "compact": 1, "headlines": 1}


def config_with(layout: Layout, language: str = "en") -> NewsletterConfig:
    config = example_config(language=language)
    return config.model_copy(update={"issue": config.issue.model_copy(update={"layout": layout})})


_rendered: dict[tuple[str, str], Rendered] = {}


def rendered_in(layout: Layout, language: str = "en") -> Rendered:
    if (layout, language) not in _rendered:
        _rendered[layout, language] = render_sample(config_with(layout, language))
    return _rendered[layout, language]


class Outline(HTMLParser):
    """Headings and links with the text a screen reader takes as their names (an image's alt included)."""

    def __init__(self, html: str):
        super().__init__()
        self.headings: list[tuple[str, str]] = []
        self.links: list[dict] = []
        self.texts: list[str] = []
        self._open: list[tuple[str, list[str], dict]] = []  # heading or link being read
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("h1", "h2", "h3", "h4", "a"):
            self._open.append((tag, [], attrs))
        elif tag == "img" and self._open:
            for _, parts, _ in self._open:
                parts.append(attrs.get("alt") or "")
            if self._open[-1][0] == "a":
                self._open[-1][2]["has_img"] = True

    def handle_endtag(self, tag):
        if self._open and self._open[-1][0] == tag:
            _, parts, attrs = self._open.pop()
            name = " ".join("".join(parts).split())
            if tag == "a":
                self.links.append({"href": attrs.get("href"), "name": name, "img": attrs.get("has_img", False)})
            else:
                self.headings.append((tag, name))

    def handle_data(self, data):
        if data.strip():
            self.texts.append(" ".join(data.split()))
        for _, parts, _ in self._open:
            parts.append(data)


def article_links(outline: Outline, article: dict) -> list[dict]:
    return [link for link in outline.links if (link["href"] or "").split("?")[0] == article["url"]]


@pytest.fixture(scope="module")
def content():
    return sample_content()


@pytest.fixture(scope="module")
def mjml_cli():
    if not VALIDATOR.exists():
        message = f"the MJML validator is not installed at {VALIDATOR}; run `make mjml-validator`"
        if IN_CI:
            pytest.fail(message + " (CI=true: this check must run)")
        pytest.skip(message)
    return VALIDATOR


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_passes_the_official_mjml_validator(mjml_cli, tmp_path, layout):
    source = tmp_path / f"{layout}.mjml"
    source.write_text(rendered_in(layout).mjml)
    result = validate(mjml_cli, source)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_newsletter_is_the_h1_sections_are_h2_and_headlines_h3(layout, content):
    outline = Outline(rendered_in(layout).html)
    by_level = {level: [name for tag, name in outline.headings if tag == level] for level in ("h1", "h2", "h3", "h4")}
    assert by_level["h1"] == ["The Meridian Review"]
    assert by_level["h2"] == ["Top story · Reporting", "Reporting", "Analysis", "Opinion"]
    assert by_level["h3"] == [article["title"] for article in all_articles(content)]
    assert by_level["h4"] == []
    # In document order: the h1 first, then every headline under a section heading.
    assert outline.headings[0][0] == "h1" and outline.headings[1][0] == "h2"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_sections_name_is_shown_once_not_on_every_article(layout, content):
    texts = Counter(text.casefold() for text in Outline(rendered_in(layout).html).texts)
    for section in content["sections"]:
        assert texts[section["name"].casefold()] == 1, section["name"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_an_article_has_at_most_its_layouts_links_and_every_link_its_own_name(layout, content):
    outline = Outline(rendered_in(layout).html)
    names = []
    for article in all_articles(content):
        links = article_links(outline, article)
        most = 2 if article is content["top"] else MOST_LINKS[layout]
        assert 1 <= len(links) <= most, (article["title"], links)
        # Photos are not links: the headline is the link that names the article.
        assert not any(link["img"] for link in links)
        assert links[0]["name"] == article["title"]
        for link in links[1:]:
            assert link["name"] == f"Keep reading “{article['title']}”"
        names += [link["name"] for link in links]
    assert len(names) == len(set(names))
    # Thirty "Keep reading" links would read alike; each one is told apart by its headline.
    assert not [link for link in outline.links if link["name"] == "Keep reading"]


def test_compact_and_headlines_show_each_article_of_a_section_by_one_link(content):
    for layout in ("compact", "headlines"):
        outline = Outline(rendered_in(layout).html)
        for article in (a for s in content["sections"] for a in s["articles"]):
            assert len(article_links(outline, article)) == 1


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_text_part_numbers_every_article_and_names_each_section_once(layout, content):
    text = rendered_in(layout).text
    lines = text.splitlines()
    for number, article in enumerate(all_articles(content), start=1):
        assert f"\u00a0[{number}]" in text
        (link,) = [line for line in lines if line.startswith(f"[{number}] ")]
        assert link.split(" ", 1)[1].split("?")[0] == article["url"]
    for section in content["sections"]:
        assert lines.count(section["name"].upper()) == 1


def test_what_each_layout_shows_of_an_article(content):
    second = content["sections"][0]["articles"][1]  # neither the top story nor a section's first
    shown = {layout: rendered_in(layout).html for layout in LAYOUTS}
    # A paragraph of the excerpt that the teaser does not already say.
    excerpt = next(p for p in second["excerpt"].split("\n\n") if p[:60] not in second["teaser"])[:60]
    assert excerpt in shown["cards"]
    assert excerpt not in shown["compact"] and excerpt not in shown["lead"] and excerpt not in shown["headlines"]
    assert 'class="teaser"' in shown["compact"]
    # Headlines: no photo but the top story's, no teaser.
    assert len(re.findall(r"<img\b", shown["headlines"])) == 1
    # The top story and, in "lead", each section's first article end with the bulletproof button.
    assert shown["lead"].count('bgcolor="#8a1c1c"') == 1 + len(content["sections"])
    assert shown["compact"].count('bgcolor="#8a1c1c"') == 1


def test_a_sections_own_layout_overrides_the_default_for_that_section_alone(content):
    config = example_config(section_layouts={"Opinion": "headlines", "Analysis": "cards"})
    html = render_sample(config, content).html
    sections = re.split(r'<h2 class="section-name"', html)[1:]
    reporting, analysis, opinion = sections
    assert 'class="teaser"' in reporting and "Keep reading" not in reporting  # compact: the default
    assert analysis.count('class="button"') == 10 and 'class="teaser"' not in analysis
    assert "<img" not in opinion.split("</h2>", 1)[1].split('class="footer')[0] and "Keep reading" not in opinion


def test_the_default_layouts_30_article_issue_is_under_60_kb(content):
    html = rendered_in(example_config().issue.layout).html
    assert example_config().issue.layout == "compact"
    assert len(html.encode()) <= DEFAULT_MAX_BYTES, len(html.encode())


# --- in Chromium ----------------------------------------------------------------------------------


def preview(layout: Layout, language: str = "en") -> str:
    html = rendered_in(layout, language).html
    return placeholders.fill_preview(html, "https://news.example.org", "there", html_part=True)


@pytest.mark.browser
@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [375, 600, 800])
@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_fits_375_600_and_800px_in_light_and_dark(browser, layout, language, width, scheme):
    page = open_issue(browser, preview(layout, language), width, color_scheme=scheme)
    widths = page.evaluate("[document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]")
    assert max(widths[:2]) <= widths[2] == width
    overflow = page.evaluate(
        """[...document.querySelectorAll('body *')]
             .filter(e => e.getClientRects().length && getComputedStyle(e).display !== 'none' && !e.closest('.sr'))
             .map(e => e.getBoundingClientRect().right).filter(r => r > window.innerWidth + 0.5).length"""
    )
    assert overflow == 0
    column = page.evaluate(
        "Math.max(...[...document.querySelectorAll('.card')].map(e => e.getBoundingClientRect().width))"
    )
    assert column <= min(width, 640)
    # A compact row's photo stays small beside its text; the headline never runs under it off the page.
    thumbs = page.evaluate("[...document.querySelectorAll('img.thumb')].map(i => i.getBoundingClientRect().width)")
    assert all(w <= 96 for w in thumbs)
    card_bg, headline = page.evaluate(
        """[getComputedStyle(document.querySelector('.card')).backgroundColor,
            getComputedStyle(document.querySelector('h3 a')).color]"""
    )
    dark = luminance(card_bg) < 0.2 and luminance(headline) > 0.8
    light = luminance(card_bg) > 0.9 and luminance(headline) < 0.2
    assert dark if scheme == "dark" else light, (card_bg, headline)
    # Arabic reads right to left: headlines and text start on the right, and the page's mirror image
    # keeps every row's photo on the far side of its text.
    direction, align = page.evaluate(
        """[getComputedStyle(document.querySelector('h3')).direction,
            getComputedStyle(document.querySelector('h3').closest('div')).textAlign]"""
    )
    rtl = language == "ar"
    assert (direction, align) == (("rtl", "right") if rtl else ("ltr", "left"))
    mirrored = page.evaluate(
        """[...document.querySelectorAll('img.thumb')].map(i => {
             const text = i.nextElementSibling.querySelector('a').getBoundingClientRect();
             const photo = i.getBoundingClientRect();
             return photo.right <= text.left + 1 ? 'left' : photo.left >= text.right - 1 ? 'right' : 'under';
           })"""
    )
    assert set(mirrored) <= {"left" if rtl else "right"}, mirrored
    screenshot(page, f"layout-{layout}-{language}-{width}-{scheme}.png")
    page.close()


@pytest.mark.browser
@pytest.mark.parametrize("layout", LAYOUTS)
def test_chromium_names_each_keep_reading_link_by_its_headline_and_finds_the_outline(browser, layout, content):
    # What a screen reader is given: Chromium's accessibility tree, where the hidden span counts.
    page = open_issue(browser, preview(layout), 375)
    assert page.get_by_role("link", name="Keep reading", exact=True).count() == 0
    top = content["top"]["title"]
    assert page.get_by_role("link", name=f"Keep reading “{top}”", exact=True).count() == 1
    assert page.get_by_role("link", name=top, exact=True).count() == 1
    assert page.get_by_role("heading", level=1).all_inner_texts() == ["The Meridian Review"]
    assert page.get_by_role("heading", level=2).count() == 1 + len(content["sections"])
    assert page.get_by_role("heading", level=3).count() == len(all_articles(content))
    # The photos are no links: no link is named by a photo's description.
    assert page.locator("img").count() >= 1 and page.locator("a img").count() == 0
    page.close()


def luminance(css: str) -> float:
    r, g, b = (int(x) for x in css[css.index("(") + 1 : css.index(")")].split(",")[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def test_the_validator_rejects_a_heading_outside_mj_text(mjml_cli, tmp_path):
    # mjml-python compiles a heading put straight into a column; only inside mj-text is it valid MJML, and
    # the validator must say so, or the layout checks above prove nothing about where headings go.
    source = tmp_path / "bad.mjml"
    source.write_text(rendered_in("compact").mjml.replace("<mj-column>", "<mj-column><h2>loose</h2>", 1))
    result = validate(mjml_cli, source)
    assert result.returncode != 0
