"""The rendered issue: size, markup, accessibility, links and placeholders, on the 30-article sample."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from digest.config import EmailConfig
from digest.email import placeholders
from digest.email.render import CONTENT_WIDTH, GMAIL_CLIP_BYTES, THUMB_WIDTH, compile_mjml, inline_css, inline_styles
from tests.render_sample import all_articles, example_config, render_sample, sample_content


class Tags(HTMLParser):
    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def all(self, name: str) -> list[dict]:
        return [attrs for tag, attrs in self.tags if tag == name]


@pytest.fixture(scope="module")
def rendered():
    return render_sample()


@pytest.fixture(scope="module")
def content():
    return sample_content()


def test_a_30_article_issue_has_30_articles_and_stays_under_gmails_clipping_limit(rendered, content):
    articles = all_articles(content)
    assert len(articles) == 30
    size = len(rendered.html.encode())
    assert size <= GMAIL_CLIP_BYTES, f"{size} bytes"
    for article in articles:
        assert article["title"].replace("&", "&amp;") in rendered.html
        assert article["title"] in " ".join(rendered.text.split())  # a long headline is wrapped


def test_no_mjml_tag_survives_and_the_doctype_and_lang_are_set(rendered):
    assert "<mj-" not in rendered.html
    assert rendered.html.startswith("<!doctype html>")
    html_tag = Tags(rendered.html).all("html")[0]
    assert html_tag["lang"] == "en"


def test_every_image_has_a_width_and_a_height_and_a_photo_shown_in_full_its_alt_text(rendered, content):
    images = Tags(rendered.html).all("img")
    assert len(images) == 30
    # The default layout: the top story in full, the others as compact rows with a small photo.
    (photo,) = [img for img in images if img.get("class") != "thumb"]
    assert photo["alt"] == content["top"]["image"]["alt"]
    # 1200x675 sources shown at 552px wide keep their proportions.
    assert (int(photo["width"]), int(photo["height"])) == (CONTENT_WIDTH, round(CONTENT_WIDTH * 675 / 1200))
    for thumb in images:
        if thumb is photo:
            continue
        # Decorative beside the headline that names the article: an empty alt, so screen readers skip it.
        assert thumb["alt"] == "" and (int(thumb["width"]), int(thumb["height"])) == (
            THUMB_WIDTH,
            round(THUMB_WIDTH * 675 / 1200),
        )


def test_dark_mode_has_a_color_scheme_meta_and_prefers_color_scheme_styles(rendered):
    metas = Tags(rendered.html).all("meta")
    assert {"name": "color-scheme", "content": "light dark"} in metas
    assert "@media (prefers-color-scheme: dark)" in rendered.html


def test_body_text_is_at_least_14px(rendered):
    mjml_defaults = re.search(r'<mj-text font-size="(\d+)px"', rendered.mjml)
    assert int(mjml_defaults[1]) >= 14
    # Of the template's own rules, only photo credits and the top story's label go below 14px (and the
    # text only screen readers take in, .sr, which is not to be seen).
    (css,) = inline_styles(rendered.mjml)
    small = {rule for rule, size in re.findall(r"([.\w -]+)\{[^}]*font-size:\s*(\d+)px", css) if int(size) < 14}
    assert {rule.strip() for rule in small} == {".credit", ".label", ".sr"}
    # The reading text itself: excerpts and deks inherit the 16px of their mj-text.
    assert re.search(r'<div style="[^"]*font-size:16px[^"]*">\s*<h2 class="label"', rendered.html)


def test_premailer_inlines_only_the_templates_inline_rules(rendered):
    styles = re.findall(r'style="([^"]*)"', rendered.html)
    # MJML's head resets (table, td { border-collapse ... mso-table-lspace }) stay in <head> only.
    assert not [s for s in styles if "mso-table-lspace" in s]
    # The template's inline rules do reach the elements.
    excerpt = re.search(r'<p class="excerpt" style="([^"]*)"', rendered.html)
    assert excerpt and "margin:10px 0 0" in excerpt[1]
    assert re.search(r'<h3 class="title" style="[^"]*font-size:18px', rendered.html)
    # The head keeps its styles, and premailer leaves no marker of its own behind.
    assert "data-premailer" not in rendered.html
    assert rendered.html.count("<style") >= 3


def test_inline_css_ignores_every_style_block_but_the_ones_named():
    html = (
        "<html><head><style>td { color: red; }</style><style>.x { color: blue; }</style></head>"
        '<body><table><tr><td class="x">a</td></tr></table></body></html>'
    )
    out = inline_css(html, [".x { color: blue; }"])
    assert 'style="color:blue"' in out
    assert "color:red" not in out.split("</head>")[1]


def test_inline_css_kept_between_renders_gives_each_style_block_its_own_rules():
    def page(css: str) -> str:
        return f'<html><head><style>{css}</style></head><body><p class="x">a</p></body></html>'

    blue, green = ".x { color: blue; }", ".x { color: green; font-weight: bold; }"
    # In turn, so that a block parsed before is read from the kept rules and must not answer for another.
    for _ in range(2):
        assert 'style="color:blue"' in inline_css(page(blue), [blue])
        assert 'style="color:green; font-weight:bold"' in inline_css(page(green), [green])


def test_inline_styles_are_found_in_the_mjml(rendered):
    blocks = inline_styles(rendered.mjml)
    assert len(blocks) == 1 and ".excerpt" in blocks[0]


def test_article_links_carry_utm_parameters_with_the_issue_slug(rendered, content):
    links = {a["href"] for a in Tags(rendered.html).all("a")}
    for article in all_articles(content):
        expected = f"{article['url']}?utm_source=the-meridian-review&utm_medium=email&utm_campaign=2026-w48"
        assert expected in links
        assert expected in rendered.text


def test_utm_parameters_can_be_switched_off_and_configured():
    off = render_sample(example_config(email=EmailConfig(utm=False)))
    assert "utm_" not in off.html and "utm_" not in off.text
    custom = render_sample(example_config(email=EmailConfig(utm_source="weekly", utm_medium="newsletter")))
    assert "utm_source=weekly&amp;utm_medium=newsletter&amp;utm_campaign=2026-w48" in custom.html


def test_per_recipient_values_are_placeholders_in_both_parts(rendered):
    for part in (rendered.html, rendered.text):
        assert set(placeholders.leftover(part)) == set(placeholders.NAMES)
    unsubscribe = [a for a in Tags(rendered.html).all("a") if a["href"] == "%%unsubscribe_url%%"]
    assert unsubscribe, "a visible unsubscribe link in the body"


def test_the_preview_fills_every_placeholder_with_sample_values(rendered):
    preview = placeholders.fill_preview(rendered.html, "https://news.example.org", "there", html_part=True)
    assert placeholders.leftover(preview) == []
    assert "https://news.example.org/unsubscribe/preview" in preview
    assert "Hello there," in preview


def test_header_preheader_and_footer_carry_what_readers_and_the_law_expect(rendered, content):
    config = example_config()
    assert rendered.html.count(config.postal_address) == 1
    assert config.postal_address in " ".join(rendered.text.split())  # wrapped at 72 columns
    # The preheader is the top story's teaser, hidden before the first visible content.
    preheader = re.search(r'<div class="preheader" style="display:none;[^"]*">([^<]*)', rendered.html)
    assert preheader and content["top"]["teaser"][:60] in preheader[1]
    assert "View in browser" in rendered.html and 'href="https://news.example.org/issues/2026-w48"' in rendered.html
    assert "November 30, 2026" in rendered.html
    for link in config.email.social:
        assert f'href="{link.url}"' in rendered.html and link.url in rendered.text
    assert "because you subscribed" in rendered.html
    assert "Manage preferences" in rendered.html


def test_no_remote_font_import_unless_configured(rendered):
    assert "@import" not in rendered.html and "fonts.googleapis" not in rendered.html
    config = example_config(email=EmailConfig(fonts={"Georgia": "https://fonts.example.org/georgia.css"}))
    with_font = render_sample(config)
    assert "https://fonts.example.org/georgia.css" in with_font.html


def test_the_text_part_reads_as_the_issue(rendered, content):
    assert rendered.text.startswith("The Meridian Review — November 30, 2026")
    for section in content["sections"]:
        assert f"\n{section['name'].upper()}\n" in rendered.text
    assert "<" not in rendered.text.replace("<https", "")
    assert max(len(line) for line in rendered.text.splitlines() if "http" not in line) <= 72


def test_an_unknown_mj_tag_is_an_error_naming_the_template():
    from digest.errors import TemplateError

    source = "<mjml><mj-body><mj-section><mj-colum><mj-text>x</mj-text></mj-colum></mj-section></mj-body></mjml>"
    with pytest.raises(TemplateError, match=r"my\.mjml\.j2: <mj-colum> reached the HTML"):
        compile_mjml(source, template="my.mjml.j2")


def test_missing_optional_fields_render_and_a_card_without_dek_uses_the_teaser():
    from digest.content.compose import content_from_document

    config = example_config()
    content = content_from_document(
        {
            "sections": [
                {
                    "name": "News",
                    "articles": [
                        {"title": "Only a title", "url": "https://example.org/a"},
                        {"title": "With teaser", "url": "https://example.org/b", "teaser": "A teaser line."},
                    ],
                }
            ]
        },
        config,
    )
    out = render_sample(config, content)
    assert "Only a title" in out.html and "With teaser" in out.html
    assert out.html.count("A teaser line.") == 1 and "<img" not in out.html


def test_a_card_shows_its_teaser_once_even_when_the_excerpt_opens_with_it():
    from digest.content.compose import content_from_document

    config = example_config()
    lede = "The harbour wall will be rebuilt by April, the council said."
    article = {
        "title": "Harbour wall",
        "url": "https://example.org/h",
        "dek": "A publisher's line that the teaser replaces.",
        "teaser": lede,
        "excerpt": f"{lede} Fishermen said it came too late for the winter season.",
    }
    out = render_sample(config, content_from_document({"sections": [{"name": "News", "articles": [article]}]}, config))
    # Under the headline, then the excerpt without it (the HTML also carries it as the preheader).
    assert re.search(r'class="dek"[^>]*>' + re.escape(lede) + "</p>", out.html)
    assert re.search(r'class="excerpt"[^>]*>Fishermen said it came too late', out.html)
    assert out.text.count(lede) == 1 and "the teaser replaces" not in out.html + out.text
