"""Excerpt quality against Lead-3, and summarize_text throughput.

    .venv/bin/python bench/summaries.py [PATH.jsonl]

PATH defaults to ../shared/data/summarization/cnndm_summeval_100.jsonl (relative to the
repository root); each line has "article" and "reference". Both rows are scored in the same run
with the same sentence splitter (syntok) and rouge-score with stemming. RLsum needs one sentence
per line, so summaries and references are split by syntok for it.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from rouge_score import rouge_scorer
from syntok import segmenter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digest.summarize import summarize_text  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "data" / "summarization" / "cnndm_summeval_100.jsonl"


def sentences(text: str) -> list[str]:
    return ["".join(t.spacing + t.value for t in sent).strip() for par in segmenter.analyze(text) for sent in par]


def lead3(article: str) -> str:
    return " ".join(sentences(article)[:3])


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else DEFAULT
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=True)

    start = time.process_time()
    ours = [summarize_text(r["article"]).excerpt for r in rows]
    elapsed = time.process_time() - start
    systems = {"lead-3": [lead3(r["article"]) for r in rows], "ours": ours}

    print(f"{len(rows)} articles from {path}")
    print(f"{'system':<8} {'R1':>6} {'R2':>6} {'RLsum':>6} {'words':>6}")
    for name, outputs in systems.items():
        r1, r2, rl = [], [], []
        for row, out in zip(rows, outputs, strict=True):
            ref = "\n".join(sentences(row["reference"]))
            s = scorer.score(ref, "\n".join(sentences(out)))
            r1.append(s["rouge1"].fmeasure)
            r2.append(s["rouge2"].fmeasure)
            rl.append(s["rougeLsum"].fmeasure)
        words = statistics.mean(len(o.split()) for o in outputs)
        print(
            f"{name:<8} {100 * statistics.mean(r1):6.2f} {100 * statistics.mean(r2):6.2f} "
            f"{100 * statistics.mean(rl):6.2f} {words:6.1f}"
        )
    print(f"summarize_text: {len(rows) / elapsed:.0f} articles/s (CPU time, one core)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
