"""Log lines: every process's carry their time (ISO 8601, UTC) and level; the services write one JSON
object per line with --log-format json, uvicorn's own lines too."""

from __future__ import annotations

import json
import logging
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx

from digest.logs import JsonFormatter, StderrHandler, TextFormatter, setup_logging
from tests.cli_helpers import run_cli
from tests.conftest import ROOT
from tests.fakes.feed_server import FeedServer, Reply
from tests.test_gather_pages_on_demand import newsletter_file, serve

ISO_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def record(message: str, *args: object, level: int = logging.WARNING, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("digest.test", level, __file__, 1, message, args, exc_info)


def test_a_text_line_carries_its_utc_time_level_and_logger():
    line = TextFormatter().format(record("batch %s failed", 3))
    assert re.fullmatch(ISO_UTC + r" WARNING digest\.test: batch 3 failed", line), line
    stamp = datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60


def test_a_json_line_is_one_object_with_time_level_logger_message_and_the_exception():
    try:
        raise ValueError("the feed is not XML")
    except ValueError:
        failed = record("source %r:\nfailed", "reporting", level=logging.ERROR, exc_info=sys.exc_info())
    line = JsonFormatter().format(failed)
    assert "\n" not in line
    entry = json.loads(line)
    assert re.fullmatch(ISO_UTC, entry["time"])
    assert (entry["level"], entry["logger"], entry["message"]) == (
        "ERROR",
        "digest.test",
        "source 'reporting':\nfailed",
    )
    assert "ValueError: the feed is not XML" in entry["exc_info"] and "Traceback" in entry["exc_info"]
    assert "exc_info" not in json.loads(JsonFormatter().format(record("fine")))


def test_setup_logging_replaces_its_own_handler_and_leaves_others_alone(capsys):
    root = logging.getLogger()
    before = list(root.handlers)
    others = [h for h in before if not isinstance(h, StderrHandler)]  # pytest's, and any a test left behind
    level = root.level
    try:
        setup_logging("text")
        setup_logging("json", logging.WARNING, digest_level=logging.INFO)
        ours = [h for h in root.handlers if isinstance(h, StderrHandler)]
        assert len(ours) == 1 and [h for h in root.handlers if h not in ours] == others
        logging.getLogger("digest.test").info("gathered %d sources", 3)
        logging.getLogger("other.library").info("not shown: below WARNING")
        lines = capsys.readouterr().err.splitlines()
        assert [json.loads(line)["message"] for line in lines] == ["gathered 3 sources"]
    finally:
        root.handlers[:] = before
        root.setLevel(level)
        logging.getLogger("digest").setLevel(logging.NOTSET)


def test_a_command_warning_on_stderr_has_its_time_and_level(tmp_path, cli_env):
    # A real `digest build` process whose article page fails: its one warning line carries time and level.
    with FeedServer() as server:
        serve(server, 2)
        server.routes["/page/1"] = Reply(404, b"gone")
        env = {**cli_env, "DIGEST_CONFIG": str(newsletter_file(tmp_path, server))}
        assert run_cli(["gather"], env, tmp_path).returncode == 0
        result = subprocess.run(
            [sys.executable, "-m", "digest.cli", "build", "--week", "2026-W48", "--out", str(tmp_path / "issue")],
            env={**env, "PYTHONPATH": str(ROOT)},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr
    assert re.search(
        ISO_UTC + r" WARNING digest\.gather\.ondemand: the page of article \d+ could not be fetched", result.stderr
    )


def json_lines(stderr: str) -> list[dict]:
    """Every line parsed as JSON: a line that is not one fails the test."""
    return [json.loads(line) for line in stderr.splitlines() if line.strip()]


def test_the_scheduler_logs_json_lines_and_gathers_at_start(cli_env, tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "digest.cli", "schedule", "--log-format", "json"],
        env={**cli_env, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines = []
    try:
        assert process.stderr is not None
        for line in process.stderr:  # the first gather comes at start, not an interval later
            lines.append(line)
            if "gather: end" in line:
                break
    finally:
        process.send_signal(signal.SIGTERM)
        _out, rest = process.communicate(timeout=60)
    entries = json_lines("".join(lines) + (rest or ""))
    messages = [e["message"] for e in entries]
    assert any(m.startswith("scheduler running (") for m in messages), messages
    assert any(m.startswith("gather: end: 3 sources ok, 0 failed, 15 new") for m in messages), messages
    assert any(m.startswith("received SIGTERM") for m in messages), messages
    for entry in entries:
        assert re.fullmatch(ISO_UTC, entry["time"]) and entry["level"] in {"INFO", "WARNING"}
        assert entry["logger"].startswith(("digest", "apscheduler"))
    assert process.returncode == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_digest_serve_logs_its_own_and_uvicorns_lines_as_json(cli_env, tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "digest.cli", "serve", "--port", str(port), "--log-format", "json"],
        env={**cli_env, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    entries = json_lines(stderr)
    loggers = {e["logger"] for e in entries}
    assert {"digest.serve", "uvicorn.error"} <= loggers, entries
    assert any(e["message"].startswith("Uvicorn running on http://127.0.0.1:") for e in entries), entries
    assert all(re.fullmatch(ISO_UTC, e["time"]) for e in entries)


def test_the_text_format_is_the_default_and_json_is_the_other_choice(tmp_path, cli_env):
    result = run_cli(["schedule", "--log-format", "xml", "--print-jobs"], cli_env, tmp_path)
    assert result.returncode == 2
    assert "--log-format" in result.stderr and "'xml'" in result.stderr
