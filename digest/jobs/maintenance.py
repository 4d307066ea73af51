"""The store's upkeep: `digest db upgrade`."""

from __future__ import annotations

from digest.core import Digest
from digest.store import db


def upgrade_store(core: Digest) -> str | None:
    """Apply the migrations; returns the store's revision."""
    db.upgrade(core.engine)
    return db.current_revision(core.engine)
