"""The issue in headless Chromium: no sideways scrolling on a phone, a 600-640px column on a desktop,
readable body text, and dark mode. Screenshots go to test-artifacts/ for a person to look at."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from digest.email import placeholders
from tests.conftest import ARTIFACTS
from tests.render_sample import render_sample


def grey_png(width: int = 16, height: int = 9) -> bytes:
    """A grey 16:9 PNG standing in for the article photos (the machine is offline)."""
    raw = b"".join(b"\x00" + b"\x80\x80\x80" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


GREY_PNG = grey_png()

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def preview_html() -> str:
    html = render_sample().html
    return placeholders.fill_preview(html, "https://news.example.org", "there", html_part=True)


def open_issue(browser, html: str, width: int, color_scheme: str = "light"):
    page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=color_scheme)

    def offline(route):
        if route.request.resource_type == "image":
            route.fulfill(status=200, content_type="image/png", body=GREY_PNG)
        else:
            route.abort()

    page.route("**/*", offline)
    page.set_content(html, wait_until="load")
    return page


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def test_at_375px_the_issue_never_scrolls_sideways(browser, preview_html):
    page = open_issue(browser, preview_html, 375)
    widths = page.evaluate("[document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]")
    assert max(widths[:2]) <= widths[2] == 375
    # Nothing sticks out on the right either (an element can overflow without widening the page).
    overflow = page.evaluate(
        """[...document.querySelectorAll('body *')]
             .filter(e => e.getClientRects().length && getComputedStyle(e).display !== 'none')
             .map(e => e.getBoundingClientRect().right).filter(r => r > window.innerWidth + 0.5).length"""
    )
    assert overflow == 0
    image_width = page.evaluate("document.querySelector('img').getBoundingClientRect().width")
    assert 300 <= image_width <= 375 - 2 * 24 + 1
    screenshot(page, "render-375.png")
    page.close()


def test_at_800px_the_content_column_is_600_to_640px_wide(browser, preview_html):
    page = open_issue(browser, preview_html, 800)
    widths = page.evaluate("[...document.querySelectorAll('.card')].map(e => e.getBoundingClientRect().width)")
    assert widths and all(600 <= w <= 640 for w in widths), widths
    left = page.evaluate("document.querySelector('.card').getBoundingClientRect().left")
    assert abs(left - (800 - widths[0]) / 2) <= 1  # centred
    screenshot(page, "render-800.png")
    page.close()


def test_body_text_renders_at_14px_or_more(browser, preview_html):
    page = open_issue(browser, preview_html, 800)
    too_small = page.evaluate(
        """(() => {
            const out = [];
            const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
            while (walker.nextNode()) {
                const text = walker.currentNode.textContent.trim();
                const el = walker.currentNode.parentElement;
                if (text.split(/\\s+/).length <= 6 || !el.getClientRects().length) continue;
                if (getComputedStyle(el).display === 'none' || el.closest('[style*="display:none"]')) continue;
                if (el.closest('.sr')) continue;  // for screen readers only: never seen
                const size = parseFloat(getComputedStyle(el).fontSize);
                if (size < 14) out.push([size, text.slice(0, 60)]);
            }
            return out;
        })()"""
    )
    assert too_small == []
    counted = page.evaluate("[...document.querySelectorAll('p.excerpt')].map(p => getComputedStyle(p).fontSize)")
    assert len(counted) >= 2 and set(counted) == {"16px"}  # the top story's, shown in full
    teasers = page.evaluate("[...document.querySelectorAll('p.teaser')].map(p => getComputedStyle(p).fontSize)")
    assert len(teasers) == 29 and set(teasers) == {"15px"}
    page.close()


def test_dark_mode_turns_the_page_dark_and_the_text_light(browser, preview_html):
    page = open_issue(browser, preview_html, 800, color_scheme="dark")
    card_bg, text_color = page.evaluate(
        """[getComputedStyle(document.querySelector('.card')).backgroundColor,
            getComputedStyle(document.querySelector('p.excerpt')).color]"""
    )

    def luminance(css: str) -> float:
        r, g, b = (int(x) for x in css[css.index("(") + 1 : css.index(")")].split(",")[:3])
        return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255

    assert luminance(card_bg) < 0.2 and luminance(text_color) > 0.8
    screenshot(page, "render-800-dark.png")
    page.close()
