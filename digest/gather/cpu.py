"""CPU-bound steps (parsing, page extraction, summaries) on worker processes, off the event loop.

Feedparser, trafilatura and the summarizer are pure-Python work that holds the GIL: in threads they
would stall the event loop that keeps a hundred downloads going. With `workers=0` everything runs
inline, which is what small gathers (and the tests of single functions) want. `Cpu.run` serves the
gather's event loop; `Cpu.map` serves synchronous code (digest.summaries, when many are due at once).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial

from digest.gather.feeds import parse_document
from digest.gather.normalize import ParsedArticle, ParsedFeed
from digest.gather.pages import parse_page
from digest.summarize import Summary, SummaryLimits, summarize_html


def parse_job(body: bytes, url: str, content_type: str | None) -> ParsedFeed:
    return parse_document(body, url=url, content_type=content_type)


def page_job(body: bytes, url: str) -> tuple[str | None, ParsedArticle | None]:
    return parse_page(body, url)


def summarize_job(fragments: list[str], limits: SummaryLimits) -> list[Summary]:
    return [summarize_html(fragment, limits=limits) for fragment in fragments]


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _context():
    """fork when this is the only thread: workers start in milliseconds with everything imported.
    With other threads about (a scheduler, a web server), a fork could copy a lock one of them holds,
    so workers come from a forkserver instead, which imports the parsers once."""
    if threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["digest.gather.cpu"])
    return context


class WorkerCrashed(Exception):
    pass


class Cpu:
    def __init__(self, workers: int):
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=_context())
        return self._pool

    def start(self) -> None:
        """Fork the workers now, while this process has one thread: forking later, beside the event
        loop's helper threads, could copy a lock some thread was holding."""
        if self.workers > 0:
            self._executor().submit(int).result()

    async def run(self, fn, *args):
        if self.workers <= 0:
            return fn(*args)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor(), partial(fn, *args))
        except BrokenProcessPool:
            raise self._crashed("parsing it") from None

    def map(self, fn, items) -> list:
        """`fn` of each item, in order, from synchronous code (no event loop needed)."""
        if self.workers <= 0:
            return [fn(item) for item in items]
        try:
            return list(self._executor().map(fn, items))
        except BrokenProcessPool:
            raise self._crashed("working on them") from None

    def _crashed(self, doing: str) -> WorkerCrashed:
        # A worker died (killed for memory, say); the pool is unusable, so the next call starts a fresh one.
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        return WorkerCrashed(f"the worker process {doing} died (out of memory?)")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
