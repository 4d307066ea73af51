"""deploy/: the systemd units verify with systemd-analyze, run as a user without privileges and hardened;
the Containerfile and compose.yaml run commands the digest has, as a user that is not root.

systemd-analyze verify checks that ExecStart's program exists: the units name /opt/digest/bin/digest (the
venv of a real install), so the test verifies copies that name this venv's digest instead, the only change.
Without systemd-analyze the unit tests skip (`make test` installs it), except under CI=true, where they fail.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.main import get_command

from digest.cli import app
from tests.conftest import IN_CI, ROOT

DEPLOY = ROOT / "deploy"
UNITS = ["digest-serve.service", "digest-schedule.service"]
INSTALLED = "/opt/digest/bin/digest"
VENV_DIGEST = Path(sys.executable).parent / "digest"


@pytest.fixture(scope="module")
def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        message = "systemd-analyze is missing; `make test` installs Debian's systemd"
        if IN_CI:
            pytest.fail(message + " (CI=true: the unit tests must run)")
        pytest.skip(message)
    return found


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, empty_lines_in_values=False)
    parser.optionxform = str  # keys are case-sensitive in units
    parser.read_string((DEPLOY / name).read_text())
    return parser


def accepted(args: list[str]) -> None:
    """Parse `digest ARGS` as the command line would, without running it: an unknown command or option,
    or a value of the wrong type, raises."""
    command, name, rest = get_command(app), "digest", list(args)
    while isinstance(getattr(command, "commands", None), dict):  # the root, and groups such as `db`
        assert rest, f"{name} needs a command"
        name, *rest = rest
        if name not in command.commands:
            raise LookupError(f"No such command {name!r}")
        command = command.commands[name]
    command.make_context(name, rest)


@pytest.mark.parametrize("name", UNITS)
def test_the_units_verify(systemd_analyze, name, tmp_path):
    assert VENV_DIGEST.exists()
    text = (DEPLOY / name).read_text()
    assert INSTALLED in text
    (tmp_path / name).write_text(text.replace(INSTALLED, str(VENV_DIGEST)))
    result = subprocess.run(
        [systemd_analyze, "verify", str(tmp_path / name)],
        capture_output=True,
        text=True,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0"},
    )
    # verify exits 0 on an unknown key, only warning: any line it prints is a failure too.
    assert result.returncode == 0 and result.stderr == "" and result.stdout == "", result.stderr + result.stdout


def test_systemd_analyze_does_catch_a_mistake_in_a_unit(systemd_analyze, tmp_path):
    broken = (DEPLOY / UNITS[0]).read_text().replace(INSTALLED, str(VENV_DIGEST))
    (tmp_path / "broken.service").write_text(broken.replace("[Service]\n", "[Service]\nRestartSecs=5s\n"))
    result = subprocess.run(
        [systemd_analyze, "verify", str(tmp_path / "broken.service")], capture_output=True, text=True
    )
    assert "Unknown key 'RestartSecs'" in result.stderr


@pytest.mark.parametrize("name", UNITS)
def test_the_units_run_a_digest_command_as_an_unprivileged_user_with_hardening(name):
    service = unit(name)["Service"]
    assert service["User"] == "digest" and service["Group"] == "digest"
    assert service["Restart"] in ("on-failure", "always")
    for key, value in {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
        "PrivateDevices": "yes", "CapabilityBoundingSet": "", "RestrictSUIDSGID": "yes", "UMask": "0077",
    }.items():  # fmt: skip
        assert service[key] == value, key
    program, *args = shlex.split(service["ExecStart"])
    assert program == INSTALLED
    accepted(args)


@pytest.mark.parametrize("name", UNITS)
def test_the_units_publication_folder_is_their_state_directory_the_one_place_they_write(name):
    service = unit(name)["Service"]
    assert "EnvironmentFile" not in service  # settings and secrets: the folder's .env, as anywhere else
    assert service["Environment"] == f"DIGEST_DIR=/var/lib/{service['StateDirectory']}"
    assert service["StateDirectoryMode"] == "0700" and service["ProtectSystem"] == "strict"


def test_the_sysusers_file_makes_the_units_user():
    lines = [line.split() for line in (DEPLOY / "digest.sysusers").read_text().splitlines() if line[:1] == "u"]
    assert [(fields[0], fields[1]) for fields in lines] == [("u", "digest")]


def containerfile_final_stage() -> list[str]:
    text = (DEPLOY / "Containerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    last_from = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    return lines[last_from:]


def test_the_image_runs_as_a_user_that_is_not_root_on_a_slim_python():
    stage = containerfile_final_stage()
    assert re.fullmatch(r"FROM \S*python:3\.\d+-slim", stage[0])
    users = [line.split()[1] for line in stage if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any(line.startswith("RUN useradd") and "digest" in line for line in stage)


def test_the_images_publication_folder_is_its_volume_and_composes_mounts_go_into_it():
    stage = containerfile_final_stage()
    env = " ".join(line for line in stage if line.startswith("ENV "))
    (folder,) = re.findall(r"\bDIGEST_DIR=(\S+)", env)
    assert "DIGEST_CONFIG" not in env  # it would make the newsletter file's folder the publication's
    assert f'VOLUME ["{folder}"]' in stage
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name in ("migrate", "serve", "schedule"):
        service = compose["services"][name]
        targets = {volume.split(":")[1]: volume.split(":")[0] for volume in service["volumes"]}
        assert targets[folder] == "digest-state"  # var/: the outbox, the issues' files
        assert targets[f"{folder}/digest.toml"] == "./publication/digest.toml"
        assert service["env_file"] == "publication/.env"  # the .env `digest init deploy/publication` wrote


def test_the_images_entrypoint_and_command_are_digest_commands():
    stage = containerfile_final_stage()

    def exec_form(instruction: str) -> list[str]:
        (line,) = [line for line in stage if line.startswith(instruction + " ")]
        return yaml.safe_load(line[len(instruction) + 1 :])  # the exec form is a JSON array

    assert exec_form("ENTRYPOINT") == ["digest"]
    accepted(exec_form("CMD"))
    assert "/healthz" in next(line for line in stage if line.startswith("HEALTHCHECK"))


def test_compose_runs_serve_schedule_and_migrations_on_postgresql():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert services["postgres"]["image"].rsplit("/", 1)[-1].startswith("postgres:")
    commands = {name: services[name]["command"] for name in ("migrate", "serve", "schedule")}
    assert commands["migrate"] == ["db", "upgrade"]
    assert commands["serve"][0] == "serve" and commands["schedule"] == ["schedule"]
    for name, command in commands.items():
        accepted(command)
        service = services[name]
        assert service["environment"]["DIGEST_DATABASE_URL"].startswith("postgresql://"), name
        assert service["build"]["dockerfile"] == "deploy/Containerfile"
        assert "no-new-privileges:true" in service["security_opt"] and service["cap_drop"] == ["ALL"]
    # Published on the host's loopback only: the reverse proxy is the way in.
    assert all(port.startswith("127.0.0.1:") for port in services["serve"]["ports"])


def test_a_command_the_digest_does_not_have_is_refused():
    with pytest.raises(Exception, match="No such option"):
        accepted(["serve", "--hots", "127.0.0.1"])
    with pytest.raises(Exception, match="No such command"):
        accepted(["db", "downgrade"])


def pins(lock: Path) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) ", lock.read_text(), re.MULTILINE))


def test_the_runtime_lock_pins_the_versions_the_tests_ran_with():
    runtime, dev = pins(ROOT / "requirements/runtime.lock"), pins(ROOT / "requirements/dev.lock")
    assert {"fastapi", "sqlalchemy", "psycopg", "dnspython", "sendgrid"} <= set(runtime)
    assert not {"pytest", "mypy", "playwright"} & set(runtime)  # what production installs, no more
    assert {name: version for name, version in runtime.items() if dev.get(name) != version} == {}, "run make lock"
