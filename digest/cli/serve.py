"""`digest serve`: the web app (sign-up, links from mail, web hooks, preview, archive) under uvicorn."""

from __future__ import annotations

import logging
import os
from typing import Annotated, Any

import typer

from digest.cli.common import LogFormatOption, open_core
from digest.logs import setup_logging

log = logging.getLogger("digest.serve")


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 picks a free one).")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes sharing the port; each has its own connections to the store. Rate limits "
            "and the confirmation queue are shared through the store (or Redis).",
        ),
    ] = 1,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(help="Proxies whose X-Forwarded-For to trust (comma-separated IPs), so limits see real clients."),
    ] = None,
    log_format: LogFormatOption = "text",
) -> None:
    """Serve sign-up, confirmation, unsubscribe, preferences, the web hooks, the preview and the archive (uvicorn).

    Logs on stderr with each line's time (UTC) and level, uvicorn's lines too; --log-format json for a collector.
    SIGTERM stops it gracefully: requests in hand are answered, and every worker finishes the mail it is sending."""
    import uvicorn

    from digest.folder import find_folder
    from digest.web.app import create_app
    from digest.web.webhooks import startup_notice as webhook_notice
    from digest.web.worker import LOG_FORMAT_VARIABLE

    # The digest's own lines and uvicorn's start and stop at INFO; other libraries' from WARNING.
    setup_logging(log_format, logging.WARNING, digest_level=logging.INFO)
    core = open_core()  # migrates the store, once, before any worker starts
    application = create_app(core)  # a bad setting stops the command here, not in every worker
    if notice := webhook_notice(core.settings):
        level, text = notice
        log.log(logging.WARNING if level == "warning" else logging.INFO, "%s", text)

    def uvicorn_config(app: object, **more: Any) -> uvicorn.Config:
        return uvicorn.Config(
            app,  # type: ignore[arg-type]
            host=host,
            port=port,
            proxy_headers=forwarded_allow_ips is not None,
            forwarded_allow_ips=forwarded_allow_ips,
            # No logging configuration of uvicorn's own: its loggers pass their lines to ours (time, level, JSON).
            log_config=None,
            log_level="info",
            # No access log: the paths of links from mail carry signed tokens.
            access_log=False,
            **more,
        )

    if workers == 1:
        config = uvicorn_config(application)
        server = uvicorn.Server(config)
        sock = config.bind_socket()
        _serving(core.config.name, host, sock.getsockname()[1], core.settings.base_url, workers)
        server.run(sockets=[sock])
        return
    from uvicorn.supervisors import Multiprocess

    # Each worker is a fresh interpreter (spawned) that builds its own core from the same folder and
    # environment: the folder chosen here (--dir or DIGEST_DIR) and the log format go with it.
    os.environ["DIGEST_DIR"] = str(find_folder()[0])
    os.environ[LOG_FORMAT_VARIABLE] = log_format
    name, base_url = core.config.name, core.settings.base_url
    core.close()  # the parent serves nothing: no connection of its own stays open
    # A worker answers the parent's health check only once it has imported the digest, which takes
    # seconds on a busy machine: uvicorn's 5 s would kill workers that are merely starting.
    config = uvicorn_config(
        "digest.web.worker:worker_app", factory=True, workers=workers, timeout_worker_healthcheck=60
    )
    sock = config.bind_socket()
    _serving(name, host, sock.getsockname()[1], base_url, workers)
    Multiprocess(config, sockets=[sock]).run()


def _serving(name: str, host: str, port: int, base_url: str, workers: int) -> None:
    each = f" with {workers} worker processes" if workers > 1 else ""
    log.info("serving %s on http://%s:%d%s (public address %s)", name, host, port, each, base_url)
