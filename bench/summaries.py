"""Excerpt quality against Lead-3, teasers that do not stand alone, and summarize_text throughput.

    .venv/bin/python bench/summaries.py [PATH.jsonl]

PATH defaults to ../shared/data/summarization/cnndm_summeval_100.jsonl (relative to the
repository root); each line has "article" and "reference". Both rows are scored in the same run
with the same sentence splitter (syntok) and rouge-score with stemming. RLsum needs one sentence
per line, so summaries and references are split by syntok for it.

Three versions of each article are scored:

- as given;
- tokenized: the article put through a Penn Treebank style tokenizer written here ("the club . However
  , he said", `` and '' for quotation marks, "did n't"), the form research sets store;
- tokenized and lower-cased, as some of those sets are.

Lead-3 is always the first three sentences of the article as given (a tokenized, lower-cased text
cannot be split fairly by syntok), so the tokenized rows are measured against the same baseline.
Each row also says how many excerpts and teasers came out empty, and how many teasers
`teaser_problems` flags (a teaser that points back, or is a byline, dateline, caption or promo).
"""

from __future__ import annotations

import json
import re
import statistics
import sys
import time
from pathlib import Path

from rouge_score import rouge_scorer
from syntok import segmenter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digest.summarize import Summary, summarize_text  # noqa: E402
from digest.summarize.checks import teaser_problems  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "data" / "summarization" / "cnndm_summeval_100.jsonl"

_KEEP_STOP = re.compile(r"^(?:[A-Za-z]\.){2,}$|^(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Gov|Sen|Rep|Rev|Gen|Lt|Col|Prof|No)\.$")
_CONTRACTION = re.compile(r"^(.+?)(n't|'s|'re|'ve|'ll|'d|'m|’s)$", re.IGNORECASE)
_OPEN = {'"': "``", "“": "``", "‘": "`", "'": "`", "(": "-LRB-", "[": "-LSB-"}
_CLOSE = {'"': "''", "”": "''", "’": "'", "'": "'", ")": "-RRB-", "]": "-RSB-"}


def tokenize(text: str) -> str:
    """Penn Treebank style, as the tokenized research sets are: punctuation and clitics split off."""
    out: list[str] = []
    for word in text.split():
        lead: list[str] = []
        while len(word) > 1 and word[0] in _OPEN:
            lead.append(_OPEN[word[0]])
            word = word[1:]
        tail: list[str] = []
        while len(word) > 1 and (word[-1] in _CLOSE or word[-1] in ",;:!?" or word[-1] == "."):
            if word[-1] == "." and _KEEP_STOP.match(word):
                break
            ch = word[-1]
            tail.insert(0, _CLOSE.get(ch, ch))
            word = word[:-1]
        m = _CONTRACTION.match(word)
        core = [m.group(1), m.group(2).replace("’", "'")] if m else [word]
        out.extend(lead + core + tail)
    return " ".join(out)


def sentences(text: str) -> list[str]:
    return ["".join(t.spacing + t.value for t in sent).strip() for par in segmenter.analyze(text) for sent in par]


def lead3(article: str) -> str:
    return " ".join(sentences(article)[:3])


def score(scorer: rouge_scorer.RougeScorer, refs: list[str], outputs: list[str]) -> tuple[float, float, float]:
    r1, r2, rl = [], [], []
    for ref, out in zip(refs, outputs, strict=True):
        s = scorer.score(ref, "\n".join(sentences(out)))
        r1.append(s["rouge1"].fmeasure)
        r2.append(s["rouge2"].fmeasure)
        rl.append(s["rougeLsum"].fmeasure)
    return 100 * statistics.mean(r1), 100 * statistics.mean(r2), 100 * statistics.mean(rl)


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else DEFAULT
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=True)
    refs = ["\n".join(sentences(r["reference"])) for r in rows]
    articles = [r["article"] for r in rows]
    tokenized = [tokenize(a) for a in articles]
    variants = {"ours": articles, "ours-tok": tokenized, "ours-tok-lc": [t.lower() for t in tokenized]}

    start = time.process_time()
    made: dict[str, list[Summary]] = {"ours": [summarize_text(a) for a in articles]}
    elapsed = time.process_time() - start
    for name in ("ours-tok", "ours-tok-lc"):
        made[name] = [summarize_text(a) for a in variants[name]]

    print(f"{len(rows)} articles from {path}")
    print(f"{'system':<12} {'R1':>6} {'R2':>6} {'RLsum':>6} {'words':>6} {'empty':>6} {'flagged':>8}")
    base = [lead3(a) for a in articles]
    r1, r2, rl = score(scorer, refs, base)
    words = statistics.mean(len(o.split()) for o in base)
    print(f"{'lead-3':<12} {r1:6.2f} {r2:6.2f} {rl:6.2f} {words:6.1f} {'':>6} {'':>8}")
    for name, summaries in made.items():
        excerpts = [s.excerpt for s in summaries]
        r1, r2, rl = score(scorer, refs, excerpts)
        words = statistics.mean(len(o.split()) for o in excerpts)
        empty = sum(1 for s in summaries if not s.excerpt or not s.teaser)
        flagged = sum(1 for s in summaries if teaser_problems(s.teaser))
        print(f"{name:<12} {r1:6.2f} {r2:6.2f} {rl:6.2f} {words:6.1f} {empty:6d} {flagged:8d}")
    print(f"summarize_text: {len(rows) / elapsed:.0f} articles/s (CPU time, one core, articles as given)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
