"""The command line run in the test process leaves nothing behind: no open store connections, threads,
signal handlers or log handlers, so one test's run cannot change the next one's."""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading

from tests.cli_helpers import run_cli
from tests.conftest import ROOT, SAMPLE_WEEK


def process_state() -> dict[str, object]:
    return {
        "threads": sorted(t.name for t in threading.enumerate()),
        "open files": sorted(os.listdir("/proc/self/fd")),
        "SIGINT": signal.getsignal(signal.SIGINT),
        "SIGTERM": signal.getsignal(signal.SIGTERM),
        "log handlers": list(logging.getLogger().handlers),
    }


def test_commands_leave_no_connection_thread_or_handler_behind(cli_env, tmp_path):
    commands = [
        ["subscribers", "import", ROOT / "examples/subscribers.csv"],
        ["run", "--once", "--week", SAMPLE_WEEK],  # gathers, sends under its signal handlers
        ["send", "--week", SAMPLE_WEEK, "--dry-run"],
        ["sources", "--json"],
        ["subscribers", "show", "nobody@example.org"],  # an error ends it
    ]
    run_cli(["db", "upgrade"], cli_env, tmp_path)
    # Garbage from before is collected now; after each run nothing may wait for the collector: a store
    # engine left open would hold its connections until then.
    gc.collect()
    before = process_state()
    for args in commands:
        result = run_cli(args, cli_env, tmp_path)
        assert result.returncode == (2 if "nobody@example.org" in args else 0), result.stderr
        assert process_state() == before, args
