"""What mail clients need of the HTML part: a preheader hidden without white-on-white text and padded so
that no body text is pulled in after it, a call to action Outlook draws as a button, the metas that
stop Apple Mail from reformatting and data detectors from restyling, images sized before they load."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from digest.email.render import PREHEADER_CHARS, PREHEADER_MIN_PADDING, render_issue
from tests.render_sample import VIEW_URL, example_config, render_sample, sample_content

PAD = "\u200c\u00a0"  # &zwnj;&nbsp;, as premailer writes it out


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text inside the element with class "preheader"."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.preheader: list[str] = []
        self._in_preheader = 0
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attributes = {k: v or "" for k, v in attrs}
        self.tags.append((tag, attributes))
        if self._in_preheader:
            self._in_preheader += 1
        elif "preheader" in attributes.get("class", "").split():
            self._in_preheader = 1

    def handle_endtag(self, tag):
        if self._in_preheader:
            self._in_preheader -= 1

    def handle_data(self, data):
        if self._in_preheader:
            self.preheader.append(data)


def styles(style: str) -> dict[str, str]:
    pairs = (part.split(":", 1) for part in style.split(";") if ":" in part)
    return {name.strip().lower(): value.strip().lower() for name, value in pairs}


@pytest.fixture(scope="module")
def rendered():
    return render_sample()


def render_with_preheader(preheader: str):
    config = example_config()
    content = sample_content(config)
    return render_issue(config, content, subject="s", preheader=preheader, view_url=VIEW_URL, slug="2026-w48")


def test_the_preheader_is_hidden_without_a_colour_and_comes_before_any_visible_text(rendered):
    found = Elements(rendered.html)
    hidden = [attrs for _, attrs in found.tags if "preheader" in attrs.get("class", "").split()]
    assert len(hidden) == 1
    css = styles(hidden[0]["style"])
    assert css["display"] == "none" and css["mso-hide"] == "all" and css["overflow"] == "hidden"
    assert css["max-height"] in ("0", "0px") and css["font-size"] == "1px"
    # No colour at all: the white-on-white trick is what SpamAssassin's HTML_FONT_LOW_CONTRAST scores.
    assert "color" not in css
    assert not re.search(r"display:\s*none[^\"]*color:\s*#fff", rendered.html, re.I)
    # It is the first thing in the body: nothing a reader sees comes before it.
    body = rendered.html[rendered.html.index("<body") :]
    assert body.index('class="preheader"') < body.index("View in browser")


def test_a_short_preheader_is_padded_to_fill_the_inbox_preview_and_a_long_one_still_gets_some():
    short = "".join(Elements(render_with_preheader("The week in eight stories.").html).preheader)
    assert short.startswith("The week in eight stories.")
    padding = short.removeprefix("The week in eight stories.")
    assert set(padding) == set(PAD) and padding.count(PAD) == PREHEADER_CHARS - len("The week in eight stories.")
    long_line = "word " * 60
    long = "".join(Elements(render_with_preheader(long_line).html).preheader)
    assert long.count(PAD) == PREHEADER_MIN_PADDING


def test_without_a_preheader_there_is_no_hidden_block():
    assert 'class="preheader"' not in render_with_preheader("").html


def test_the_primary_call_to_action_is_a_bulletproof_button(rendered):
    content = sample_content()
    top_link = rendered.mjml.split('<mj-button href="', 1)[1].split('"', 1)[0]
    assert top_link.split("?")[0] == content["top"]["url"]
    assert rendered.mjml.count("<mj-button") == 1  # the lead's; the other cards keep a light link
    tags = Elements(rendered.html).tags
    # The cell carries the colour (bgcolor: what Outlook's Word engine paints), the link is inside it.
    cells = [attrs for tag, attrs in tags if tag == "td" and attrs.get("bgcolor") == "#8a1c1c"]
    assert len(cells) == 1 and "mso-padding-alt" in cells[0]["style"]
    button_link = rendered.html.split('bgcolor="#8a1c1c"', 1)[1].split("</td>", 1)[0]
    assert f'href="{top_link.replace("&amp;", "&").replace("&", "&amp;")}"' in button_link
    # Its name is Keep reading and the headline, the latter in a span only screen readers take in.
    assert re.search(
        r'>Keep reading<span class="sr"[^>]*> “' + re.escape(content["top"]["title"]) + "”</span></a>", button_link
    )


def test_apple_mail_and_data_detectors_are_told_to_leave_the_layout_alone(rendered):
    metas = {attrs.get("name"): attrs.get("content") for tag, attrs in Elements(rendered.html).tags if tag == "meta"}
    assert "x-apple-disable-message-reformatting" in metas
    detection = {part.strip() for part in (metas.get("format-detection") or "").split(",")}
    assert {"telephone=no", "date=no", "address=no", "email=no"} <= detection


def test_an_image_has_width_and_height_when_the_content_gives_them_and_width_alone_otherwise():
    # Shown in full (cards): a compact row's thumbnail has its own size (tests/test_render_layouts.py).
    config = example_config()
    config = config.model_copy(update={"issue": config.issue.model_copy(update={"layout": "cards"})})
    article = {"title": "Harbour", "url": "https://example.org/h", "teaser": "A line."}
    sized = {**article, "image": {"url": "https://example.org/h.jpg", "width": 1200, "height": 675}}
    unsized = {**article, "url": "https://example.org/u", "image": {"url": "https://example.org/u.jpg"}}
    from digest.content.compose import content_from_document

    content = content_from_document({"sections": [{"name": "News", "articles": [sized, unsized]}]}, config)
    tags = Elements(render_sample(config, content).html).tags
    images = {attrs["src"]: attrs for tag, attrs in tags if tag == "img"}
    # Laid out at the 552px column, in proportion, so the page does not jump as images load.
    assert (
        images["https://example.org/h.jpg"]["width"] == "552" and images["https://example.org/h.jpg"]["height"] == "310"
    )
    assert images["https://example.org/u.jpg"]["width"] == "552" and "height" not in images["https://example.org/u.jpg"]
