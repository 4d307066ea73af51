"""A real `digest serve` for tests: uvicorn in a thread on 127.0.0.1, a port picked by the OS."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import uvicorn

from digest.config import NewsletterConfig, Settings, load_newsletter
from digest.core import Digest, build_core
from digest.web.app import create_app
from tests.conftest import EXAMPLE_CONFIG


@dataclass
class Site:
    core: Digest
    url: str
    http: httpx.Client

    def path(self, absolute_url: str) -> str:
        assert absolute_url.startswith(self.url), absolute_url
        return absolute_url[len(self.url) :]


@contextmanager
def running_site(
    settings: Settings,
    clock: Callable[[], datetime] | None = None,
    newsletter: NewsletterConfig | None = None,
    access_log: bool = False,
    migrate: bool = True,
    **overrides,
) -> Iterator[Site]:
    """The app on loopback; `newsletter` replaces the example newsletter file, `overrides` change settings;
    with migrate=False the store is left as it is (and not even connected to while the app starts)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    # Links in mail must point at this very server, so the base URL is known before the core is built.
    site_settings = Settings(_env_file=None, **{**settings.model_dump(), "base_url": url, **overrides})
    core = build_core(site_settings, newsletter or load_newsletter(EXAMPLE_CONFIG), clock=clock, migrate=migrate)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(core), log_level="info" if access_log else "warning", access_log=access_log, lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        with httpx.Client(base_url=url, follow_redirects=False, timeout=30) as client:
            yield Site(core, url, client)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        core.close()


def transactional_mail(outbox: Path) -> list[str]:
    folder = outbox / "transactional"
    return [p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.eml"))] if folder.exists() else []


def confirm_links(outbox: Path) -> list[str]:
    """The confirm link of every confirmation mail in the outbox, oldest first."""
    import email
    import re
    from email import policy

    links = []
    folder = outbox / "transactional"
    for path in sorted(folder.glob("*.eml")) if folder.exists() else []:
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        text = message.get_body(("plain",)).get_content()
        links += re.findall(r"https?://\S+/confirm/\S+", text)
    return links
