"""Benchmark: render the 30-article issue as the product does and print its cost beside Node's MJML.

    PYTHONPATH=. python bench/render.py [--runs 20] [--issue examples/issue-30.json] [--no-browser]

Prints:
- `render_issue` as the product calls it: the first call in this process (templates compiled, cold),
  then the median of `--runs` calls (steady);
- the official MJML compile alone (Node, tools/mjml; `make mjml-validator` installs it), timed inside
  Node over the same MJML in the same run, its first call and its steady state, and the ratios of
  render_issue to it, steady to steady (target <= 1x) and first call to first call;
- each stage's median (Jinja2 MJML template, mjml-python, premailer, Jinja2 text part);
- the HTML's size (target <= 60 KB; Gmail clips at 102 KB) and what its bytes are made of, the text
  part's size, and the page's height at 375 px in Chromium (target <= 9,000 px; /usr/bin/chromium);
  all of it with the newsletter file's layouts (by default: the top story in full, the rest compact);
- the HTML's size and the height at 375 px with each layout given to every section, "cards" (every
  article in full) being how every issue looked before layouts: the baseline.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from digest.config import LAYOUTS, load_newsletter
from digest.content.compose import content_from_document
from digest.content.subject import subject_for
from digest.email import placeholders
from digest.email.render import (
    GMAIL_CLIP_BYTES,
    compile_mjml,
    context,
    environment,
    inline_css,
    inline_styles,
    render_issue,
    render_mjml,
    render_text,
)

ROOT = Path(__file__).resolve().parents[1]
NODE_COMPILE = ROOT / "tools/mjml/compile-times.js"
NODE_MJML = ROOT / "tools/mjml/node_modules/mjml"
CHROMIUM = Path("/usr/bin/chromium")
TARGET_KB = 60
TARGET_HEIGHT_375 = 9000


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, (time.perf_counter() - start) * 1000


def composition(html: str) -> dict[str, int]:
    outlook = sum(len(m.encode()) for m in re.findall(r"<!--\[if.*?<!\[endif\]-->", html, re.S))
    rest = re.sub(r"<!--\[if.*?<!\[endif\]-->", "", html, flags=re.S)
    styles = sum(len(m.encode()) for m in re.findall(r"<style.*?</style>", rest, re.S))
    body = re.sub(r"<style.*?</style>", "", rest, flags=re.S)
    inline = sum(len(m[0].encode()) for m in re.finditer(r'\sstyle="[^"]*"', body))
    links = sum(len(m[0].encode()) for m in re.finditer(r'\s(?:href|src)="[^"]*"', body))
    text = len(re.sub(r"<[^>]+>", "", body).encode())
    total = len(html.encode())
    return {
        "style attributes": inline,
        "href and src": links,
        "text (with whitespace)": text,
        "<style> in head": styles,
        "Outlook conditional comments": outlook,
        "other markup": total - inline - links - text - styles - outlook,
    }


def node_compile_ms(mjml_source: str, runs: int) -> tuple[float, list[float]] | str:
    """Node's official MJML compile of the same source: (its first call, then each warm run) in ms, or why
    it was not measured."""
    node = shutil.which("node")
    if node is None or not NODE_MJML.exists():
        return "not measured: needs node and tools/mjml/node_modules (make mjml-validator)"
    with tempfile.NamedTemporaryFile("w", suffix=".mjml", encoding="utf-8") as source:
        source.write(mjml_source)
        source.flush()
        done = subprocess.run(  # noqa: S603 (our own script, a path we built)
            [node, str(NODE_COMPILE), source.name, str(runs), "3"], capture_output=True, text=True, timeout=600
        )
    if done.returncode != 0:
        return f"not measured: node failed: {done.stderr.strip()[:300]}"
    figures = json.loads(done.stdout)
    return float(figures["first"]), [float(ms) for ms in figures["ms"]]


def height_at_375(html: str) -> float | str:
    """The page's height in Chromium at 375 px wide, images standing in as grey 16:9 PNGs."""
    if not CHROMIUM.exists():
        return f"not measured: {CHROMIUM} is missing"
    from playwright.sync_api import sync_playwright

    from tests.test_render_browser import GREY_PNG

    with sync_playwright() as p:
        args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=args)
        page = browser.new_page(viewport={"width": 375, "height": 800})

        def offline(route: Any) -> None:
            if route.request.resource_type == "image":
                route.fulfill(status=200, content_type="image/png", body=GREY_PNG)
            else:
                route.abort()

        page.route("**/*", offline)
        page.set_content(html, wait_until="load")
        height = float(page.evaluate("document.documentElement.scrollHeight"))
        browser.close()
    return height


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--issue", type=Path, default=ROOT / "examples/issue-30.json")
    parser.add_argument("--no-browser", action="store_true", help="skip the page height in Chromium")
    args = parser.parse_args()

    config = load_newsletter(ROOT / "examples" / "digest.toml")
    content = content_from_document(json.loads(args.issue.read_text()), config, source=args.issue)
    count = 1 + sum(len(s["articles"]) for s in content["sections"])
    values: dict[str, Any] = {
        "subject": subject_for(config, content),
        "preheader": content["top"].get("teaser") or "",
        "view_url": "https://meridian-review.example.org/issues/2026-w48",
        "slug": "2026-w48",
    }

    # As the product calls it: a fresh process's first render, then the steady state.
    rendered, cold = timed(render_issue, config, content, **values)
    steady = [timed(render_issue, config, content, **values)[1] for _ in range(args.runs)]
    steady_ms = statistics.median(steady)

    ctx = context(config, content, **values)
    env = environment(config)
    times: dict[str, list[float]] = {"jinja2": [], "mjml": [], "premailer": [], "text": []}
    for _ in range(args.runs):
        mjml_source, t_jinja = timed(render_mjml, env, ctx)
        compiled, t_mjml = timed(compile_mjml, mjml_source)
        html, t_premailer = timed(inline_css, compiled, inline_styles(mjml_source))
        text, t_text = timed(render_text, env, ctx)
        for key, value in zip(times, (t_jinja, t_mjml, t_premailer, t_text), strict=True):
            times[key].append(value)
    html, text, mjml_source = rendered.html, rendered.text, rendered.mjml

    print(f"issue: {args.issue.name}, {count} articles, {args.runs} runs (median milliseconds)")
    print("render_issue, as the product calls it:")
    print(f"  first call (cold)   {cold:8.1f} ms")
    print(f"  steady              {steady_ms:8.1f} ms  (min {min(steady):.1f}, max {max(steady):.1f})")
    node = node_compile_ms(mjml_source, args.runs)
    if isinstance(node, str):
        print(f"Node's MJML compile alone: {node}")
    else:
        node_first, node_runs = node
        node_ms = statistics.median(node_runs)
        print("Node's MJML compile alone (official mjml 4, same MJML, timed inside Node):")
        print(f"  first call (cold)   {node_first:8.1f} ms")
        print(f"  steady              {node_ms:8.1f} ms")
        print(f"  ratio render_issue / Node compile, steady: {steady_ms / node_ms:.2f}x  (target <= 1x)")
        print(f"  ratio render_issue / Node compile, cold:   {cold / node_first:.2f}x")
    print("stages (warm environment):")
    for stage, value_list in times.items():
        print(f"  {stage:10s} {statistics.median(value_list):8.1f} ms")
    print(f"  {'sum':10s} {sum(statistics.median(v) for v in times.values()):8.1f} ms")

    size = len(html.encode())
    print("bytes:")
    print(f"  MJML after Jinja2   {len(mjml_source.encode()):8d}")
    print(f"  HTML from MJML      {len(compile_mjml(mjml_source).encode()):8d}")
    print(
        f"  HTML final          {size:8d}  ({size / 1024:.1f} KB; target <= {TARGET_KB} KB, "
        f"Gmail clips at {GMAIL_CLIP_BYTES // 1024} KB)"
    )
    print(f"  text part           {len(text.encode()):8d}")
    print("final HTML is made of:")
    for part, n in composition(html).items():
        print(f"  {part:30s} {n:8d}  {100 * n / size:5.1f}%")
    if not args.no_browser:
        filled = placeholders.fill_preview(html, "https://meridian-review.example.org", "there", html_part=True)
        height = height_at_375(filled)
        shown = height if isinstance(height, str) else f"{height:.0f} px (target <= {TARGET_HEIGHT_375:,} px)"
        print(f"page height at 375 px: {shown}")
    print(f"each layout over every section (the file's default: {config.issue.layout}):")
    for layout in LAYOUTS:
        laid_out = config.model_copy(update={"issue": config.issue.model_copy(update={"layout": layout})})
        each = render_issue(laid_out, content, **values).html
        height_text = ""
        if not args.no_browser:
            each_height = height_at_375(
                placeholders.fill_preview(each, "https://meridian-review.example.org", "there", html_part=True)
            )
            height_text = each_height if isinstance(each_height, str) else f"{each_height:8.0f} px at 375 px"
        print(f"  {layout:10s} {len(each.encode()) / 1024:6.1f} KB  {height_text}")


if __name__ == "__main__":
    main()
