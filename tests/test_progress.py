"""Progress bars: on a terminal, import, export, gather and the send (in `digest send` and inside
`run --once`, from planning to the last batch) show one; on a pipe or a log file there is nothing of it.
The terminal is a real pseudo-terminal (the `pty` module) given to the process as its stderr."""

from __future__ import annotations

import csv
import os
import pty
import re
import select
import subprocess
import sys
import tempfile

from tests.cli_helpers import run_cli
from tests.conftest import ROOT

# A bar's last drawing before it is wiped: "importing ━━━━━ 300/300 ... 0:00:00".
BAR = re.compile(r"(importing|exporting|gathering|sending)\s+\S*━\S*\s+(\d+)/(\d+)")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def write_csv(path, rows: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name"])
        for i in range(rows):
            writer.writerow([f"reader{i}@example.org", f"Reader {i}"])


def on_a_terminal(args: list[str], env: dict, cwd) -> tuple[int, str, str]:
    """`digest ARGS` with a pseudo-terminal as its stderr: (exit code, stdout, what the terminal showed)."""
    # stdout in a file, not a pipe: a full pipe would block the process while we read the terminal.
    with tempfile.TemporaryFile() as stdout_file:
        main, secondary = pty.openpty()
        process = subprocess.Popen(
            [sys.executable, "-m", "digest.cli", *args],
            env={**env, "PYTHONPATH": str(ROOT), "COLUMNS": "160", "TERM": "xterm"},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout_file,
            stderr=secondary,
        )
        os.close(secondary)
        shown = bytearray()
        while True:  # read as it comes: a pseudo-terminal's buffer is small, and a full one blocks the writer
            ready, _, _ = select.select([main], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # EIO: the process closed its end
                    break
                if not chunk:
                    break
                shown += chunk
            elif process.poll() is not None:
                break
        os.close(main)
        process.wait(timeout=120)
        stdout_file.seek(0)
        stdout = stdout_file.read().decode()
    return process.returncode, stdout, ANSI.sub("", shown.decode(errors="replace"))


def bars(shown: str) -> dict[str, tuple[int, int]]:
    """Each bar's last count seen: what -> (done, total)."""
    return {what: (int(done), int(total)) for what, done, total in BAR.findall(shown)}


def test_import_and_export_show_a_bar_on_a_terminal_that_ends_at_every_row(cli_env, tmp_path):
    people = tmp_path / "people.csv"
    write_csv(people, 1200)
    code, stdout, shown = on_a_terminal(["subscribers", "import", str(people)], cli_env, tmp_path)
    assert code == 0, shown
    assert bars(shown)["importing"] == (1200, 1200), shown
    assert "1200 added" in stdout

    code, stdout, shown = on_a_terminal(["subscribers", "export"], cli_env, tmp_path)
    assert code == 0, shown
    assert bars(shown)["exporting"] == (1200, 1200), shown
    assert len(stdout.splitlines()) == 1201  # the CSV on stdout has no trace of the bar
    assert "━" not in stdout


def test_run_once_shows_the_gather_then_the_send_on_a_terminal(cli_env, tmp_path):
    assert run_cli(["subscribers", "import", ROOT / "examples/subscribers.csv"], cli_env, tmp_path).returncode == 0
    code, _stdout, shown = on_a_terminal(["run", "--once", "--week", "2026-W48"], cli_env, tmp_path)
    assert code == 0, shown
    seen = bars(shown)
    assert seen["gathering"] == (3, 3), shown
    assert seen["sending"] == (6, 6), shown
    assert shown.index("gathering") < shown.index("sending")


def test_without_a_terminal_there_is_no_bar_at_all(cli_env, tmp_path):
    people = tmp_path / "people.csv"
    write_csv(people, 300)
    imported = run_cli(["subscribers", "import", people], cli_env, tmp_path)
    assert imported.returncode == 0
    # Nothing on stderr but the notice of the store this first command created.
    assert [line for line in imported.stderr.splitlines() if "created a new, empty store" not in line] == []
    exported = run_cli(["subscribers", "export", tmp_path / "out.csv"], cli_env, tmp_path)
    assert exported.stderr.strip() == f"exported 300 subscribers to {tmp_path / 'out.csv'}"
    ran = run_cli(["run", "--once", "--week", "2026-W48"], cli_env, tmp_path)
    assert ran.returncode == 0, ran.stderr
    for quiet in (imported, exported, ran):
        assert "━" not in quiet.stderr + quiet.stdout
        assert not BAR.search(quiet.stderr)


def test_digest_send_shows_the_send_from_planning_to_the_last_batch(cli_env, tmp_path):
    assert run_cli(["subscribers", "import", ROOT / "examples/subscribers.csv"], cli_env, tmp_path).returncode == 0
    assert run_cli(["gather"], cli_env, tmp_path).returncode == 0
    assert run_cli(["build", "--week", "2026-W48"], cli_env, tmp_path).returncode == 0
    code, stdout, shown = on_a_terminal(["send", "--week", "2026-W48"], cli_env, tmp_path)
    assert code == 0, shown
    assert bars(shown)["sending"] == (6, 6), shown
    assert "sent 6" in stdout


def test_the_import_summary_counts_every_row_of_the_file_once(cli_env, tmp_path):
    people = tmp_path / "people.csv"
    people.write_text(
        "email,name\n"
        "a@example.org,A\n"
        "b@example.org,B\n"
        "A@example.org,A again\n"  # the same address: merged, not added twice
        "not-an-address,X\n"
        "c@example.org,C\n",
        encoding="utf-8",
    )
    assert run_cli(["subscribers", "add", "c@example.org"], cli_env, tmp_path).returncode == 0
    assert run_cli(["subscribers", "remove", "c@example.org"], cli_env, tmp_path).returncode == 0
    result = run_cli(["subscribers", "import", people], cli_env, tmp_path)
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    found = re.fullmatch(
        r"imported \S+, (\d+) rows: (\d+) added, (\d+) updated, (\d+) unchanged, (\d+) kept out "
        r"\(unsubscribed or suppressed\), (\d+) rejected",
        line,
    )
    assert found, line
    rows, added, updated, unchanged, kept_out, rejected = map(int, found.groups())
    assert rows == 5 == added + updated + unchanged + kept_out + rejected
    assert (added, kept_out, rejected) == (2, 1, 1)
