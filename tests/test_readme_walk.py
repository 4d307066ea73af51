"""The README's steps for a publication of one's own, walked end to end in a temporary folder, as a new
user would after `make demo`: `digest init` → edit → import → `digest run --once` → `digest serve` →
a reader signs up in Chromium → confirms from the mail → a reader of the issue unsubscribes in one
click (RFC 8058) from its mail. No data of the demo may show up anywhere along the way.

Every command runs inside the folder with no DIGEST_* variable set: only the folder's .env speaks.
Up to the weekly run they run in this process (tests.cli_helpers.run_cli); once Chromium is up, its
driver holds this thread's event loop, so the rest run as processes, like `digest serve`. The sources
are a feed on a loopback HTTP server.
"""

from __future__ import annotations

import csv
import email
import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from email import policy
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from tests.cli_helpers import run_cli
from tests.conftest import ARTIFACTS, ROOT
from tests.fakes.feed_server import FeedServer, Reply
from tests.hostile_helpers import free_port
from tests.web_site import confirm_links

pytestmark = pytest.mark.browser

NO_ENV: dict[str, str] = {}  # run_cli: no DIGEST_* variable at all
DEMO_ADDRESSES = {row["email"].lower() for row in csv.DictReader((ROOT / "examples/subscribers.csv").open())}
PARAGRAPH = (
    "The committee met on Tuesday to weigh the proposal in full, and its members asked for more time to read "
    "the figures before any vote is held. Several of them said the budget left too little for repairs. "
)


def feed(now: datetime) -> bytes:
    """An RSS feed of three articles from the last days, each long enough to need no page of its own."""
    items = "".join(
        f"<item><title>Harbour story {n}</title><link>https://my-letter.example/story-{n}</link>"
        f"<guid>https://my-letter.example/story-{n}</guid>"
        f"<pubDate>{format_datetime(now - timedelta(hours=6 + 20 * n))}</pubDate>"
        f"<description><![CDATA[<p>Story {n}. {PARAGRAPH * 6}</p>]]></description></item>"
        for n in (1, 2, 3)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Harbour news</title>'
        f"<link>https://my-letter.example/</link><description>Local</description>{items}</channel></rss>"
    ).encode()


CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}


def cli(folder: Path, *args: object) -> str:
    result = run_cli(args, NO_ENV, folder)
    assert result.returncode == 0, result.stderr
    return result.stdout


def digest(folder: Path, *args: object) -> str:
    """`digest ARGS` as its own process, in `folder`."""
    command = [sys.executable, "-m", "digest.cli", *map(str, args)]
    result = subprocess.run(command, env=CLEAN_ENV, cwd=folder, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def read_mail(folder: Path) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted(folder.glob("*.eml"))]


def status(folder: Path, address: str) -> str:
    return json.loads(digest(folder, "subscribers", "show", address, "--json"))["status"]


def wait_until_up(process: subprocess.Popen[str], url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail(f"digest serve did not answer at {url} within 60 s")


def test_the_readme_walk_from_init_to_a_one_click_unsubscribe_with_no_demo_data(tmp_path, request):
    port = free_port()
    site = f"http://127.0.0.1:{port}"
    with FeedServer({"/feed.xml": Reply(body=feed(datetime.now(UTC)))}) as feeds:
        # 1. digest init my-letter
        out = cli(tmp_path, "init", "my-letter")
        folder = tmp_path / "my-letter"
        assert "wrote my-letter/digest.toml" in out
        assert sorted(p.name for p in folder.iterdir()) == [".env", "digest.toml", "templates"]

        # 2. Edit digest.toml (addresses, sections, a source) and .env (where `digest serve` is reached).
        toml = (folder / "digest.toml").read_text()
        toml = toml.replace('from_email = "newsletter@example.org"', 'from_email = "letter@my-letter.example"')
        toml = toml.replace(
            '"Your publication, street, city, postcode, country"', '"My Letter, 1 Quay Road, Harbourtown"'
        )
        toml += f'\n[[sources]]\nname = "Harbour"\nurl = "{feeds.url("/feed.xml")}"\nsection = "News"\n'
        (folder / "digest.toml").write_text(toml)
        with (folder / ".env").open("a") as env:
            env.write(f"DIGEST_BASE_URL={site}\n")

        # 3. digest subscribers import people.csv, then digest run --once, inside the folder.
        people = tmp_path / "people.csv"
        people.write_text("email,name\nann@my-letter.example,Ann\nbo@my-letter.example,Bo\n")
        result = run_cli(["subscribers", "import", people], NO_ENV, folder)
        assert result.returncode == 0, result.stderr
        assert f"created a new, empty store {folder / 'var' / 'digest.db'}" in result.stderr
        assert "2 added" in result.stdout
        out = cli(folder, "run", "--once")
        assert "gathered 1/1 sources: 3 new" in out and "this send 2 recipients in 1 batch: sent 2," in out
        slug = re.search(r"outbox mail: .*/var/outbox/(\S+)/", out)[1]
        issue_mail = read_mail(folder / "var" / "outbox" / slug)
        assert sorted(m["To"].addresses[0].addr_spec for m in issue_mail) == [
            "ann@my-letter.example",
            "bo@my-letter.example",
        ]
        assert all(m["Subject"].startswith("Harbour story") for m in issue_mail)  # the top headline alone
        assert all("Meridian" not in m.as_string() for m in issue_mail)

    # 4. digest serve, a real process started in the folder.
    browser = request.getfixturevalue("browser")  # Chromium from here on (see the module's docstring)
    serve = [sys.executable, "-m", "digest.cli", "serve", "--port", str(port)]
    process = subprocess.Popen(serve, env=CLEAN_ENV, cwd=folder, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_up(process, site)
        # 5. A reader finds the publication's page and signs up in Chromium.
        page = browser.new_page()
        page.goto(site)
        assert "My Letter" in page.title() + page.content()
        page.click("#subscribe")
        page.fill("#email", "Cy@My-Letter.example")
        page.fill("#name", "Cy")
        page.click("button[type=submit]")
        page.wait_for_selector("#status")
        assert "Check your inbox" in page.content()
        assert status(folder, "cy@my-letter.example") == "pending"

        # 6. The confirm link from the mail in the outbox, opened and confirmed.
        [link] = confirm_links(folder / "var" / "outbox")
        assert link.startswith(site)
        page.goto(link)
        page.click("#confirm")
        page.wait_for_selector("#status")
        assert page.locator("#status").inner_text().startswith("Thank you")
        page.screenshot(path=str(ARTIFACTS / "readme-walk-confirmed.png"))
        assert status(folder, "cy@my-letter.example") == "active"

        # 7. A reader of the issue leaves with one click: the POST of RFC 8058 to the URL in its mail.
        [ann_mail] = [m for m in issue_mail if m["To"].addresses[0].addr_spec == "ann@my-letter.example"]
        assert ann_mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        one_click = re.search(r"<(https?://[^>]+)>", ann_mail["List-Unsubscribe"])[1]
        assert one_click.startswith(site)
        answer = httpx.post(one_click, content=b"List-Unsubscribe=One-Click",
                            headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert status(folder, "ann@my-letter.example") == "unsubscribed"
        assert status(folder, "bo@my-letter.example") == "active"
        # ... and a send now plans nobody twice and nobody who left.
        assert "already sent to 2 recipients; nothing to do" in digest(folder, "send")

        # 8. The public pages show this publication's issue alone.
        for path in ("/", "/issues", "/issues/feed.xml"):
            text = httpx.get(site + path, timeout=10).text
            assert "My Letter" in text and "Meridian" not in text, path
        page.close()
    finally:
        process.terminate()
        process.communicate(timeout=20)

    # No demo data anywhere: the store holds our readers and articles alone, the folder our files alone.
    listed = digest(folder, "subscribers", "list", "--json").splitlines()
    addresses = {json.loads(line)["email"] for line in listed}
    assert addresses == {"ann@my-letter.example", "bo@my-letter.example", "cy@my-letter.example"}
    assert not addresses & DEMO_ADDRESSES
    articles = [json.loads(line) for line in digest(folder, "articles", "list", "--json").splitlines()]
    assert sorted(a["title"] for a in articles) == ["Harbour story 1", "Harbour story 2", "Harbour story 3"]
    assert sorted(p.name for p in folder.iterdir()) == [".env", "digest.toml", "templates", "var"]
