"""Who may send an issue at once, and which batches are in flight.

* PostgreSQL: any number of senders of one issue, on one machine or many (`digest send`, `--workers N`,
  the scheduler). Each holds a *shared* session-level advisory lock on the issue for the whole send and
  claims batches one at a time (`SELECT ... FOR UPDATE SKIP LOCKED`, then the compare-and-set of
  `digest.delivery.sender`). While a batch's request is in flight its sender also holds an advisory lock
  on that batch, so the others can tell a batch being sent now from one of unknown fate (a `submitting`
  batch whose lock nobody holds: its sender died or gave up on the answer). `--cancel` and `--mark-sent`
  take the issue's lock *exclusively*: refused while anyone sends it. Planning (and rendering the
  plan's segments) is serialised by a third lock, waited for: the first sender plans, the others find it
  planned.
* SQLite: one sender per issue, on one machine: an exclusive `flock` on a file beside the database.
  SQLite has one writer at a time, so a second sender would only queue behind the first.
* An in-memory store: a lock in this process.

Every lock dies with its holder (the server lets go when the connection closes; the kernel when the
process exits), so a crashed send never blocks `digest send --resume`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, Engine, text

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


class InFlight:
    """The batches this sender is sending now, as the issue's other senders see them. With one sender
    per issue (SQLite, memory) nobody else can be sending: every claim holds, nothing is elsewhere."""

    def hold(self, batch_id: int) -> bool:
        """Mark the batch as being sent by us; False when another sender is sending it."""
        return True

    def release(self, batch_id: int) -> None:
        """The batch's outcome is recorded (or it was left unknown): no longer in flight here."""

    def elsewhere(self, batch_id: int) -> bool:
        """True when another live sender has this batch in flight (a `submitting` batch that is not of
        unknown fate)."""
        return False


class _AdvisoryInFlight(InFlight):
    """Session-level advisory locks, one per batch, on the sender's lock connection: they outlive the
    claim's transaction and die with the connection, so a killed sender's batch shows as unknown."""

    def __init__(self, conn: Connection, batch_class: int) -> None:
        self._conn = conn
        self._class = batch_class

    def _call(self, function: str, batch_id: int) -> bool:
        got = self._conn.execute(text(f"SELECT {function}(:c, :k)"), {"c": self._class, "k": batch_id}).scalar()
        self._conn.commit()
        return bool(got)

    def hold(self, batch_id: int) -> bool:
        return self._call("pg_try_advisory_lock", batch_id)

    def release(self, batch_id: int) -> None:
        self._call("pg_advisory_unlock", batch_id)

    def elsewhere(self, batch_id: int) -> bool:
        if not self.hold(batch_id):
            return True
        self.release(batch_id)
        return False


def _lock_classes(conn: Connection) -> tuple[int, int, int]:
    """The advisory lock classes (issue, batch, plan) of this store. Advisory locks are per database but
    ids are per schema: the classes are made from the database and schema names, so stores in two schemas
    of one database never block each other."""
    row = conn.execute(
        text(
            "SELECT hashtext(s) & 2147483647, hashtext(s || '.batch') & 2147483647, "
            "hashtext(s || '.plan') & 2147483647 FROM (SELECT current_database() || '.' || current_schema() AS s) n"
        )
    ).one()
    conn.commit()
    return int(row[0]), int(row[1]), int(row[2])


@contextlib.contextmanager
def send_lock(engine: Engine, issue_id: int, label: str, *, shared: bool = False) -> Iterator[InFlight]:
    """Hold the issue for sending. `shared`: a sender that works beside others (PostgreSQL only; on
    SQLite every holder is exclusive). Exclusive: no one else sends the issue meanwhile (--cancel,
    --mark-sent). Yields what tells the batches in flight apart."""
    backend = engine.dialect.name
    if backend == "postgresql":
        with _advisory_lock(engine, issue_id, label, shared=shared) as in_flight:
            yield in_flight
        return
    database = engine.url.database
    if not database or database == ":memory:":
        with _memory_lock(str(engine.url), issue_id, label):
            yield InFlight()
        return
    with _file_lock(Path(f"{database}.send-{issue_id}.lock"), label):
        yield InFlight()


@contextlib.contextmanager
def plan_lock(engine: Engine, issue_id: int) -> Iterator[None]:
    """Only one process plans an issue (and renders its segments): the others wait here, then find it
    planned. On SQLite the send lock, exclusive, already ensures it."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        _, _, plan_class = _lock_classes(conn)
        conn.execute(text("SELECT pg_advisory_lock(:c, :k)"), {"c": plan_class, "k": issue_id})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:c, :k)"), {"c": plan_class, "k": issue_id})
            conn.commit()


@contextlib.contextmanager
def _advisory_lock(engine: Engine, issue_id: int, label: str, *, shared: bool) -> Iterator[InFlight]:
    # Autocommit: a batch's lock is taken and let go twice a batch, in one statement each (a transaction
    # would add two round trips to each); the pool puts the level back when the connection returns.
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        issue_class, batch_class, _ = _lock_classes(conn)
        mode = "_shared" if shared else ""
        got = conn.execute(
            text(f"SELECT pg_try_advisory_lock{mode}(:c, :k)"), {"c": issue_class, "k": issue_id}
        ).scalar()
        conn.commit()  # the lock is session-level: it outlives this transaction
        if not got:
            holder = conn.execute(
                text(
                    "SELECT coalesce(a.client_addr::text, 'local') || ' pid ' || l.pid FROM pg_locks l "
                    "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.classid = :c AND l.objid = :k AND l.granted LIMIT 1"
                ),
                {"c": issue_class, "k": issue_id},
            ).scalar()
            conn.commit()
            raise _refused(label, f"database session {holder or 'unknown'}")
        try:
            yield _AdvisoryInFlight(conn, batch_class)
        finally:
            conn.execute(text(f"SELECT pg_advisory_unlock{mode}(:c, :k)"), {"c": issue_class, "k": issue_id})
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
