"""Hostile feeds against the gatherer (SSRF): links inside a feed must not make us fetch internal addresses.

A feed served on loopback by a source that is *not* marked internal carries short items whose links
point at a loopback "secret page", at a redirect to it, at a host name that resolves to loopback, at
the cloud metadata address and at a file on our disk. The weekly run (gather, compose, render, send to
the outbox) goes on, and the secret is nowhere a reader or the public could see it; marked
`internal = true`, the same source does get its pages (so these tests can fail).
"""

from __future__ import annotations

import email
import json
from email import policy
from pathlib import Path

import pytest
from sqlalchemy import select

from digest.config import load_newsletter
from digest.core import build_core
from digest.gather.fetch import address_refusal
from digest.store.models import Article, Issue
from tests.cli_helpers import run_cli
from tests.conftest import SAMPLE_WEEK
from tests.fakes.feed_server import FeedServer, Reply
from tests.web_site import running_site

SECRET = "db_password=hunter2"
FILE_SECRET = "vault_token=s3cr3t-from-disk"
DATE = "Tue, 24 Nov 2026 10:00:00 +0000"  # inside SAMPLE_WEEK


def secret_page(secret: str) -> bytes:
    paragraphs = "".join(
        f"<p>Paragraph {n} of the operations notes describes the staging cluster, its backups and the "
        "people on call this week, with the steps to follow when a node stops answering.</p>"
        for n in range(6)
    )
    return (
        '<html><head><title>Operations notes</title><meta property="og:type" content="article"></head>'
        "<body><article><h1>Operations notes</h1>"
        f"<p>The staging settings are {secret} and the console listens on port 8443.</p>{paragraphs}"
        "</article></body></html>"
    ).encode()


def item(n: int, link: str) -> str:
    return (
        f'<item><title>Hostile item {n}</title><link>{link}</link><guid isPermaLink="false">hostile-{n}</guid>'
        f"<pubDate>{DATE}</pubDate><description>Feed text of item {n}.</description></item>"
    )


def feed(links: list[str]) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Hostile</title>'
        "<link>https://hostile.example/</link><description>d</description>"
        + "".join(item(n, link) for n, link in enumerate(links))
        + "</channel></rss>"
    ).encode()


@pytest.fixture
def hostile(tmp_path):
    """The loopback server: the feed, the secret page and the redirects to it; and the item links."""
    on_disk = tmp_path / "private" / "notes.html"
    on_disk.parent.mkdir()
    on_disk.write_bytes(secret_page(FILE_SECRET))
    with FeedServer({"/secret": Reply(body=secret_page(SECRET), headers={"Content-Type": "text/html"})}) as server:
        server.routes["/secret-too"] = server.routes["/secret"]
        server.routes["/redirect"] = Reply(302, headers={"Location": server.url("/secret")})
        server.routes["/redirect-to-file"] = Reply(302, headers={"Location": on_disk.as_uri()})
        links = [
            server.url("/secret"),
            server.url("/redirect"),
            f"http://localhost:{server.port}/secret-too",  # a name, not an address: refused after resolving
            f"http://2130706433:{server.port}/secret-too",  # 127.0.0.1 written as one number
            f"http://[::ffff:127.0.0.1]:{server.port}/secret-too",  # IPv4 inside IPv6
            "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            on_disk.as_uri(),
            "file:///etc/passwd",
            server.url("/redirect-to-file"),
        ]
        server.routes["/feed"] = Reply(body=feed(links), headers={"Content-Type": "application/rss+xml"})
        yield server


def newsletter_file(tmp_path: Path, feed_url: str, *, internal: bool) -> Path:
    path = tmp_path / "digest.toml"
    path.write_text(
        f"""
name = "Hostile Review"
from_email = "weekly@example.org"
postal_address = "1 Test Street, Testville"
timezone = "America/New_York"
sections = ["Reporting"]

[issue]
articles_per_section = 10
layout = "cards"  # every article in full: whatever a page gave would show in its excerpt

[gather]
connect_timeout = 2
total_timeout = 10

[[sources]]
name = "hostile"
url = "{feed_url}"
section = "Reporting"
internal = {"true" if internal else "false"}
""",
        encoding="utf-8",
    )
    return path


def run_week(cli_env: dict, tmp_path: Path, config: Path) -> dict:
    env = {**cli_env, "DIGEST_CONFIG": str(config)}
    people = tmp_path / "people.csv"
    people.write_text("email,name\nreader@example.org,Reader\n")
    assert run_cli(["subscribers", "import", str(people)], env, tmp_path).returncode == 0
    result = run_cli(["run", "--once", "--week", SAMPLE_WEEK], env, tmp_path)
    assert result.returncode == 0, result.stderr
    return env


def everything_a_reader_or_the_public_sees(settings, tmp_path: Path, config: Path) -> dict[str, str]:
    newsletter = load_newsletter(config)
    core = build_core(settings, newsletter)
    try:
        with core.sessions() as session:
            articles = session.scalars(select(Article)).all()
            stored = "\n".join(" ".join(str(getattr(a, c.key)) for c in Article.__table__.columns) for a in articles)
            issue = session.scalars(select(Issue)).one()
            issue_html, slug = issue.html or "", issue.slug
    finally:
        core.close()
    mail = [
        email.message_from_bytes(p.read_bytes(), policy=policy.default)
        for p in sorted((tmp_path / "outbox" / slug).glob("*.eml"))
    ]
    assert mail, "the issue was not sent"
    with running_site(settings, newsletter=newsletter) as site:
        archive = site.http.get(f"/issues/{slug}")
        assert archive.status_code == 200
    folder = tmp_path / "var" / "issues" / slug
    return {
        "store": stored,
        "issue": issue_html,
        "issue files": (folder / "issue.html").read_text() + (folder / "issue.txt").read_text(),
        "mail": "\n".join(p.get_content() for m in mail for p in m.walk() if not p.is_multipart()),
        "archive": archive.text,
    }


def test_links_in_a_feed_never_fetch_internal_pages_or_files_and_the_send_goes_on(hostile, settings, cli_env, tmp_path):
    config = newsletter_file(tmp_path, hostile.url("/feed"), internal=False)
    env = run_week(cli_env, tmp_path, config)

    # Not one request for an internal page reached the server: only the feed itself was fetched.
    assert {r.path for r in hostile.requests} == {"/feed"}
    seen = everything_a_reader_or_the_public_sees(settings, tmp_path, config)
    for place, text in seen.items():
        assert SECRET not in text, f"the loopback page's secret is in the {place}"
        assert FILE_SECRET not in text, f"the file's secret is in the {place}"
        assert "root:x:0:0" not in text, f"/etc/passwd is in the {place}"
    # The items keep their feed's own text and go out.
    assert "Feed text of item 0." in seen["mail"] and "Feed text of item 2." in seen["mail"]
    # A link to a file on our disk is no link for a reader either: it never reaches the mail or the archive.
    for place in ("issue", "issue files", "mail", "archive"):
        assert "file:/" not in seen[place], f"a file: link from the feed is in the {place}"

    # The refusal is on record (the pages were wanted when the items entered the draft), saying why
    # and what to do; the feed itself is not failing.
    result = run_cli(["sources", "--json"], env, tmp_path)
    (source,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert source["failing"] is False and source["last_success"] is not None
    assert source["page_failures"] >= 1
    assert "refused to fetch http://" in source["last_page_error"]
    assert "loopback address" in source["last_page_error"]
    assert "internal = true" in source["last_page_error"]


def test_an_internal_source_does_get_its_item_pages(hostile, settings, cli_env, tmp_path):
    config = newsletter_file(tmp_path, hostile.url("/feed"), internal=True)
    run_week(cli_env, tmp_path, config)

    paths = [r.path for r in hostile.requests]
    assert "/secret" in paths and "/redirect" in paths and "/secret-too" in paths
    seen = everything_a_reader_or_the_public_sees(settings, tmp_path, config)
    assert SECRET in seen["store"] and SECRET in seen["mail"]
    # Even for an intranet feed, an item's link never reads our disk, directly or by a redirect.
    for place, text in seen.items():
        assert FILE_SECRET not in text, f"the file's secret is in the {place}"
        assert "root:x:0:0" not in text, f"/etc/passwd is in the {place}"


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "127.8.9.10", "::1", "10.1.2.3", "172.16.0.5", "192.168.1.1", "169.254.169.254", "fe80::1",
     "fd00::1", "fc00::5", "0.0.0.0", "::",  # noqa: S104 "100.64.0.1", "224.0.0.1", "ff02::1", "240.0.0.1",
     "255.255.255.255", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2002:7f00:1::1", "64:ff9b::a9fe:a9fe",
     "198.18.0.1", "192.0.0.8"],
)  # fmt: skip
def test_non_public_addresses_are_refused_for_links_in_feeds(address):
    assert address_refusal(address) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::6810:85e5", "2002:5db8:d70e::1"])
def test_public_addresses_are_allowed_for_links_in_feeds(address):
    assert address_refusal(address) is None


def test_a_redirect_from_an_allowed_host_to_an_internal_one_is_refused(monkeypatch):
    """Every hop is checked where it connects: following redirects cannot get round the check.

    127.0.0.2 stands in for a public host here (loopback is all a test has), so the first hop is
    allowed; it redirects to the secret page on 127.0.0.1, which must still be refused.
    """
    import asyncio

    from digest.gather import fetch

    real = fetch.address_refusal
    monkeypatch.setattr(fetch, "address_refusal", lambda a: None if a == "127.0.0.2" else real(a))
    with FeedServer({"/secret": Reply(body=secret_page(SECRET))}) as inside:
        with FeedServer({"/story": Reply(302, headers={"Location": inside.url("/secret")})}, host="127.0.0.2") as out:
            out.routes["/fine"] = Reply(body=b"<p>A public page.</p>")

            async def fetch_both():
                async with fetch.Fetcher() as fetcher:
                    fine = await fetcher.fetch_link(out.url("/fine"))
                    with pytest.raises(fetch.RefusedFetch) as refused:
                        await fetcher.fetch_link(out.url("/story"))
                    return fine, refused.value

            fine, refused = asyncio.run(fetch_both())
        assert fine.body == b"<p>A public page.</p>"
        assert inside.requests == []  # the internal server never saw a request
        assert "refused to fetch http://127.0.0.2" in str(refused)
        assert "127.0.0.1 is a loopback address (it redirects there)" in str(refused)
