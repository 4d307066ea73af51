"""Read a source's bytes: http(s) through one shared httpx.AsyncClient, file:// URLs and paths from disk.

Limits, all from `[gather]` in the newsletter file:

* at most `concurrency` requests in flight, and at most `per_host` to any one host;
* connect and read timeouts, and a total deadline per response, so a server that trickles a byte a
  second (never tripping the read timeout) is still cut off;
* at most `max_bytes` of body after decompression (a gzip bomb counts at its decoded size);
* at most `max_redirects` redirects;
* conditional requests: the ETag and Last-Modified of the last success go out as If-None-Match and
  If-Modified-Since, and a 304 is a success with nothing new.

Every failure is a `FetchError` whose message is one line a person can act on.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import threading
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpcore  # noqa: F401 - see below
import httpx

from digest import __version__

# httpx imports its transport (httpcore) and anyio's asyncio backend on first use: ~55 ms inside the
# first gather, before its first request. Importing them with this module moves that to start-up.
try:
    import anyio._backends._asyncio  # noqa: F401
except ImportError:  # a future anyio may move it; then it is imported on first use, as before
    pass

USER_AGENT = f"digest/{__version__} (+https://github.com/digest-builder/digest; weekly newsletter builder)"


@dataclass(frozen=True)
class FetchOptions:
    concurrency: int = 16
    per_host: int = 4
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 60.0
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5

    @classmethod
    def from_config(cls, gather) -> FetchOptions:
        return cls(
            concurrency=gather.concurrency,
            per_host=gather.per_host,
            connect_timeout=gather.connect_timeout,
            read_timeout=gather.read_timeout,
            total_timeout=gather.total_timeout,
            max_bytes=gather.max_bytes,
            max_redirects=gather.max_redirects,
        )


@dataclass(frozen=True)
class Fetched:
    body: bytes
    url: str  # after redirects
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False


class FetchError(Exception):
    pass


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB" if n >= 1024 * 1024 else f"{n} bytes"


def local_path(location: str) -> Path | None:
    """The file a location names, or None for an http(s) URL."""
    parts = urlsplit(location)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme in ("http", "https"):
        return None
    if len(parts.scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise FetchError(f"unsupported URL scheme {parts.scheme!r}; use http(s)://, file:// or a path")
    return Path(location)


def read_local(path: Path, max_bytes: int) -> Fetched:
    try:
        with path.open("rb") as handle:
            if os.fstat(handle.fileno()).st_size > max_bytes:
                raise FetchError(f"{path} is larger than {_size(max_bytes)} (max_bytes)")
            body = handle.read(max_bytes + 1)
    except IsADirectoryError:
        raise FetchError(f"{path} is a folder, not a file") from None
    except OSError as exc:
        raise FetchError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(body) > max_bytes:
        raise FetchError(f"{path} is larger than {_size(max_bytes)} (max_bytes)")
    return Fetched(body=body, url=path.resolve().as_uri())


_tls_lock = threading.Lock()
_tls: ssl.SSLContext | None = None


def tls_context() -> ssl.SSLContext:
    """httpx's default TLS settings, made once per process: loading the CA bundle takes ~40 ms."""
    global _tls
    with _tls_lock:
        if _tls is None:
            _tls = httpx.create_ssl_context()
        return _tls


def prepare_tls() -> None:
    """Load the CA bundle on a thread now, while the caller does other start-up work."""
    threading.Thread(target=tls_context, name="tls-context", daemon=True).start()


class Fetcher:
    """One client and one set of limits for a whole gather; use as `async with Fetcher(...) as f`."""

    def __init__(self, options: FetchOptions = FetchOptions(), *, transport: httpx.AsyncBaseTransport | None = None):
        self.options = options
        self._transport = transport
        self._all = asyncio.Semaphore(options.concurrency)
        self._hosts: dict[str, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(options.per_host))
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Fetcher:
        o = self.options
        self._client = httpx.AsyncClient(
            headers={"User-Agent": USER_AGENT, "Accept": _ACCEPT},
            verify=tls_context(),
            timeout=httpx.Timeout(o.read_timeout, connect=o.connect_timeout, pool=o.total_timeout),
            limits=httpx.Limits(max_connections=o.concurrency, max_keepalive_connections=o.concurrency),
            follow_redirects=True,
            max_redirects=o.max_redirects,
            transport=self._transport,
        )
        return self

    async def __aexit__(self, *exc_info) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def fetch(self, location: str, *, etag: str | None = None, last_modified: str | None = None) -> Fetched:
        path = local_path(location)
        if path is not None:
            return await asyncio.to_thread(read_local, path, self.options.max_bytes)
        assert self._client is not None, "use Fetcher as an async context manager"
        host = (urlsplit(location).hostname or "").lower()
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        # The host's slot first, so that a task waiting on a busy host holds no global slot.
        async with self._hosts[host], self._all:
            try:
                async with asyncio.timeout(self.options.total_timeout):
                    return await self._get(location, headers, etag, last_modified)
            except TimeoutError:
                raise FetchError(
                    f"no complete response within {self.options.total_timeout:g} s (total_timeout)"
                ) from None
            except httpx.TooManyRedirects:
                limit = self.options.max_redirects
                raise FetchError(f"too many redirects (more than {limit}); a redirect loop?") from None
            except httpx.ConnectTimeout:
                raise FetchError(f"could not connect within {self.options.connect_timeout:g} s") from None
            except httpx.ReadTimeout:
                wait = self.options.read_timeout
                raise FetchError(f"the server sent nothing for {wait:g} s (read_timeout)") from None
            except httpx.ConnectError as exc:
                raise FetchError(f"cannot connect to {host}: {_reason(exc)}") from None
            except httpx.DecodingError as exc:
                raise FetchError(f"the compressed response cannot be decoded: {_reason(exc)}") from None
            except httpx.RemoteProtocolError as exc:
                raise FetchError(f"the server broke off the response: {_reason(exc)}") from None
            except httpx.InvalidURL as exc:
                raise FetchError(f"invalid URL: {_reason(exc)}") from None
            except httpx.HTTPError as exc:
                raise FetchError(f"{type(exc).__name__}: {_reason(exc)}") from None

    async def _get(self, location: str, headers: dict, etag: str | None, last_modified: str | None) -> Fetched:
        max_bytes = self.options.max_bytes
        async with self._client.stream("GET", location, headers=headers) as response:
            if response.status_code == 304:
                # Read the (empty) body: a response left unread takes its keep-alive connection down
                # with it, and the next request to the host would pay for a new one (a TLS handshake).
                await response.aread()
                return Fetched(b"", str(response.url), not_modified=True, etag=etag, last_modified=last_modified)
            if response.status_code >= 400:
                raise FetchError(f"HTTP {response.status_code} {response.reason_phrase}".strip())
            if response.status_code >= 300:
                raise FetchError(f"HTTP {response.status_code} without a usable Location header")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes and "content-encoding" not in response.headers:
                raise FetchError(f"response of {_size(int(declared))} is larger than {_size(max_bytes)} (max_bytes)")
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(f"response is larger than {_size(max_bytes)} (max_bytes)")
                chunks.append(chunk)
            return Fetched(
                body=b"".join(chunks),
                url=str(response.url),
                content_type=response.headers.get("content-type"),
                etag=response.headers.get("etag"),
                last_modified=response.headers.get("last-modified"),
            )


_ACCEPT = (
    "application/feed+json, application/json;q=0.9, application/atom+xml, application/rss+xml, "
    "application/rdf+xml;q=0.9, application/xml;q=0.8, text/xml;q=0.8, text/html;q=0.7, */*;q=0.5"
)


def _reason(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__
