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
from sqlalchemy import and_, func, or_, select

from digest.config import NewsletterConfig, Settings, load_newsletter
from digest.core import Digest, build_core
from digest.jobs.audience import send_confirmations
from digest.web.app import create_app
from subscribers.models import ConfirmationMail
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
    # With its lifespan, as `digest serve` runs it: the confirmation sender starts and stops with it.
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(core), log_level="info" if access_log else "warning", access_log=access_log, lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    _running[Path(site_settings.outbox_dir)] = core
    try:
        with httpx.Client(base_url=url, follow_redirects=False, timeout=30) as client:
            yield Site(core, url, client)
    finally:
        _running.pop(Path(site_settings.outbox_dir), None)
        server.should_exit = True
        thread.join(10)
        sock.close()
        core.close()


# The running sites by outbox, so that reading an outbox first lets the queued confirmation mail go out.
_running: dict[Path, Digest] = {}


def settle_confirmations(outbox: Path) -> None:
    """Wait until no confirmation mail is due or being sent (the site's sender and this call share the
    queue's claims), so that the outbox holds every mail queued so far. Mail waiting for a retry later
    is not waited for."""
    core = _running.get(Path(outbox))
    if core is None:
        return
    deadline = time.monotonic() + 15
    while True:
        send_confirmations(core)
        with core.sessions() as session:
            busy = session.scalar(
                select(func.count())
                .select_from(ConfirmationMail)
                .where(
                    or_(
                        ConfirmationMail.status == "sending",
                        and_(ConfirmationMail.status == "pending", ConfirmationMail.due_at <= core.now()),
                    )
                )
            )
        if not busy:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{busy} confirmation mail(s) still queued or being sent")
        time.sleep(0.02)


def transactional_mail(outbox: Path) -> list[str]:
    settle_confirmations(outbox)
    folder = outbox / "transactional"
    return [p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.eml"))] if folder.exists() else []


def confirm_links(outbox: Path) -> list[str]:
    """The confirm link of every confirmation mail in the outbox, oldest first."""
    import email
    import re
    from email import policy

    settle_confirmations(outbox)
    links = []
    folder = outbox / "transactional"
    for path in sorted(folder.glob("*.eml")) if folder.exists() else []:
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        text = message.get_body(("plain",)).get_content()
        links += re.findall(r"https?://\S+/confirm/\S+", text)
    return links
