"""Main-text extraction quality: ours against plain trafilatura.extract(), in the same run.

    .venv/bin/python bench/extraction.py [DIR]

DIR defaults to ../shared/data/extraction/ (relative to the repository root): evaldata.json maps
each page's URL to its gzipped HTML, its language and hand-written snippets that the main text
contains ("with") and does not ("without"). Scoring as trafilatura's own evaluation: a "with"
snippet found in the whitespace-normalised output is a true positive, a "without" snippet found a
false positive; counts are summed over the pages of a group, then P, R and F1.

Rows:
  ours        extract_article(page_bytes, url).text: the extraction digest excerpt
              and gathering run, the recovered lead included (the whole main text)
  ours body   the same extraction without the lead (kept apart: it repeats the description)
  excerpt     summarize_page(page_bytes).text: the "text" digest excerpt --json prints, i.e. the
              body after the summarizer's clean step (captions, bylines, promos left out)
  trafilatura trafilatura.extract(page_bytes) with its defaults

"boilerplate" counts pages whose output is_boilerplate() (empty, the bare title, or furniture
only); "nothing" counts pages where none of the "with" snippets was found. Speed is pages per second of
this process's CPU time (the machine is shared; wall time would measure the neighbours). The set is also split
into halves by position (even, odd) to see that a change holds on both.
"""

from __future__ import annotations

import gzip
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digest.summarize import summarize_page  # noqa: E402
from digest.summarize.extract import extract_article, is_boilerplate  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "data" / "extraction"


def norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def score(outputs: dict[str, str], pages: dict[str, Any]) -> tuple[float, float, float, int]:
    tp = fp = fn = nothing = 0
    for url, item in pages.items():
        out = norm(outputs[url])
        found = sum(norm(s) in out for s in item["with"])
        tp, fn = tp + found, fn + len(item["with"]) - found
        fp += sum(norm(s) in out for s in item["without"])
        nothing += found == 0
    p, r = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0), nothing


def timed(pages: dict[str, bytes], extract: Callable[[bytes, str], Any]) -> tuple[dict[str, Any], float]:
    results: dict[str, Any] = {}
    start = time.process_time()
    for url, raw in pages.items():
        try:
            results[url] = extract(raw, url)
        except Exception:  # noqa: BLE001 - an extractor's error finds nothing, as upstream scores it
            results[url] = None
    return results, time.process_time() - start


def main(argv: list[str]) -> int:
    folder = Path(argv[1]) if len(argv) > 1 else DEFAULT
    data: dict[str, Any] = json.loads((folder / "evaldata.json").read_text(encoding="utf-8"))
    raw = {url: gzip.decompress((folder / item["file"]).read_bytes()) for url, item in data.items()}
    import trafilatura

    first = next(iter(raw.items()))
    extract_article(first[1], first[0]), trafilatura.extract(first[1])  # imports and caches: not timed
    found, ours_seconds = timed(raw, lambda page, url: extract_article(page, url))
    summaries, summary_seconds = timed(raw, lambda page, url: summarize_page(page))
    plain, plain_seconds = timed(raw, lambda page, url: trafilatura.extract(page))
    rows = {
        "ours": {u: (e.text, e.title) if e else ("", None) for u, e in found.items()},
        "ours body": {u: ("\n\n".join(e.paragraphs), e.title) if e else ("", None) for u, e in found.items()},
        "excerpt": {u: (s.text, s.title) if s else ("", None) for u, s in summaries.items()},
        "trafilatura": {u: (t or "", None) for u, t in plain.items()},
    }
    seconds = {"ours": ours_seconds, "excerpt": summary_seconds, "trafilatura": plain_seconds}
    items = list(data.items())
    groups = {
        "English": {u: i for u, i in items if i["lang"] == "en"},
        "other": {u: i for u, i in items if i["lang"] != "en"},
        "all": data,
        "even half": dict(items[0::2]),
        "odd half": dict(items[1::2]),
    }

    print(f"{len(data)} pages from {folder}")
    print(f"{'pages':<16} {'system':<12} {'P':>6} {'R':>6} {'F1':>6} {'nothing':>8} {'boilerplate':>12} {'pages/s':>8}")
    for group, pages in groups.items():
        for name, outputs in rows.items():
            texts = {u: text for u, (text, _) in outputs.items()}
            p, r, f1, nothing = score(texts, pages)
            boilerplate = sum(is_boilerplate(*outputs[u]) for u in pages)
            speed = f"{len(data) / seconds[name]:8.1f}" if group == "all" and name in seconds else ""
            label = f"{group} ({len(pages)})"
            print(f"{label:<16} {name:<12} {p:6.3f} {r:6.3f} {f1:6.3f} {nothing:8d} {boilerplate:12d} {speed:>8}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
