"""Security headers on every page: a Content-Security-Policy unless the route set its own, and friends.

Our pages run no inline script and load nothing from elsewhere. An issue's e-mail HTML, shown in the
archive and in the preview's frame, sets `EMAIL_CSP` instead: its images are on the publication's
servers and its styles are inline, and it runs no script at all.
"""

from __future__ import annotations

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
