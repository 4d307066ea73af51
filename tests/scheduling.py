"""Test helpers for the scheduler: a manual scheduler and a clock APScheduler believes in.

APScheduler reads the wall clock itself (`datetime.now` in three of its modules); `Clock.freeze`
replaces that, and the same clock is given to the core, so a test can say "the process was down from
07:00 to 10:00" without waiting. Run as a module, this is one scheduler process that starts, ticks
once at a given time and exits: the two-schedulers test starts two of them at once.
"""

from __future__ import annotations

import importlib
import logging
import sys
from datetime import datetime

from apscheduler.executors.debug import DebugExecutor
from apscheduler.schedulers.base import BaseScheduler

APSCHEDULER_CLOCK_MODULES = (
    "apscheduler.schedulers.base",
    "apscheduler.executors.base",
    "apscheduler.triggers.interval",
)


class ManualScheduler(BaseScheduler):
    """Runs due jobs only when told to (`tick`), in the calling thread."""

    def wakeup(self):
        pass

    def shutdown(self, wait=True):
        super().shutdown(wait)

    def _create_default_executor(self):
        return DebugExecutor()

    def tick(self):
        self._process_jobs()


class FrozenDatetime(datetime):
    """APScheduler's `datetime` while a Clock is frozen (module level, so triggers still pickle)."""

    clock: Clock | None = None

    @classmethod
    def now(cls, tz=None):
        moment = cls.clock.moment
        return moment.astimezone(tz) if tz else moment.replace(tzinfo=None)


class Clock:
    def __init__(self, moment: datetime):
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment

    def set(self, moment: datetime) -> None:
        self.moment = moment

    def freeze(self, setattr_=setattr) -> Clock:
        """Make APScheduler read this clock; pass monkeypatch.setattr in tests so it is undone."""
        setattr_(FrozenDatetime, "clock", self)
        for name in APSCHEDULER_CLOCK_MODULES:
            setattr_(importlib.import_module(name), "datetime", FrozenDatetime)
        return self


def main(start: str, tick: str) -> None:
    """One scheduler process: starts at `start`, ticks once at `tick` (ISO times), then stops."""
    from digest import schedule
    from digest.core import build_core

    logging.basicConfig(level=logging.INFO, format="%(process)d %(name)s: %(message)s")
    clock = Clock(datetime.fromisoformat(start)).freeze()
    core = build_core(clock=clock)
    scheduler = schedule.make_scheduler(core, ManualScheduler)
    scheduler.start()
    clock.set(datetime.fromisoformat(tick))
    scheduler.tick()
    scheduler.shutdown(wait=True)
    core.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
