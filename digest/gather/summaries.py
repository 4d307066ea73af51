"""Summaries of stored articles whose summary is missing or older than their content.

Gathering summarizes new and changed articles on the way in; this catches the rest: articles stored
by a run that stopped before its summaries were written, or gathered before the summary_hash column.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import update

from digest.gather.cpu import Cpu, summarize_job
from digest.gather.store import pending_summaries, summary_values
from digest.models import Article
from digest.summarize import SummaryLimits

BATCH = 200


def summarize_pending(sessions, limits: SummaryLimits, *, cpu: Cpu | None = None) -> int:
    """Summarize every article that needs it; returns how many were summarized."""
    with sessions() as session:
        pending = pending_summaries(session)
    if not pending:
        return 0
    cpu = cpu or Cpu(0)
    chunks = [pending[i : i + BATCH] for i in range(0, len(pending), BATCH)]

    async def run_all():
        return await asyncio.gather(*(cpu.run(summarize_job, [c[2] or "" for c in chunk], limits) for chunk in chunks))

    results = asyncio.run(run_all())
    with sessions.begin() as session:
        for chunk, summaries in zip(chunks, results, strict=True):
            rows = [
                {"id": article_id, **summary_values(summary, content_hash, dek)}
                for (article_id, content_hash, _, dek), summary in zip(chunk, summaries, strict=True)
            ]
            session.execute(update(Article), rows)
    return len(pending)
