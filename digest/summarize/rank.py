"""Sentence centrality: TextRank (Mihalcea & Tarau, 2004) with a mild lead bias.

Similarity is TextRank's word overlap normalised by log lengths. The random walk restarts
with a probability that falls with position, because news puts what matters first; the walk
then only reorders sentences that are about equally central.
"""

from __future__ import annotations

import math
import re

import numpy as np

_STOP = frozenset(
    """a an the and or but if of to in on at by for with from as is are was were be been being
    it its this that these those he she they we you i his her their our your my me him them us
    not no so than then there here what which who whom whose when where why how all any some
    have has had do does did will would can could should may might must shall also just very
    more most about into over after before up down out said says say""".split()
)
_WORD = re.compile(r"\w+", re.UNICODE)


def terms(text: str) -> set[str]:
    """The content words of a text, crudely stemmed."""
    # Crude stemming (plural s) is enough for overlap between sentences of one article.
    out = set()
    for w in _WORD.findall(text.lower()):
        if w in _STOP or len(w) < 2:
            continue
        out.add(w[:-1] if len(w) > 3 and w.endswith("s") else w)
    return out


def scores(texts: list[str], *, damping: float = 0.85, iterations: int = 50) -> list[float]:
    n = len(texts)
    if n == 0:
        return []
    if n == 1:
        return [1.0]
    term_sets = [terms(t) for t in texts]
    vocab = {w: i for i, w in enumerate(sorted(set().union(*term_sets)))}
    m = np.zeros((n, max(1, len(vocab))), dtype=np.float32)
    for r, ts in enumerate(term_sets):
        for w in ts:
            m[r, vocab[w]] = 1.0
    overlap = m @ m.T
    logs = np.array([math.log(len(ts)) if len(ts) > 1 else 0.0 for ts in term_sets])
    norm = logs[:, None] + logs[None, :]
    sim = np.divide(overlap, norm, out=np.zeros_like(overlap), where=norm > 0)
    np.fill_diagonal(sim, 0.0)
    rows = sim.sum(axis=1, keepdims=True)
    trans = np.divide(sim, rows, out=np.zeros_like(sim), where=rows > 0)
    restart = 1.0 / np.sqrt(np.arange(1, n + 1))
    restart /= restart.sum()
    # Dangling sentences (no overlap with any other) send their weight to the restart vector.
    dangling = (rows[:, 0] == 0).astype(np.float64)
    p = restart.copy()
    for _ in range(iterations):
        nxt = damping * (p @ trans + (p @ dangling) * restart) + (1 - damping) * restart
        if np.abs(nxt - p).sum() < 1e-9:
            p = nxt
            break
        p = nxt
    return [float(x) for x in p]
