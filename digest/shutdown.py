"""A process-wide request to stop after the work in hand (set on SIGTERM or SIGINT).

Long work checks it between units that must not be cut in half: the sender between batches, so a
batch in flight is finished and recorded before the process exits.
"""

from __future__ import annotations

import threading

requested = threading.Event()
