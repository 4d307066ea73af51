"""The publication folder: `digest init`, which folder a command works on, and paths that follow the
folder (never the working directory)."""

from __future__ import annotations

import json
import re
import stat
import tomllib
from pathlib import Path

import pytest

from digest.config import NewsletterConfig, Settings, load_newsletter
from digest.folder import STARTER, env_file_text, sqlite_in
from tests.cli_helpers import run_cli

NO_ENV: dict[str, str] = {}  # run_cli: no DIGEST_* variable but those given


def init(where: Path, name: str = "my-letter") -> Path:
    result = run_cli(["init", name], NO_ENV, where)
    assert result.returncode == 0, result.stderr
    return where / name


def everything_in(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_init_writes_a_commented_newsletter_file_an_owner_only_env_and_templates_and_nothing_else(tmp_path):
    folder = init(tmp_path)
    assert everything_in(folder) == {"digest.toml", ".env", "templates"}
    assert (folder / "templates").is_dir()
    assert stat.S_IMODE((folder / ".env").stat().st_mode) == 0o600
    key = re.search(r"^DIGEST_SECRET_KEY=(.+)$", (folder / ".env").read_text(), re.MULTILINE)[1]
    assert Settings(_env_file=None, secret_key=key).require_secret_key() == key
    config = load_newsletter(folder / "digest.toml")
    assert config.name == "My Letter" and config.sources == []
    assert "# [[sources]]" in (folder / "digest.toml").read_text()

    other = init(tmp_path, "other")
    assert key not in (other / ".env").read_text()  # a fresh key for every folder


def test_init_never_overwrites_a_publication(tmp_path):
    folder = init(tmp_path)
    (folder / "digest.toml").write_text("# mine\n")
    result = run_cli(["init", "my-letter"], NO_ENV, tmp_path)
    assert result.returncode == 2 and "exists already" in result.stderr
    assert (folder / "digest.toml").read_text() == "# mine\n"


def test_the_starter_mentions_every_key_of_the_newsletter_file():
    text = STARTER.read_text()
    tomllib.loads(text)  # valid as written
    for name, field in NewsletterConfig.model_fields.items():
        if name in ("path", "section_layouts"):  # set by the loader, not keys of the file
            continue
        assert re.search(rf"^#? ?{name} =", text, re.MULTILINE) or f"[{name}]" in text, name
        sub = field.annotation
        for key in getattr(sub, "model_fields", {}):
            assert re.search(rf"^#? ?{key} =", text, re.MULTILINE), f"{name}.{key}"


def test_the_new_env_lists_every_setting_but_sets_only_the_key():
    text = env_file_text("k" * 40)
    assert re.findall(r"^(DIGEST_\w+)=", text, re.MULTILINE) == ["DIGEST_SECRET_KEY"]
    commented = set(re.findall(r"^# (DIGEST_\w+)=", text, re.MULTILINE))
    assert commented == {f"DIGEST_{n.upper()}" for n in Settings.model_fields} - {"DIGEST_SECRET_KEY", "DIGEST_DIR"}


def test_paths_follow_the_folder_of_digest_config_not_the_working_directory(tmp_path):
    # The case: `cd /tmp && DIGEST_CONFIG=/path/digest.toml digest subscribers count`.
    folder = init(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"DIGEST_CONFIG": str(folder / "digest.toml")}
    result = run_cli(["subscribers", "add", "ann@example.org", "--name", "Ann"], env, elsewhere)
    assert result.returncode == 0, result.stderr
    assert f"created a new, empty store {folder / 'var' / 'digest.db'}" in result.stderr
    assert list(elsewhere.iterdir()) == []
    result = run_cli(["subscribers", "count", "--json"], env, elsewhere)
    assert json.loads(result.stdout)["total"] == 1
    assert "created" not in result.stderr  # said once, when the store is made


def test_a_command_finds_the_folder_from_a_folder_below_it(tmp_path):
    folder = init(tmp_path)
    below = folder / "templates" / "email"
    below.mkdir(parents=True)
    assert run_cli(["subscribers", "add", "ann@example.org"], NO_ENV, folder).returncode == 0
    result = run_cli(["subscribers", "count", "--json"], NO_ENV, below)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["total"] == 1


def test_dir_wins_over_digest_dir_which_wins_over_the_working_directory(tmp_path):
    one, two, three = init(tmp_path, "one"), init(tmp_path, "two"), init(tmp_path, "three")
    run_cli(["subscribers", "add", "a@example.org"], NO_ENV, one)
    for address in ("b@example.org", "c@example.org"):
        run_cli(["subscribers", "add", address], NO_ENV, two)
    for address in ("d@example.org", "e@example.org", "f@example.org"):
        run_cli(["subscribers", "add", address], NO_ENV, three)

    def total(args: list[str], env: dict[str, str]) -> int:
        result = run_cli([*args, "subscribers", "count", "--json"], env, one)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["total"]

    assert total([], NO_ENV) == 1
    assert total([], {"DIGEST_DIR": str(two)}) == 2
    assert total([], {"DIGEST_CONFIG": str(two / "digest.toml")}) == 2
    assert total([], {"DIGEST_DIR": str(three), "DIGEST_CONFIG": str(two / "digest.toml")}) == 3
    assert total(["--dir", str(three)], {"DIGEST_DIR": str(two)}) == 3
    assert total([], NO_ENV) == 1  # --dir held for that one command only


def test_without_a_folder_a_command_says_how_to_make_one_and_creates_nothing(tmp_path):
    result = run_cli(["subscribers", "count"], NO_ENV, tmp_path)
    assert result.returncode == 2
    assert "no publication folder" in result.stderr and "digest init DIR" in result.stderr
    assert list(tmp_path.iterdir()) == []
    result = run_cli(["--dir", str(tmp_path / "nope"), "subscribers", "count"], NO_ENV, tmp_path)
    assert result.returncode == 2 and "no such folder" in result.stderr


def test_only_the_folders_env_is_read_never_the_working_directorys(tmp_path):
    folder = init(tmp_path)
    (tmp_path / ".env").write_text("DIGEST_DATABASE_URL=sqlite:///stray.db\n")
    with (folder / ".env").open("a") as env:
        env.write("DIGEST_DATABASE_URL=sqlite:///data/store.db\nDIGEST_OUTBOX_DIR=mail\n")
    result = run_cli(["--dir", str(folder), "subscribers", "count"], NO_ENV, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (folder / "data" / "store.db").exists() and not (tmp_path / "stray.db").exists()


def test_relative_sqlite_urls_are_put_in_the_folder_and_others_kept(tmp_path):
    assert sqlite_in("sqlite:///var/digest.db", tmp_path) == f"sqlite:///{tmp_path}/var/digest.db"
    assert sqlite_in("sqlite:///var/d.db?timeout=5", tmp_path) == f"sqlite:///{tmp_path}/var/d.db?timeout=5"
    for kept in ("sqlite:////abs/d.db", "sqlite:///:memory:", "postgresql://u@h/db", "sqlite://"):
        assert sqlite_in(kept, tmp_path) == kept


@pytest.mark.parametrize("where", ["templates", "custom"])
def test_a_file_in_the_folders_templates_replaces_the_packaged_one(tmp_path, where):
    folder = init(tmp_path)
    if where == "custom":
        text = (folder / "digest.toml").read_text()
        (folder / "digest.toml").write_text(text.replace('# templates_dir = "templates"', 'templates_dir = "custom"'))
    partials = folder / where / "email" / "partials"
    partials.mkdir(parents=True)
    (partials / "footer.mjml.j2").write_text("<mj-section><mj-column><mj-text>Our own footer</mj-text>"
                                             "</mj-column></mj-section>\n")  # fmt: skip
    doc = tmp_path / "doc.json"
    doc.write_text(
        json.dumps({"sections": [{"name": "News", "articles": [{"title": "A", "url": "https://a.example/"}]}]})
    )
    env = {"DIGEST_SECRET_KEY": "k" * 40}
    result = run_cli(["render", str(doc), "--out", str(tmp_path / "out")], env, folder)
    assert result.returncode == 0, result.stderr
    assert "Our own footer" in (tmp_path / "out" / "issue.html").read_text()
