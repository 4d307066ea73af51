"""The store's engine, sessions and migrations (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import CursorResult, Engine, MetaData, Result, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import ArgumentError, DisconnectionError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from digest.errors import ConfigError, DigestError

MIGRATIONS = Path(__file__).parent / "migrations"
PING_AFTER_IDLE_SECONDS = 5.0  # PostgreSQL: a pooled connection idle longer is pinged before use
BUSY_TIMEOUT_MS = 10_000  # SQLite: how long a writer waits for the write lock before "database is locked"
_migrate_lock = threading.Lock()


@dataclass(frozen=True)
class TextSelect:
    """A SELECT as SQL text and its bound parameters, for a caller to wrap in a statement of its own
    (`INSERT ... SELECT ... FROM (<sql>) r`): how one layer hands another a query that must run inside
    the database, over rows it does not own."""

    sql: str
    params: Mapping[str, Any] = field(default_factory=dict)


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE matched: Session.execute is typed as returning a Result, and what it returns
    for those statements is a CursorResult, which counts them."""
    return cast(CursorResult[Any], result).rowcount


def normalize_url(url: str) -> str:
    """psycopg 3 is our PostgreSQL driver; plain postgresql:// URLs would ask for psycopg2."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite store's URL; None for another database or SQLite in memory."""
    try:
        parsed = make_url(normalize_url(url))
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError("environment", "DIGEST_DATABASE_URL", f"{url!r} is not a database URL") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _private_file(Path(parsed.database))
        engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        engine = create_engine(parsed)
        _ping_after_idle(engine)
        return engine
    raise ConfigError(
        "environment",
        "DIGEST_DATABASE_URL",
        f"{parsed.get_backend_name()!r} is not supported; use sqlite or postgresql",
    )


def _ping_after_idle(engine: Engine) -> None:
    """A pooled connection is pinged before use only when it sat idle in the pool for PING_AFTER_IDLE_SECONDS.

    A connection dies while idle (the server restarted, a proxy's idle timeout): those are found and
    replaced here, before the caller sees them. SQLAlchemy's pool_pre_ping would ping on every checkout,
    a round trip per transaction that costs the web's hot requests (a one-click unsubscribe is one
    statement) a third of their time. A connection that dies in use raises as it would anyway: the
    web retries it (digest.web.busy), and SQLAlchemy drops every connection older than that one."""

    @event.listens_for(engine, "checkin")
    def idle_from(_dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def ping_if_idle(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, _proxy: object) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
            dbapi_connection.rollback()
        except Exception as exc:  # noqa: BLE001 - whatever the driver raises, the connection is unusable
            raise DisconnectionError(f"a pooled connection was dead after idling: {exc}") from exc


def _private_file(path: Path) -> None:
    """The SQLite store holds every subscriber's address: its folder and file are the owner's alone.

    Created here 0700/0600 before SQLite opens it (SQLite gives its -wal and -shm files the store's
    mode); a store that exists already keeps the mode its owner gave it.
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    except OSError as exc:
        raise ConfigError(
            "environment", "DIGEST_DATABASE_URL", f"cannot create the store {path}: {exc.strerror or exc}"
        ) from None


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL lets the web app read while a send writes; busy_timeout waits out short write locks. Every
    # writer commits in short transactions (an import in batches), so a lock held longer than this is
    # an outage: the web answers 503 with Retry-After then rather than keep a mail client waiting.
    cursor.execute("PRAGMA journal_mode=WAL")
    # synchronous stays FULL (SQLite's default): a commit that returned is on disk. NORMAL would let a
    # power cut undo a batch's claim (and the batch go out again) or an unsubscribe already answered.
    # Only writes whose loss is harmless relax it for themselves: a send's outcome record (lost, the
    # batch stays of unknown fate, never re-sent) and an import's chunks (running the file again is safe).
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(engine: Engine, metadata: MetaData | None = None) -> AlembicConfig:
    """Migrations run without `metadata`; autogenerate needs it complete (the caller imports every model)."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    cfg.attributes["metadata"] = metadata
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to `revision`; safe to call on every start."""
    with _migrate_lock:
        try:
            command.upgrade(alembic_config(engine), revision)
        except OperationalError as exc:
            raise unreachable(engine, exc) from None


def unreachable(engine: Engine, exc: OperationalError) -> DigestError:
    """The error for a store that cannot be connected to: where (without the password) and why."""
    lines = str(exc.orig).strip().splitlines() or [type(exc.orig).__name__]
    return DigestError(
        f"cannot reach the store at {engine.url.render_as_string(hide_password=True)}: {lines[0]}; "
        "check DIGEST_DATABASE_URL"
    )


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def head_revision() -> str | None:
    """The newest migration this code carries: a store at any other revision is not ready for it."""
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def known_revision(revision: str) -> bool:
    """Whether this code carries the migration `revision` (a store migrated by a newer release is not)."""
    try:
        return ScriptDirectory(str(MIGRATIONS)).get_revision(revision) is not None
    except CommandError:
        return False


@dataclass(frozen=True)
class StoreState:
    """What a look at the store found: its revision, against the code's head."""

    revision: str | None  # None: no migration was ever applied
    head: str | None
    ahead: bool = False  # the store was migrated by a newer release than this code

    @property
    def migrated(self) -> bool:
        return self.revision is not None and self.revision == self.head


def store_state(engine: Engine) -> StoreState:
    """Connect and read the store's revision, changing nothing; an unreachable store raises DigestError."""
    try:
        revision = current_revision(engine)
    except OperationalError as exc:
        raise unreachable(engine, exc) from None
    return StoreState(revision, head_revision(), ahead=revision is not None and not known_revision(revision))
