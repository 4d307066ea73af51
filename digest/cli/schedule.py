"""`digest schedule`: the long-running scheduler, or with --print-jobs its next runs."""

from __future__ import annotations

import logging
from datetime import UTC
from typing import Annotated

import typer

from digest.cli.common import open_core
from digest.cli.output import out


def schedule(
    print_jobs: Annotated[
        bool, typer.Option("--print-jobs", help="Print each job's next three runs and exit.")
    ] = False,
) -> None:
    """The long-running scheduler: gather every hour, send the issue every week."""
    from digest import schedule as scheduling

    core = open_core()
    if print_jobs:
        tz = core.config.tz
        for job_id, what, times in scheduling.describe_jobs(core.config, core.now()):
            out.print(f"{job_id}: {what}")
            for moment in times:
                out.print(f"  {moment.astimezone(tz):%Y-%m-%d %H:%M %Z}  ({moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC)")
        return
    logging.getLogger("digest").setLevel(logging.INFO)
    scheduler = scheduling.make_scheduler(core)
    scheduling.install_signal_handlers(scheduler)
    out.print(f"scheduler running ({len(scheduler.get_jobs())} jobs); stop with Ctrl-C or SIGTERM")
    scheduler.start()
