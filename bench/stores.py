"""What the benchmarks that run the real `digest` command share: a fresh store of either kind, and the
environment that points a `digest` subprocess at it with the sample newsletter."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from digest.config import Settings
from tests.pgschema import throwaway_schema

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "digest.toml"
KEY = "bench-secret-key-" + "x" * 32


@contextlib.contextmanager
def store(kind: str, folder: Path, name: str = "bench") -> Iterator[str]:
    """The URL of an empty store: a SQLite file `name`.db in `folder`, or a throwaway PostgreSQL schema."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / name}.db"
    else:
        with throwaway_schema("bench") as url:
            yield url


def environment(url: str, folder: Path) -> dict[str, str]:
    # Bytecode may be written and read: an installed `digest` runs from compiled modules (pip compiles them),
    # and an environment with PYTHONDONTWRITEBYTECODE would time recompiling the whole program at each run.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(DIGEST_DIR=str(folder), DIGEST_DATABASE_URL=url, DIGEST_CONFIG=str(EXAMPLE), DIGEST_SECRET_KEY=KEY,
               DIGEST_PROVIDER="outbox", DIGEST_OUTBOX_DIR=str(folder / "outbox"), PYTHONPATH=str(ROOT))  # fmt: skip
    return env


def settings(url: str, folder: Path) -> Settings:
    """The same store and newsletter as `environment`, for the benchmark's own process."""
    return Settings(_env_file=None, database_url=url, config=EXAMPLE, secret_key=KEY, provider="outbox",
                    outbox_dir=folder / "outbox")  # fmt: skip
