"""The publication folder: the folder that holds a publication's `digest.toml`, its `.env`, its
`templates/` and, by default, its store and outbox (`var/`).

Which folder a command works on, first match wins:

1. `--dir DIR` on the command line (`choose`),
2. `DIGEST_DIR`,
3. the folder of `DIGEST_CONFIG` when that variable names the newsletter file,
4. the working directory or the nearest folder above it holding a `digest.toml`.

Settings are then read from the environment and that folder's `.env` (never the working directory's),
and every relative path among them (the SQLite store, the outbox, the newsletter file) is resolved
against the folder, as are the paths inside `digest.toml` (`NewsletterConfig.resolve_location`). So a
command gives the same answer from any directory, and two publications never share a store.

`create_folder` is `digest init`: a commented `digest.toml`, a `.env` with a fresh secret key (0600)
and an empty `templates/` for overrides.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path

from digest.config import PACKAGED_TEMPLATES, Settings, load_settings
from digest.errors import UsageError

NEWSLETTER_FILE = "digest.toml"
ENV_FILE = ".env"
TEMPLATES_DIR = "templates"
# The commented digest.toml that `digest init` writes; packaged with the templates (templates/init/).
STARTER = PACKAGED_TEMPLATES / "init" / "digest.toml"
# The name line of the starter, replaced by one made from the folder's name.
STARTER_NAME = 'name = "My Newsletter"'

_SQLITE_RELATIVE = re.compile(r"^(sqlite(?:\+\w+)?:///)(?!/)([^?]+)(\?.*)?$")

# The --dir of the running command (the CLI sets it for the command's duration and clears it after).
_chosen: Path | None = None


class NoFolder(UsageError):
    """No publication folder could be found, or the one named is not there."""


def choose(folder: Path | None) -> None:
    """The folder given on the command line (`--dir`), or None to forget it when the command ends."""
    global _chosen
    _chosen = folder


def find_folder(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> tuple[Path, Path | None]:
    """The publication folder (absolute) and, when DIGEST_CONFIG decided it, the newsletter file."""
    env = os.environ if environ is None else environ
    here = (cwd or Path.cwd()).resolve()
    named, how = (_chosen, "--dir") if _chosen is not None else (env.get("DIGEST_DIR") or None, "DIGEST_DIR")
    if named is not None:
        folder = (here / Path(named).expanduser()).resolve()
        if not folder.is_dir():
            raise NoFolder(f"{how} {named}: no such folder; make a publication there with `digest init {named}`")
        return folder, None
    if config := env.get("DIGEST_CONFIG"):
        path = (here / Path(config).expanduser()).resolve()
        return path.parent, path
    for folder in [here, *here.parents]:
        if (folder / NEWSLETTER_FILE).is_file():
            return folder, None
    raise NoFolder(
        f"no publication folder: neither {here} nor a folder above it holds a {NEWSLETTER_FILE}; make one with "
        "`digest init DIR`, then run digest inside DIR or pass --dir DIR (or set DIGEST_DIR)"
    )


def folder_settings(**overrides: object) -> Settings:
    """The settings of the publication folder (see the module's docstring), every relative path in them
    resolved against the folder; `overrides` are field values by name, as for `load_settings`."""
    folder, config = find_folder()
    if config is not None and "config" not in overrides:
        overrides["config"] = config
    settings = load_settings(_env_file=folder / ENV_FILE, **overrides)
    return in_folder(settings, folder)


def in_folder(settings: Settings, folder: Path) -> Settings:
    """`settings` with `dir` set to `folder` and its relative paths made absolute inside it."""

    def at(path: Path) -> Path:
        path = path.expanduser()
        return path if path.is_absolute() else folder / path

    return settings.model_copy(
        update={
            "dir": folder,
            "config": at(settings.config),
            "outbox_dir": at(settings.outbox_dir),
            "database_url": sqlite_in(settings.database_url, folder),
        }
    )


def sqlite_in(url: str, folder: Path) -> str:
    """A SQLite URL with a relative path (sqlite:///var/digest.db) made absolute inside `folder`; any
    other URL as it is."""
    match = _SQLITE_RELATIVE.match(url)
    if match is None or match[2] == ":memory:":
        return url
    return f"{match[1]}{folder / match[2]}{match[3] or ''}"


# --- digest init --------------------------------------------------------------------------------


def create_folder(folder: Path) -> list[Path]:
    """Make `folder` a publication folder: digest.toml, .env (a fresh secret key, mode 0600) and an
    empty templates/; nothing else. Refused when it holds either file already (nothing is overwritten).
    Returns the paths written."""
    toml, env, templates = folder / NEWSLETTER_FILE, folder / ENV_FILE, folder / TEMPLATES_DIR
    for existing in (toml, env):
        if existing.exists():
            raise UsageError(f"{existing} exists already; `digest init` never overwrites a publication's files")
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        starter = STARTER.read_text(encoding="utf-8")
        name = _title(folder.resolve().name)
        toml.write_text(starter.replace(STARTER_NAME, f"name = {_toml_string(name)}", 1), encoding="utf-8")
        descriptor = os.open(env, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(env_file_text(secrets.token_urlsafe(32)))
        templates.mkdir(exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot make the publication folder {folder}: {exc.strerror or exc}") from None
    return [toml, env, templates]


def env_file_text(secret_key: str) -> str:
    """A new publication's .env: its secret key, then every other setting commented out at its default,
    each under its line of help (from Settings, so it never falls behind)."""
    lines = [
        "# This publication's environment settings and secrets; keep this file private (mode 0600).",
        "# Relative paths are resolved against this folder. A variable set in the environment wins.",
        "",
        "# " + (Settings.model_fields["secret_key"].description or ""),
        f"DIGEST_SECRET_KEY={secret_key}",
    ]
    for name, field in Settings.model_fields.items():
        if name in ("secret_key", "dir"):
            continue
        default = field.default
        shown = "" if default is None else str(default).lower() if isinstance(default, bool) else str(default)
        lines += ["", f"# {field.description}", f"# DIGEST_{name.upper()}={shown}"]
    return "\n".join(lines) + "\n"


def _title(folder_name: str) -> str:
    words = re.split(r"[-_\s]+", folder_name.strip())
    return " ".join(w[:1].upper() + w[1:] for w in words if w) or "My Newsletter"


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
