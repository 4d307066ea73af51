"""A pool of worker processes for CPU-bound steps (parsing, page extraction, summaries), off the event loop.

Feedparser, trafilatura and the summarizer are pure-Python work that holds the GIL: in threads they
would stall the event loop that keeps a hundred downloads going. With `workers=0` everything runs
inline, which is what small gathers (and the tests of single functions) want. `Cpu.run` serves the
gather's event loop; `Cpu.map` serves synchronous code (digest.content.summaries, when many are due at once).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from multiprocessing.context import BaseContext
from typing import TypeVar, TypeVarTuple

T = TypeVar("T")
Item = TypeVar("Item")
Args = TypeVarTuple("Args")


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _context(preload: list[str]) -> BaseContext:
    """fork when this is the only thread: workers start in milliseconds with everything imported.
    With other threads about (a scheduler, a web server), a fork could copy a lock one of them holds,
    so workers come from a forkserver instead, which imports the `preload` modules (the jobs' own) once."""
    if threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(preload)
    return context


class WorkerCrashed(Exception):
    pass


class Cpu:
    """`workers` processes (0: run inline); `preload` names the modules whose functions they run."""

    def __init__(self, workers: int, preload: list[str] | None = None):
        self.workers = workers
        self.preload = preload or []
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=_context(self.preload))
        return self._pool

    def start(self) -> None:
        """Fork the workers now, while this process has one thread: forking later, beside the event
        loop's helper threads, could copy a lock some thread was holding."""
        if self.workers > 0:
            self._executor().submit(int).result()

    async def run(self, fn: Callable[[*Args], T], *args: *Args) -> T:
        if self.workers <= 0:
            return fn(*args)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor(), partial(fn, *args))
        except BrokenProcessPool:
            raise self._crashed("parsing it") from None

    def map(self, fn: Callable[[Item], T], items: Iterable[Item]) -> list[T]:
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
