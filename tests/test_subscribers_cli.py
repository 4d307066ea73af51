"""`digest subscribers …` run as the command line (in this process) against SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json

from tests.cli_helpers import run_cli


def digest(cli_env, *args, check=True):
    result = run_cli(list(args), cli_env)
    if check and result.returncode != 0:
        raise AssertionError(f"digest {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


def test_add_list_count_show_and_remove(cli_env):
    assert "added" in digest(cli_env, "subscribers", "add", "Kim@Example.org", "--name", "Kim Park").stdout
    digest(cli_env, "subscribers", "add", "lee@example.org")
    [kim, lee] = [json.loads(line) for line in digest(cli_env, "subscribers", "list", "--json").stdout.splitlines()]
    assert (kim["email"], kim["status"], kim["consent_source"]) == ("kim@example.org", "active", "import")
    assert json.loads(digest(cli_env, "subscribers", "count", "--json").stdout)["active"] == 2

    digest(cli_env, "subscribers", "remove", "kim@example.org")
    shown = json.loads(digest(cli_env, "subscribers", "show", "KIM@example.org", "--json").stdout)
    assert shown["status"] == "unsubscribed"
    assert [(h["from"], h["to"]) for h in shown["history"]] == [(None, "active"), ("active", "unsubscribed")]
    # Unsubscribes win: adding them again needs --force-consent.
    again = digest(cli_env, "subscribers", "add", "kim@example.org", check=False)
    assert again.returncode == 2 and "--force-consent" in again.stderr
    assert "reactivated" in digest(cli_env, "subscribers", "add", "kim@example.org", "--force-consent").stdout

    digest(cli_env, "subscribers", "remove", "lee@example.org", "--erase")
    missing = digest(cli_env, "subscribers", "show", "lee@example.org", check=False)
    assert missing.returncode == 2 and "no subscriber lee@example.org" in missing.stderr
    counts = json.loads(digest(cli_env, "subscribers", "count", "--json").stdout)
    assert counts["total"] == 1


def test_import_reports_rejected_rows_and_export_round_trips(cli_env, tmp_path):
    people = tmp_path / "people.csv"
    people.write_text("email,name\nmo@example.org,Mo\nbroken,Nope\nMO@example.org,Mo Chen\nnew@example.org,\n")
    digest(cli_env, "subscribers", "add", "gone@example.org")
    digest(cli_env, "subscribers", "remove", "gone@example.org", "--erase")
    with people.open("a") as handle:
        handle.write("gone@example.org,Gone\n")
    result = digest(cli_env, "subscribers", "import", str(people))
    assert f"{people}:3: skipped 'broken'" in result.stderr
    assert "2 added, 1 updated, 0 unchanged, 1 kept out" in result.stdout and "1 rejected" in result.stdout

    exported = tmp_path / "out.csv"
    digest(cli_env, "subscribers", "export", str(exported))
    rows = list(csv.DictReader(exported.open()))
    assert [(r["email"], r["name"], r["status"]) for r in rows] == [
        ("mo@example.org", "Mo Chen", "active"),
        ("new@example.org", "", "active"),
    ]
    to_stdout = digest(cli_env, "subscribers", "export", "--status", "active").stdout
    assert list(csv.DictReader(io.StringIO(to_stdout))) == rows


def test_bad_input_gets_one_line_and_exit_code_2(cli_env, tmp_path):
    digest(cli_env, "subscribers", "count")  # the store exists: its creation is not announced again
    result = digest(cli_env, "subscribers", "add", "not-an-address", check=False)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "not an e-mail address" in result.stderr
    result = digest(cli_env, "subscribers", "import", str(tmp_path / "missing.csv"), check=False)
    assert result.returncode == 2 and "cannot read" in result.stderr
    result = digest(cli_env, "subscribers", "list", "--status", "gone", check=False)
    assert result.returncode == 2 and "is not one of" in result.stderr
