"""One send of an issue at a time: a second `digest send` of the same issue is refused while the
first runs, on this machine or (PostgreSQL) another.

Both locks die with their holder, so a crashed send never blocks `digest send --resume`:
* PostgreSQL: a session-level advisory lock held on a connection of its own for the whole send;
  the server lets go when the connection closes, however the process ended.
* SQLite: an exclusive `flock` on a file beside the database; the kernel lets go when the process
  exits. (SQLite is one machine's store, so one machine's lock is enough.)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, text

from digest.errors import DeliveryError

_memory_locks: dict[tuple[str, int], threading.Lock] = {}
_memory_guard = threading.Lock()


class SendInProgress(DeliveryError):
    pass


def _refused(label: str, holder: str) -> SendInProgress:
    return SendInProgress(
        f"issue {label} is being sent by another process ({holder}); wait for it to finish. "
        "A send that died lets go of its lock by itself: then run `digest send --resume`"
    )


@contextlib.contextmanager
def send_lock(engine: Engine, issue_id: int, label: str) -> Iterator[None]:
    backend = engine.dialect.name
    if backend == "postgresql":
        with _advisory_lock(engine, issue_id, label):
            yield
        return
    database = engine.url.database
    if not database or database == ":memory:":
        with _memory_lock(str(engine.url), issue_id, label):
            yield
        return
    with _file_lock(Path(f"{database}.send-{issue_id}.lock"), label):
        yield


@contextlib.contextmanager
def _advisory_lock(engine: Engine, issue_id: int, label: str) -> Iterator[None]:
    conn = engine.connect()
    try:
        # Advisory locks are per database, but issue ids are per schema: the lock's class is made from
        # the database and schema names, so stores in two schemas of one database never block each other.
        store_class = conn.execute(
            text("SELECT hashtext(current_database() || '.' || current_schema()) & 2147483647")
        ).scalar()
        got = conn.execute(text("SELECT pg_try_advisory_lock(:c, :k)"), {"c": store_class, "k": issue_id}).scalar()
        conn.commit()  # the lock is session-level: it outlives this transaction
        if not got:
            holder = conn.execute(
                text(
                    "SELECT coalesce(a.client_addr::text, 'local') || ' pid ' || l.pid FROM pg_locks l "
                    "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.classid = :c AND l.objid = :k AND l.granted LIMIT 1"
                ),
                {"c": store_class, "k": issue_id},
            ).scalar()
            conn.commit()
            raise _refused(label, f"database session {holder or 'unknown'}")
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:c, :k)"), {"c": store_class, "k": issue_id})
            conn.commit()
    finally:
        conn.close()


@contextlib.contextmanager
def _file_lock(path: Path, label: str) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown"
            raise _refused(label, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _memory_lock(url: str, issue_id: int, label: str) -> Iterator[None]:
    with _memory_guard:
        lock = _memory_locks.setdefault((url, issue_id), threading.Lock())
    if not lock.acquire(blocking=False):
        raise _refused(label, "this process")
    try:
        yield
    finally:
        lock.release()
