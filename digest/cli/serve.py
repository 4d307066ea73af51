"""`digest serve`: the web app (sign-up, links from mail, web hooks, preview, archive) under uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from digest.cli.common import open_core
from digest.cli.output import err


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 picks a free one).")] = 8000,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(help="Proxies whose X-Forwarded-For to trust (comma-separated IPs), so limits see real clients."),
    ] = None,
) -> None:
    """Serve sign-up, confirmation, unsubscribe, preferences, the web hooks, the preview and the archive (uvicorn)."""
    import uvicorn

    from digest.web.app import create_app
    from digest.web.webhooks import startup_notice as webhook_notice

    core = open_core()
    application = create_app(core)
    err.print(f"serving {core.config.name} on http://{host}:{port} (public address {core.settings.base_url})")
    if notice := webhook_notice(core.settings):
        level, text = notice
        err.print(f"[bold red]WARNING: {text}[/]" if level == "warning" else text, highlight=False, soft_wrap=True)
    uvicorn.run(
        application,
        host=host,
        port=port,
        proxy_headers=forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips,
        log_level="warning",
        access_log=False,
    )
