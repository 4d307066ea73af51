"""digest.email.inliner gives premailer's own output, byte for byte, on the issues and on harder CSS."""

from __future__ import annotations

import logging

import pytest
from premailer import Premailer

from digest.config import LAYOUTS
from digest.email import inliner
from digest.email.render import _mark_ignored, compile_mjml, context, environment, inline_styles, render_mjml
from tests.render_sample import VIEW_URL, example_config, sample_content

OPTIONS = {
    "allow_network": False,
    "keep_style_tags": True,
    "strip_important": False,
    "disable_validation": True,
    "cssutils_logging_level": logging.CRITICAL,
    "align_floating_images": False,
}


def both(html: str) -> tuple[str, str]:
    """(premailer's transform, ours) of the same page, ours twice so that its kept results answer too."""
    expected = Premailer(html, **OPTIONS).transform()
    inliner.Inliner(html, **OPTIONS).transform()
    return expected, inliner.Inliner(html, **OPTIONS).transform()


def compiled_issue(language: str, layout: str) -> str:
    base = example_config()
    config = base.model_copy(
        update={
            "language": language,
            "issue": base.issue.model_copy(update={"layout": layout}),
            "section_layouts": {},
        }
    )
    content = sample_content(config)
    ctx = context(
        config, content, subject="A week", preheader=content["top"]["teaser"], view_url=VIEW_URL, slug="2026-w48"
    )
    source = render_mjml(environment(config), ctx)
    return _mark_ignored(compile_mjml(source), inline_styles(source))


@pytest.mark.parametrize("language", ["en", "fr", "ar"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_sample_issue_inlines_as_premailer_does(language, layout):
    expected, ours = both(compiled_issue(language, layout))
    assert 'style="' in expected
    assert ours == expected


HARD_CSS = """
td.cell .x a { color: red; }
.x.y { font-weight: bold; }
.x, p { margin: 0; }
table .x { padding: 1px; }
div td .y { border: 0; }
P { color: green; }
#main p { color: blue; }
p[lang] { font-style: italic; }
tr > td { text-align: center; }
li:first-child { color: purple; }
li:nth-child(2) { color: olive; }
.y a:hover { color: pink; }
.z { color: unset; background-color: #abc; width: 10px; }
.imp { color: black !important; vertical-align: top; }
* { box-sizing: border-box; }
.-dash_under { height: 5px; }
"""

HARD_BODY = """
<div id="main"><table><tr><td class="cell"><p class="x" lang="en"><a href="#">a</a></p></td>
<td class="x\ty\ncell" style="color: teal; width: 4px"><span class="y"><a href="#">b</a></span></td></tr></table>
<ul><li class="imp">one</li><li class="z">two</li><li class="-dash_under x">three</li></ul>
<!-- a comment --><p class="x x">again</p><p class="X">case</p>
<p class="y\u00a0z">a no-break space joins, XPath splits at ASCII spaces only</p></div>
"""


@pytest.mark.parametrize(
    "head",
    [
        f"<style>{HARD_CSS}</style>",
        f'<style>{HARD_CSS}</style><style media="print">.x {{ color: gray; }}</style>'
        '<style data-premailer="ignore">.y { color: gray; }</style><style>.x { color: navy; }</style>',
    ],
)
def test_selectors_beyond_tags_and_classes_inline_as_premailer_does(head):
    expected, ours = both(f"<!doctype html><html><head>{head}</head><body>{HARD_BODY}</body></html>")
    assert 'style="' in expected
    assert ours == expected


def test_a_page_without_head_or_doctype_gets_premailer_s_head():
    expected, ours = both('<html><body><style>.x { color: red; }</style><p class="x">a</p></body></html>')
    assert "<head>" in expected
    assert ours == expected


def test_the_kept_merges_are_bounded(monkeypatch):
    monkeypatch.setattr(inliner, "_MERGED_MAX", 2)
    for n in range(5):
        page = f'<html><head><style>.x {{ width: {n}px; }}</style></head><body><p class="x">a</p></body></html>'
        assert f'width="{n}"' in inliner.Inliner(page, **OPTIONS).transform()
        assert len(inliner._MERGED) <= 2


def test_options_that_change_a_merge_are_not_answered_from_another_s_kept_merge():
    page = '<html><head><style>.x { color: unset; width: 3px; }</style></head><body><p class="x">a</p></body></html>'
    for remove_unset in (True, False, True):
        options = {**OPTIONS, "remove_unset_properties": remove_unset}
        expected = Premailer(page, **options).transform()
        assert inliner.Inliner(page, **options).transform() == expected
        assert ("color:unset" in expected) is not remove_unset
