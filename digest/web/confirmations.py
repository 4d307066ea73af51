"""The confirmation sender of one `digest serve` process: a thread that sends the queued confirm mail.

Why here: sign-ups arrive only through the web app, so wherever sign-ups are taken a sender runs, with
no other service to deploy or forget. Every worker runs one; they share the queue through the store's
claims (subscribers.confirmation.send_due), so N workers never send a mail twice and a worker stuck on
a slow provider holds only the few rows it claimed. A sign-up wakes its own worker's sender at once;
otherwise each looks for due rows (retries, other workers' rows) every POLL_SECONDS.

On stop (SIGTERM), the mail in hand is finished and recorded; what is still queued waits for the next
start, in the store.
"""

from __future__ import annotations

import logging
import threading

from digest.core import Digest
from digest.jobs.audience import send_confirmations

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0
PAUSE_AFTER_ERROR_SECONDS = 10.0


class ConfirmationSender:
    def __init__(self, core: Digest, poll_seconds: float = POLL_SECONDS):
        self.core, self.poll_seconds = core, poll_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="confirmation-sender", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """A sign-up queued a mail: look now instead of at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                run = send_confirmations(self.core)
            except Exception:  # noqa: BLE001 - a store outage must not end the thread; it tries again
                log.exception("the confirmation sender could not read its queue; trying again shortly")
                self._stop.wait(PAUSE_AFTER_ERROR_SECONDS)
                continue
            if run.abandoned:
                log.warning(
                    "%d confirmation mail(s) were left mid-send by a stopped process: not sent again "
                    "(they may have gone out); those readers may sign up again",
                    run.abandoned,
                )
            if run.claimed and not self._stop.is_set():
                continue  # there may be more due at once
            self._wake.wait(self.poll_seconds)
