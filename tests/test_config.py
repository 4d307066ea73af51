"""Configuration: bad values stop with one line naming the file, the key and the problem."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from digest.config import Settings, load_newsletter, load_settings
from digest.errors import ConfigError
from tests.cli_helpers import run_cli
from tests.conftest import EXAMPLE_CONFIG, ROOT

GOOD = EXAMPLE_CONFIG.read_text(encoding="utf-8")
SECTIONS = 'sections = ["Reporting", "Analysis", "Opinion"]'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "digest.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_example_file_loads_with_its_sections_and_sources():
    config = load_newsletter(EXAMPLE_CONFIG)
    assert config.sections == ["Reporting", "Analysis", "Opinion"]
    assert [s.section for s in config.sources] == ["Reporting", "Analysis", "Opinion"]
    # Relative source paths are resolved against the file, not the working directory.
    assert Path(config.resolve_location(config.sources[0].url)) == ROOT / "examples/feeds/reporting.rss"


def test_a_section_written_as_a_table_has_its_own_layout_and_the_others_the_issues(tmp_path):
    config = load_newsletter(EXAMPLE_CONFIG)
    assert config.issue.layout == "compact" and config.layout_of("Opinion") == "compact"
    tables = (
        'sections = [{ name = "Reporting", layout = "lead" }, "Analysis", { name = "Opinion", layout = "headlines" }]'
    )
    config = load_newsletter(
        write(tmp_path, GOOD.replace(SECTIONS, tables).replace('layout = "compact"', 'layout = "cards"'))
    )
    assert config.sections == ["Reporting", "Analysis", "Opinion"]  # the names, as everything else reads them
    assert [config.layout_of(name) for name in config.sections] == ["lead", "cards", "headlines"]


def test_section_layouts_is_not_a_key_of_the_file(tmp_path):
    with pytest.raises(ConfigError, match="section_layouts: not a key of the file"):
        load_newsletter(write(tmp_path, 'section_layouts = { Opinion = "cards" }\n' + GOOD))


@pytest.mark.parametrize(
    ("edit", "key", "problem"),
    [
        (lambda t: t.replace('postal_address = "', 'postal_addres = "'), "postal_address", "required"),
        (
            lambda t: t.replace('timezone = "America/New_York"', 'timezone = "Mars/Olympus"'),
            "timezone",
            "unknown timezone",
        ),
        (
            lambda t: t.replace('from_email = "weekly@', 'from_email = "weekly-at-'),
            "from_email",
            "not an e-mail address",
        ),
        (lambda t: t.replace('section = "Opinion"', 'section = "Sports"'), "sources[2].section", "not one of sections"),
        (
            lambda t: t.replace("articles_per_section = 5", "articles_per_section = 0"),
            "issue.articles_per_section",
            "greater than or equal to 1",
        ),
        (lambda t: "unknown_key = 1\n" + t, "unknown_key", "not a known key"),
        (lambda t: t.replace('layout = "compact"', 'layout = "grid"'), "issue.layout", "'headlines'"),
        (
            lambda t: t.replace(
                SECTIONS, 'sections = ["Reporting", { name = "Analysis", layout = "tiles" }, "Opinion"]'
            ),
            "sections[1].layout",
            "'lead', 'cards', 'compact' or 'headlines'",
        ),
        (
            lambda t: t.replace(SECTIONS, 'sections = ["Reporting", { name = "Analysis", look = "cards" }, "Opinion"]'),
            "sections[1].look",
            "not a known key (name, layout)",
        ),
        (
            lambda t: t.replace(SECTIONS, 'sections = ["Reporting", { layout = "cards" }, "Opinion"]'),
            "sections[1].name",
            "required",
        ),
        (
            lambda t: t.replace('weekly = "0 8 * * mon"', 'weekly = "0 8 * * mnday"'),
            "schedule.weekly",
            "the day-of-week field 'mnday' is wrong",
        ),
        (
            lambda t: t.replace('weekly = "0 8 * * mon"', 'weekly = "0 25 * * mon"'),
            "schedule.weekly",
            "the hour field '25' is wrong",
        ),
        (
            lambda t: t.replace('weekly = "0 8 * * mon"', 'weekly = "0 8 * *"'),
            "schedule.weekly",
            "has 4 fields; a crontab has 5",
        ),
    ],
)
def test_a_bad_value_names_the_file_the_key_and_the_problem(tmp_path, edit, key, problem):
    path = write(tmp_path, edit(GOOD))
    with pytest.raises(ConfigError) as caught:
        load_newsletter(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert problem in message


def test_invalid_toml_names_the_file_and_the_line(tmp_path):
    path = write(tmp_path, GOOD.replace('name = "The Meridian Review"', 'name = "The Meridian Review'))
    with pytest.raises(ConfigError, match=re.escape(str(path)) + r": not valid TOML: .*line \d+"):
        load_newsletter(path)


def test_a_missing_file_says_how_to_fix_it(tmp_path):
    with pytest.raises(
        ConfigError, match="file not found; make a publication folder with `digest init DIR`, or set DIGEST_CONFIG"
    ):
        load_newsletter(tmp_path / "nowhere.toml")


def test_a_bad_environment_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("DIGEST_PROVIDER", "carrier-pigeon")
    with pytest.raises(ConfigError, match=r"^environment: DIGEST_PROVIDER: "):
        load_settings(_env_file=None)


def test_sending_without_a_secret_key_says_which_variable_to_set():
    with pytest.raises(ConfigError, match="DIGEST_SECRET_KEY: is not set"):
        Settings(_env_file=None, secret_key=None).require_secret_key()


def test_every_setting_is_documented_in_env_example():
    documented = set(re.findall(r"^(DIGEST_[A-Z_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    declared = {f"DIGEST_{name.upper()}" for name in Settings.model_fields}
    assert declared == documented
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} needs a line of help"


def test_the_command_line_reports_a_bad_file_in_one_line_with_exit_code_2(tmp_path):
    path = write(tmp_path, GOOD.replace('timezone = "America/New_York"', 'timezone = "Nowhere/Land"'))
    env = {"DIGEST_CONFIG": str(path), "DIGEST_DATABASE_URL": f"sqlite:///{tmp_path}/d.db"}
    result = run_cli(["build", "--week", "2026-W48"], env, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"digest: error: {path}: timezone: unknown timezone 'Nowhere/Land'; use an IANA name such as Europe/Berlin"
    ]
    assert "Traceback" not in result.stderr


def test_digest_build_refuses_a_crontab_typo_as_digest_schedule_does(tmp_path):
    path = write(tmp_path, GOOD.replace('weekly = "0 8 * * mon"', 'weekly = "0 8 * * mon-frii"'))
    env = {"DIGEST_CONFIG": str(path), "DIGEST_DATABASE_URL": f"sqlite:///{tmp_path}/d.db"}
    for command in (["build", "--week", "2026-W48"], ["schedule", "--print-jobs"]):
        result = run_cli(command, env, tmp_path)
        assert result.returncode == 2, command
        assert result.stderr.strip().splitlines() == [
            f"digest: error: {path}: schedule.weekly: '0 8 * * mon-frii': the day-of-week field 'mon-frii' is "
            'wrong: Invalid weekday name "frii"'
        ]


@pytest.mark.parametrize(
    ("zone", "shown"),
    [
        ("Europe/Berlin", "2026-12-07 07:00 CET"),
        ("Europe/Berlin", "2026-07-06 08:00 CEST"),
        ("America/New_York", "2026-12-07 01:00 EST"),
        ("UTC", "2026-12-07 06:00 UTC"),
    ],
)
def test_times_are_shown_in_the_newsletters_timezone_with_its_name(zone, shown):
    from datetime import UTC, datetime

    config = load_newsletter(EXAMPLE_CONFIG).model_copy(update={"timezone": zone})
    moment = datetime(2026, 7 if "CEST" in shown else 12, 6 if "CEST" in shown else 7, 6, 0, tzinfo=UTC)
    assert config.local_time(moment) == shown
    assert config.local_time(moment.replace(tzinfo=None)) == shown  # a stored time without a zone is UTC
    assert config.local_time(None) == "never"


def test_a_bad_week_is_a_usage_error(tmp_path, cli_env):
    result = run_cli(["build", "--week", "2026-W60"], cli_env, tmp_path)
    assert result.returncode == 2
    assert "2026 has no week 60" in result.stderr
