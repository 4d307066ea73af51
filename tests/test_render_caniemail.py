"""The rendered issue uses no HTML or CSS that Gmail (webmail, iOS, Android) or Outlook on Windows lacks,
by the Can I email data (npm package doiuse-email, a dev-time tool run by tools/mjml/caniemail.mjs),
in the default layout and in each section layout, unless the feature is in ALLOWED below with the
reason its absence costs the reader nothing.

`make test` installs the tool into tools/mjml/node_modules (`make mjml-validator`). Without it the
tests skip locally; under CI=true they fail, because the check must run there.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass

import pytest

from digest.config import LAYOUTS
from tests.conftest import IN_CI, ROOT
from tests.render_sample import render_sample
from tests.test_render_layouts import config_with

SCRIPT = ROOT / "tools/mjml/caniemail.mjs"
PACKAGE = ROOT / "tools/mjml/node_modules/doiuse-email"
CLIENTS = ("gmail.desktop-webmail", "gmail.ios", "gmail.android", "outlook.windows")
GMAIL = frozenset(CLIENTS[:3])
OUTLOOK = frozenset({"outlook.windows"})


@dataclass(frozen=True)
class Allowed:
    clients: frozenset[str]
    reason: str


# Error-level findings the issue may keep, each with why a reader of that client loses nothing.
# A premise that code can check is checked below (test_the_allow_list_premises_hold).
ALLOWED: dict[str, Allowed] = {
    "@media": Allowed(
        OUTLOOK,
        "MJML's responsive column widths and our dark mode: Outlook gets its fixed 600px columns from "
        "MJML's <!--[if mso]> tables, and without dark mode it shows the light issue.",
    ),
    ":hover": Allowed(
        frozenset({"gmail.ios", "outlook.windows"}),
        "the Keep reading link darkens under the pointer where it can; without it, it stays red.",
    ),
    "border-radius": Allowed(OUTLOOK, "the 3px corners of the Keep reading buttons; Outlook draws them square."),
    "outline": Allowed(
        OUTLOOK, "MJML's reset `img { outline: none }`: Outlook draws no outline round an image to remove."
    ),
    "overflow": Allowed(
        OUTLOOK,
        "only on text that must not be seen (the preheader, the screen-reader half of Keep reading), "
        "which Outlook hides by mso-hide:all instead.",
    ),
    "white-space": Allowed(OUTLOOK, "as overflow: only on text Outlook hides by mso-hide:all."),
    "opacity": Allowed(OUTLOOK, "as overflow: only on the preheader, which Outlook hides by mso-hide:all."),
    "target attribute": Allowed(
        GMAIL,
        'mj-button always writes target="_blank" (an empty one too); Gmail opens every link in a new tab '
        "whatever the attribute says.",
    ),
    "Chaining selectors": Allowed(
        OUTLOOK,
        "a false positive: doiuse-email 0.4.1 counts the classes of a descendant selector (`.top .headline`) "
        "as a chain; the issue's style sheets chain no classes.",
    ),
}
# Features allowed because the element that uses them is hidden from Outlook by mso-hide:all.
HIDDEN_FROM_OUTLOOK = ("overflow", "white-space", "opacity")


@pytest.fixture(scope="module")
def caniemail():
    missing = [str(path) for path in (SCRIPT, PACKAGE) if not path.exists()]
    if shutil.which("node") is None:
        missing.append("node")
    if missing:
        message = f"the Can I email check needs {', '.join(missing)}; run `make mjml-validator`"
        if IN_CI:
            pytest.fail(message + " (CI=true: this check must run)")
        pytest.skip(message)

    def check(html: str, tmp_path) -> dict:
        page = tmp_path / "issue.html"
        page.write_text(html)
        result = subprocess.run(
            ["node", str(SCRIPT), str(page), ",".join(CLIENTS)], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    return check


_html: dict[str | None, str] = {}


def issue_html(layout: str | None) -> str:
    if layout not in _html:
        _html[layout] = render_sample(config_with(layout) if layout else None).html
    return _html[layout]


def not_allowed(findings: dict) -> list[dict]:
    return [
        error
        for error in findings["errors"]
        if error["feature"] not in ALLOWED or error["client"] not in ALLOWED[error["feature"]].clients
    ]


@pytest.mark.parametrize("layout", [None, *LAYOUTS], ids=lambda layout: layout or "default")
def test_the_issue_uses_nothing_gmail_or_outlook_lacks(caniemail, tmp_path, layout):
    findings = caniemail(issue_html(layout), tmp_path)
    assert findings["clients"] == list(CLIENTS)
    assert not_allowed(findings) == [], "unsupported by the clients we write for (fix the template, or allow it here)"


def test_every_allowed_feature_is_still_used(caniemail, tmp_path):
    # An entry nothing needs any more would let that feature back in unnoticed: remove it.
    seen = {
        error["feature"] for layout in [None, *LAYOUTS] for error in caniemail(issue_html(layout), tmp_path)["errors"]
    }
    assert set(ALLOWED) - seen == set()


def declaration_blocks(html: str) -> list[str]:
    """Every inline style attribute and every rule body of the <style> elements."""
    inline = re.findall(r'\sstyle="([^"]*)"', html)
    sheets = "".join(re.findall(r"<style[^>]*>(.*?)</style>", html, flags=re.S))
    return inline + re.findall(r"\{([^{}]*)\}", sheets)


def test_the_allow_list_premises_hold():
    for layout in [None, *LAYOUTS]:
        html = issue_html(layout)
        for block in declaration_blocks(html):
            declared = {part.split(":", 1)[0].strip().lower() for part in block.split(";") if ":" in part}
            for feature in HIDDEN_FROM_OUTLOOK:
                if feature in declared:
                    assert re.search(r"mso-hide:\s*all", block), f"{feature} on text Outlook shows: {block}"
        sheets = "".join(re.findall(r"<style[^>]*>(.*?)</style>", html, flags=re.S))
        selectors = re.findall(r"([^{}]+)\{", re.sub(r"@media[^{]*\{", "", sheets))
        chained = [s.strip() for s in selectors if re.search(r"\.[A-Za-z_][\w-]*\.[A-Za-z_]", s)]
        assert chained == []


def test_the_check_catches_what_the_clients_lack(caniemail, tmp_path):
    # Gmail drops position, Outlook too: the test above must see such a use, or it proves nothing.
    html = issue_html(None).replace('<div class="preheader"', '<div style="position:absolute" class="preheader"', 1)
    features = {error["feature"] for error in not_allowed(caniemail(html, tmp_path))}
    assert "position" in features
