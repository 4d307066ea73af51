"""The store's upkeep: `digest db upgrade`, and whether the store is ready for this code (`/readyz`)."""

from __future__ import annotations

import logging

from digest.core import Digest
from digest.errors import DigestError
from digest.store import db

log = logging.getLogger(__name__)


def upgrade_store(core: Digest) -> str | None:
    """Apply the migrations; returns the store's revision."""
    db.upgrade(core.engine)
    return db.current_revision(core.engine)


def store_state(core: Digest) -> db.StoreState:
    """The store's revision against the code's head, changing nothing (raises DigestError when unreachable)."""
    return db.store_state(core.engine)


def readiness(core: Digest) -> str | None:
    """Why this process cannot serve requests that need the store now, or None when it can: the store is
    reachable and at the code's migration head. Said without the store's address (a probe's answer may be
    public); the full error goes to the log."""
    try:
        state = db.store_state(core.engine)
    except DigestError as exc:
        log.warning("not ready: %s", exc)
        return "the store cannot be reached"
    if state.revision is None:
        return "the store has no migrations applied: run digest db upgrade"
    if state.ahead:
        return f"the store is at revision {state.revision}, newer than this code ({state.head}): upgrade the digest"
    if not state.migrated:
        return f"the store is at revision {state.revision}, this code needs {state.head}: run digest db upgrade"
    return None
