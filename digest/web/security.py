"""Security headers on every page (a Content-Security-Policy unless the route set its own, and friends),
and signed link tokens kept out of log lines.

Our pages run no inline script and load nothing from elsewhere. An issue's e-mail HTML, shown in the
archive and in the preview's frame, sets `EMAIL_CSP` instead: its images are on the publication's
servers and its styles are inline, and it runs no script at all.
"""

from __future__ import annotations

import logging
import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def email_csp(frame_ancestors: str = "'none'") -> str:
    return (
        "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline' https:; font-src https: data:; "
        f"form-action 'none'; base-uri 'none'; frame-ancestors {frame_ancestors}"
    )


class SecurityHeaders:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "same-origin")
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("Content-Security-Policy", PAGE_CSP)
            await send(message)

        await self.app(scope, receive, send_with_headers)


# A signed link in a log line would let anyone who reads the logs unsubscribe, confirm or read the
# preferences of that reader: paths that carry one are logged with the token replaced.
_TOKEN_PATH = re.compile(r"(/(?:confirm|unsubscribe|resubscribe|preferences)/)[^/?#\s\"']+")


def redact_tokens(text: str) -> str:
    return _TOKEN_PATH.sub(r"\1[token]", text)


class RedactTokens(logging.Filter):
    """Rewrites a record's message and arguments (uvicorn's access log passes the path as an argument)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_tokens(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_tokens(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact_tokens(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


# A logger's filter sees only its own records, not its children's: our own log calls redact themselves.
REDACTED_LOGGERS = ("uvicorn.access", "uvicorn.error")


def redact_tokens_in_logs() -> None:
    """Once per process: the filter on every logger that may see a request's path."""
    for name in REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
