"""A wheel of the project carries the e-mail and web templates, and digest installed from it renders.

The wheel is built offline with the venv's own setuptools (`pip wheel --no-build-isolation --no-index`;
setuptools >= 70.1 builds wheels by itself, see the dev extra). It is built from a copy of the sources
in a temporary folder: pip builds in the source tree, which would leave build/ and *.egg-info in the
checkout, and a stale build/lib there could slip files into the wheel that the configuration misses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_CONFIG, ROOT, TEST_SECRET_KEY
from tests.render_sample import ISSUE_30

SOURCES = ["pyproject.toml", "README.md", "digest", "subscribers", "templates"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", out, src],
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, (
        f"building the wheel failed (it needs setuptools>=70.1 in this venv: pip install -e '.[dev]'):\n{result.stderr}"
    )
    (built,) = out.glob("digest-*.whl")
    return built


def test_a_wheel_carries_the_email_and_web_templates(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    packaged = {name for name in names if name.startswith("digest/templates/")}
    on_disk = {
        "digest/templates/" + path.relative_to(ROOT / "templates").as_posix()
        for path in (ROOT / "templates").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert "digest/templates/email/digest.mjml.j2" in packaged
    assert "digest/templates/email/partials/articles.mjml.j2" in packaged
    assert "digest/templates/web/base.html" in packaged and "digest/templates/web/static/preview.js" in packaged
    assert packaged == on_disk


def test_a_wheel_carries_every_module_of_the_checkout(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    on_disk = {
        path.relative_to(ROOT).as_posix()
        for package in ("digest", "subscribers")
        for path in (ROOT / package).rglob("*")
        if path.suffix in {".py", ".mako"} and "__pycache__" not in path.parts
    }
    assert on_disk - names == set()


def test_digest_installed_from_the_wheel_renders_an_issue_with_its_own_templates(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # a pure-Python wheel installs by unpacking it
    # Only the unpacked wheel on the path (not the checkout), and run from a folder holding no templates.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_") and k != "PYTHONPATH"}
    env.update(
        PYTHONPATH=str(site),
        DIGEST_CONFIG=str(EXAMPLE_CONFIG),
        DIGEST_DATABASE_URL=f"sqlite:///{tmp_path / 'digest.db'}",
        DIGEST_SECRET_KEY=TEST_SECRET_KEY,
        DIGEST_BASE_URL="https://news.example.org",
        DIGEST_PROVIDER="outbox",
        DIGEST_OUTBOX_DIR=str(tmp_path / "outbox"),
    )
    where = subprocess.run(
        [sys.executable, "-c", "from digest.config import PACKAGED_TEMPLATES as t; print(t)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()) == (site / "digest" / "templates").resolve()

    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "digest.cli", "render", str(ISSUE_30), "--out", str(out)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "rendered 30 articles" in result.stdout
    assert (out / "issue.html").read_text().startswith("<!doctype html>")
    assert "The Meridian Review" in (out / "issue.txt").read_text()


def test_a_wheel_carries_the_message_catalogs_and_digest_installed_from_it_speaks_french(wheel, tmp_path):
    names = set(zipfile.ZipFile(wheel).namelist())
    catalogs = ROOT / "digest" / "locale"
    on_disk = {
        path.relative_to(ROOT).as_posix() for path in catalogs.rglob("*") if path.suffix in {".po", ".mo", ".pot"}
    }
    assert "digest/locale/fr/LC_MESSAGES/digest.mo" in on_disk and "digest/locale/ar/LC_MESSAGES/digest.mo" in on_disk
    assert on_disk - names == set()
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_") and k != "PYTHONPATH"}
    said = subprocess.run(
        [
            sys.executable,
            "-c",
            "from digest.locale import language as l; print(l('fr').gettext('Keep reading'), l('ar').dir)",
        ],
        env={**env, "PYTHONPATH": str(site)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert said.returncode == 0, said.stderr
    assert said.stdout.split() == ["Lire", "la", "suite", "rtl"]
