"""The rendered MJML passes the official MJML validator (npm package mjml, a dev-time tool only).

`make test` installs it into tools/mjml/node_modules from tools/mjml/package-lock.json. Without it
the test skips locally; under CI=true it fails, because the check must run there.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import IN_CI, ROOT
from tests.render_sample import render_sample

VALIDATOR = ROOT / "tools/mjml/node_modules/.bin/mjml"


@pytest.fixture(scope="module")
def mjml_cli():
    if not VALIDATOR.exists():
        message = f"the MJML validator is not installed at {VALIDATOR}; run `npm ci --prefix tools/mjml`"
        if IN_CI:
            pytest.fail(message + " (CI=true: this check must run)")
        pytest.skip(message)
    return VALIDATOR


def validate(cli, path):
    return subprocess.run([str(cli), "--validate", str(path)], capture_output=True, text=True, timeout=120)


def test_the_rendered_issue_passes_the_official_mjml_validator(mjml_cli, tmp_path):
    source = tmp_path / "issue.mjml"
    source.write_text(render_sample().mjml)
    result = validate(mjml_cli, source)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_validator_catches_what_mjml_python_lets_through(mjml_cli, tmp_path):
    # A misspelt tag compiles silently with mjml-python; the validator must reject it, or the test above proves nothing.
    source = tmp_path / "bad.mjml"
    source.write_text(
        render_sample().mjml.replace("<mj-column>", "<mj-colum>", 1).replace("</mj-column>", "</mj-colum>", 1)
    )
    result = validate(mjml_cli, source)
    assert result.returncode != 0
    assert "mj-colum" in result.stdout + result.stderr
