"""Fixtures that build real things: a store on SQLite and on PostgreSQL, settings, the core.

Every store test runs twice, on SQLite and on PostgreSQL (DIGEST_TEST_POSTGRES_URL, default
127.0.0.1:5432/test with trust auth). Each PostgreSQL test gets a schema of its own, dropped after.
Without PostgreSQL the tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from digest.config import Settings, load_newsletter
from digest.core import build_core
from tests.pgschema import POSTGRES_URL, throwaway_schema

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_CONFIG = ROOT / "examples" / "digest.toml"  # the sample publication's, which `make demo` runs
IN_CI = os.environ.get("CI", "").lower() == "true"
SAMPLE_WEEK = "2026-W48"
# The one secret key of the tests: DIGEST_SECRET_KEY must be at least 32 characters.
TEST_SECRET_KEY = "test-secret-key-of-at-least-32-characters"


def _postgres_or_skip() -> None:
    try:
        engine = create_engine(POSTGRES_URL)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure to connect means "no PostgreSQL here"
        message = f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc}"
        if IN_CI:
            pytest.fail(message + " (CI=true: PostgreSQL tests must run)")
        pytest.skip(message)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'digest.db'}"
        return
    _postgres_or_skip()
    with throwaway_schema("t") as url:
        yield url


@pytest.fixture
def settings(database_url, tmp_path) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        config=EXAMPLE_CONFIG,
        secret_key=TEST_SECRET_KEY,
        base_url="https://news.example.org",
        provider="outbox",
        outbox_dir=tmp_path / "outbox",
        sendgrid_api_key=None,
    )


@pytest.fixture
def core(settings):
    core = build_core(settings, load_newsletter(EXAMPLE_CONFIG))
    yield core
    core.close()


@pytest.fixture
def cli_env(settings, tmp_path) -> dict[str, str]:
    """The environment for running the real `digest` command in a subprocess against this store: the
    sample newsletter, with tmp_path as the publication folder (issue files go to its var/issues/)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(
        DIGEST_DIR=str(tmp_path),
        DIGEST_DATABASE_URL=settings.database_url,
        DIGEST_CONFIG=str(EXAMPLE_CONFIG),
        DIGEST_SECRET_KEY=TEST_SECRET_KEY,
        DIGEST_BASE_URL="https://news.example.org",
        DIGEST_OUTBOX_DIR=str(tmp_path / "outbox"),
        DIGEST_PROVIDER="outbox",
    )
    return env


CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"  # screenshots for a person to look at (git-ignored)


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium through Playwright (its own browser downloads cannot work offline)."""
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing (CI=true: browser tests must run)")
        pytest.skip(f"{CHROMIUM} is missing; `make test` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        # Without the background-networking flags Chromium keeps dialling out on this closed network.
        args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]  # fmt: skip
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=args)
        yield launched
        launched.close()
