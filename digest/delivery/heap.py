"""The garbage collector during a plan or a send.

A send makes a few thousand short-lived dicts and lists per batch (the request's personalizations), and
a plan a tuple per reader. Each of Python's full collections then walks every object the process holds,
most of them modules, SQLAlchemy's mappings and the settings, which live as long as the process and are
never garbage. Measured at 200,000 recipients on PostgreSQL, those walks took about a third of the time
of building the requests and of reading each batch's people.

`long_lived_frozen` moves whatever exists when the work starts out of the collector's sight
(`gc.freeze`) and gives it back when the work ends (`gc.unfreeze`), so the collections in between look at
the objects the work makes, and a long-running process (the scheduler) still collects what the work left
behind. Reentrant: a send that plans inside it thaws once, at the end of the outer one.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_depth = 0
_guard = threading.Lock()


@contextmanager
def long_lived_frozen() -> Iterator[None]:
    global _depth
    with _guard:
        _depth += 1
        if _depth == 1:
            gc.freeze()
    try:
        yield
    finally:
        with _guard:
            _depth -= 1
            if _depth == 0:
                gc.unfreeze()
