"""Benchmark: render a 30-article issue and print each stage's median time and the result's bytes.

    PYTHONPATH=. python bench/render.py [--runs 20] [--issue examples/issue-30.json]

Stages: Jinja2 (MJML template), mjml-python (compile), premailer (inline CSS), Jinja2 (text part).
Also prints what the HTML's bytes are made of, the figures the size budget is managed with.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from pathlib import Path

from digest.config import load_newsletter
from digest.content.compose import content_from_document
from digest.email.render import (
    GMAIL_CLIP_BYTES,
    compile_mjml,
    context,
    environment,
    inline_css,
    inline_styles,
    render_mjml,
    render_text,
)

ROOT = Path(__file__).resolve().parents[1]


def timed(fn, *args, **kwargs):
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--issue", type=Path, default=ROOT / "examples/issue-30.json")
    args = parser.parse_args()

    config = load_newsletter(ROOT / "examples" / "digest.toml")
    content = content_from_document(json.loads(args.issue.read_text()), config, source=args.issue)
    count = 1 + sum(len(s["articles"]) for s in content["sections"])
    ctx = context(
        config,
        content,
        subject="The Meridian Review",
        preheader=content["top"].get("teaser") or "",
        view_url="https://meridian-review.example.org/issues/2026-w48",
        slug="2026-w48",
    )
    env = environment(config)
    times: dict[str, list[float]] = {"jinja2": [], "mjml": [], "premailer": [], "text": []}
    for _ in range(args.runs + 1):  # the first run warms caches (template compilation) and is dropped
        mjml_source, t_jinja = timed(render_mjml, env, ctx)
        compiled, t_mjml = timed(compile_mjml, mjml_source)
        html, t_premailer = timed(inline_css, compiled, inline_styles(mjml_source))
        text, t_text = timed(render_text, env, ctx)
        for key, value in zip(times, (t_jinja, t_mjml, t_premailer, t_text), strict=True):
            times[key].append(value)
    for value_list in times.values():
        del value_list[0]

    print(f"issue: {args.issue.name}, {count} articles, {args.runs} runs (median milliseconds)")
    for stage, values in times.items():
        print(f"  {stage:10s} {statistics.median(values):8.1f} ms")
    total = sum(statistics.median(v) for v in times.values())
    print(f"  {'total':10s} {total:8.1f} ms")
    size = len(html.encode())
    print("bytes:")
    print(f"  MJML after Jinja2   {len(mjml_source.encode()):8d}")
    print(f"  HTML from MJML      {len(compiled.encode()):8d}")
    print(f"  HTML final          {size:8d}  ({size / 1000:.1f} KB; limit {GMAIL_CLIP_BYTES // 1000} KB)")
    print(f"  text part           {len(text.encode()):8d}")
    print("final HTML is made of:")
    for part, n in composition(html).items():
        print(f"  {part:30s} {n:8d}  {100 * n / size:5.1f}%")


if __name__ == "__main__":
    main()
