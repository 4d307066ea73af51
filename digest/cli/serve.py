"""`digest serve`: the web app (sign-up, links from mail, web hooks, preview, archive) under uvicorn."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from digest.cli.common import LogFormatOption, open_core
from digest.logs import setup_logging

log = logging.getLogger("digest.serve")


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 picks a free one).")] = 8000,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(help="Proxies whose X-Forwarded-For to trust (comma-separated IPs), so limits see real clients."),
    ] = None,
    log_format: LogFormatOption = "text",
) -> None:
    """Serve sign-up, confirmation, unsubscribe, preferences, the web hooks, the preview and the archive (uvicorn).

    Logs on stderr with each line's time (UTC) and level, uvicorn's lines too; --log-format json for a collector."""
    import uvicorn

    from digest.web.app import create_app
    from digest.web.webhooks import startup_notice as webhook_notice

    # The digest's own lines and uvicorn's start and stop at INFO; other libraries' from WARNING.
    setup_logging(log_format, logging.WARNING, digest_level=logging.INFO)
    core = open_core()
    application = create_app(core)
    log.info("serving %s on http://%s:%d (public address %s)", core.config.name, host, port, core.settings.base_url)
    if notice := webhook_notice(core.settings):
        level, text = notice
        log.log(logging.WARNING if level == "warning" else logging.INFO, "%s", text)
    uvicorn.run(
        application,
        host=host,
        port=port,
        proxy_headers=forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips,
        # No logging configuration of uvicorn's own: its loggers pass their lines to ours (time, level, JSON).
        log_config=None,
        log_level="info",
        # No access log: the paths of links from mail carry signed tokens.
        access_log=False,
    )
