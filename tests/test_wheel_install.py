"""Each step deploy/Containerfile runs, here, since the image itself cannot be built on these machines
(no registry for base images): build the wheel, install it into a fresh venv from requirements/runtime.lock,
then, as an operator would, `digest init` a publication folder, `digest db upgrade`, `digest doctor`,
`digest serve` and its /healthz and /readyz, each run from elsewhere on the folder DIGEST_DIR names.

The build steps are read from the Containerfile and run as written (its folders moved to temporary
ones), offline: `make install` filled uv's cache with every package of the dev lock, and the runtime lock
pins the same versions (`make lock` writes both). The image's last stage only copies the venv, adds the
user and sets the command, which tests/test_deploy.py checks.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.test_packaging import SOURCES

UV = Path(sys.executable).parent / "uv"


def build_steps() -> list[str]:
    """The commands of the Containerfile's build stage that use uv, in order: its RUN lines split at `&&`.
    (The one before them installs uv from requirements/tools.lock, which `make install` has done here.)"""
    text = (ROOT / "deploy" / "Containerfile").read_text().replace("\\\n", " ")
    build_stage = text.split("\nFROM ")[1]
    runs = [line.strip()[len("RUN ") :] for line in build_stage.splitlines() if line.strip().startswith("RUN ")]
    return [step.strip() for run in runs for step in run.split("&&") if step.strip().startswith("uv ")]


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv made by the Containerfile's own build steps: the runtime lock and the wheel, and nothing
    of the checkout. The steps run as written, with /opt/digest and /wheels moved to temporary folders."""
    src = tmp_path_factory.mktemp("src")
    for name in [*SOURCES, "requirements"]:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(ROOT / name, src / name)
    wheels = tmp_path_factory.mktemp("wheels")
    home = tmp_path_factory.mktemp("opt") / "digest"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(
        PATH=f"{UV.parent}{os.pathsep}{env.get('PATH', '')}",
        UV_PYTHON=sys.executable,  # the image's python is the only one there; here, the one running the tests
        UV_OFFLINE="1",  # no network in tests: the packages come from uv's cache (make install fills it)
    )
    steps = build_steps()
    assert [step.split()[:3] for step in steps] == [
        ["uv", "venv", "/opt/digest"], ["uv", "pip", "sync"], ["uv", "build", "--wheel"],
        ["uv", "pip", "install"], ["uv", "pip", "check"],
    ]  # fmt: skip
    for step in steps:
        command = step.replace("/opt/digest", str(home)).replace("/wheels", str(wheels))
        result = subprocess.run(["bash", "-c", command], cwd=src, env=env, capture_output=True, text=True)
        assert result.returncode == 0, f"{command} failed:\n{result.stderr}"
    return home


def publication(digest: Path, folder: Path, database_url: str, base_url: str) -> dict[str, str]:
    """A publication's folder as an operator makes one: `digest init`, then the starter's placeholders and
    a feed in its digest.toml, and the settings in its .env. Returns the environment a service manager
    would give (DIGEST_DIR and nothing else of the digest's, no virtualenv, no checkout on the path)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("DIGEST_") and k not in ("VIRTUAL_ENV", "PYTHONPATH")
    }
    made = subprocess.run([digest, "init", folder], cwd=folder.parent, env=env, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert (folder / ".env").stat().st_mode & 0o777 == 0o600
    shutil.copy2(ROOT / "examples/feeds/reporting.rss", folder / "reporting.rss")
    toml = (folder / "digest.toml").read_text(encoding="utf-8")
    for starter, mine in [
        ('name = "Harbour"', 'name = "The Harbour Letter"'),  # init names it after the folder
        ('from_email = "newsletter@example.org"', 'from_email = "weekly@harbour.example.org"'),
        ('postal_address = "Your publication, street, city, postcode, country"',
         'postal_address = "1 Quay Street, Portland, ME 04101, USA"'),
    ]:  # fmt: skip
        assert starter in toml, starter
        toml = toml.replace(starter, mine, 1)
    toml += '\n[[sources]]\nname = "reporting"\nurl = "reporting.rss"\nsection = "News"\n'
    (folder / "digest.toml").write_text(toml, encoding="utf-8")
    settings = f"DIGEST_BASE_URL={base_url}\nDIGEST_PROVIDER=outbox\n"
    if not database_url.startswith("sqlite"):  # SQLite: the folder's own var/digest.db, the default
        settings += f"DIGEST_DATABASE_URL={database_url}\n"
    with (folder / ".env").open("a", encoding="utf-8") as dot_env:
        dot_env.write(settings)
    return {**env, "DIGEST_DIR": str(folder)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_wheel_in_a_fresh_venv_migrates_and_serves(venv, database_url, tmp_path):
    digest = venv / "bin" / "digest"
    port = free_port()
    folder = tmp_path / "harbour"
    env = publication(digest, folder, database_url, f"http://127.0.0.1:{port}")
    elsewhere = tmp_path  # as the units and the image run it: the folder named by DIGEST_DIR, not the cwd

    where = subprocess.run(
        [venv / "bin/python", "-c", "import digest; print(digest.__file__)"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout + where.stderr

    upgraded = subprocess.run([digest, "db", "upgrade"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.startswith("store at revision ")
    assert (folder / "var/digest.db").exists() == database_url.startswith("sqlite")

    doctor = subprocess.run([digest, "doctor", "--no-dns"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert f"ok   folder: {folder} (settings from its .env and the environment)" in doctor.stdout
    assert f"ok   newsletter: {folder / 'digest.toml'}: The Harbour Letter, 1 sources" in doctor.stdout
    assert "ok   secret key: DIGEST_SECRET_KEY is set" in doctor.stdout  # the one `digest init` wrote

    server = subprocess.Popen(
        [digest, "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=elsewhere,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        health = None
        deadline = time.monotonic() + 30
        while health is None and time.monotonic() < deadline and server.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            except httpx.TransportError:
                time.sleep(0.1)
        assert health is not None, f"digest serve did not answer (exit code {server.poll()})"
        assert health.status_code == 200 and health.json() == {"ok": True}
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).json() == {"ok": True}
        home = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)  # a page from the wheel's own templates
        assert home.status_code == 200 and "The Harbour Letter" in home.text
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=15)
    assert "serving The Harbour Letter" in stderr
