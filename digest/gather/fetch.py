"""Read a source's bytes: http(s) through one shared httpx.AsyncClient, file:// URLs and paths from disk.

Limits, all from `[gather]` in the newsletter file:

* at most `concurrency` requests in flight, and at most `per_host` to any one host;
* connect and read timeouts, and a total deadline per response, so a server that trickles a byte a
  second (never tripping the read timeout) is still cut off;
* at most `max_bytes` of body after decompression (a gzip bomb counts at its decoded size);
* at most `max_redirects` redirects;
* conditional requests: the ETag and Last-Modified of the last success go out as If-None-Match and
  If-Modified-Since, and a 304 is a success with nothing new.

Two kinds of address. `fetch` is for what the operator named (a source's feed URL or path, the
`digest excerpt` and `inspect-feed` inputs): any http(s) URL, file:// URL or local path. `fetch_link`
is for a URL found in a feed's content (an item's link): http(s) only, and, unless the source is marked
`internal`, only to public addresses. That check is made where the connection is opened, on every
address the host name resolves to, for the first request and for each redirect; the connection then
goes to the address that was checked, so a name cannot resolve to a public address for the check and
to 127.0.0.1 for the connection (DNS rebinding).

Every failure is a `FetchError` whose message is one line a person can act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import ssl
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import anyio
import httpcore
import httpx

from digest import __version__
from digest.config import GatherConfig
from digest.errors import DigestError

# httpx imports its transport (httpcore) and anyio's asyncio backend on first use: ~55 ms inside the
# first gather, before its first request. Importing them with this module moves that to start-up.
# A future anyio may move it; then it is imported on first use, as before.
with contextlib.suppress(ImportError):
    import anyio._backends._asyncio  # noqa: F401

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
    def from_config(cls, gather: GatherConfig) -> FetchOptions:
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


class FetchError(DigestError):
    """A source or page could not be fetched; the message is one line a person can act on."""

    http_status = 502


class RefusedFetch(FetchError):
    """A link found in a feed leads to an address we never fetch for feed content (SSRF)."""


# Never fetched on behalf of feed content: besides the private and special ranges `ipaddress` knows,
# the cloud metadata service (link-local, named apart because it is the usual target) and the
# shared address space of carrier-grade NAT, where some clouds put internal services.
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_SPECIAL = ipaddress.ip_network("192.0.0.0/24")  # IETF protocol assignments; Python 3.11 calls most of it global
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def address_refusal(address: str) -> str | None:
    """Why a link found in a feed may not be fetched from this IP address; None for a public one."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address inside an IPv6 one reaches the IPv4 host: judge the IPv4 address.
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and (reason := address_refusal(str(embedded))):
            return f"{reason} ({embedded} inside IPv6)"
    checks = (
        (ip.is_loopback, "a loopback address"),
        (ip in _METADATA, "the cloud metadata address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_unspecified, "the unspecified address"),
        (ip.is_multicast, "a multicast address"),
        (ip.version == 4 and ip in _CGNAT, "a shared (carrier-grade NAT) address"),
        (ip.version == 4 and ip in _SPECIAL, "a special-purpose address"),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "not a public address"),
    )
    return next((reason for refused, reason in checks if refused), None)


class _Refused(Exception):
    """Raised inside the connection pool; `Fetcher.fetch_link` turns it into a RefusedFetch."""

    def __init__(self, host: str, address: str, reason: str):
        super().__init__(f"{host} ({address}) is {reason}" if host != address else f"{address} is {reason}")
        self.host = host


class _PublicOnly(httpcore.AsyncNetworkBackend):
    """Resolves the host, refuses it if any of its addresses is not public, connects to a checked one."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                found = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} took more than {timeout:g} s") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror or exc}") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
        for address in addresses:
            if reason := address_refusal(address):
                raise _Refused(host, address, reason)
        last: Exception = httpcore.ConnectError(f"{host} has no address")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise _Refused(path, path, "a local socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _public_only_transport(options: FetchOptions) -> httpx.AsyncHTTPTransport:
    """httpx's own transport, its connection pool built with the checking network backend.

    httpx has no public way to choose the network backend; its transport keeps the httpcore pool in
    `_pool` (since httpx 0.18), which is replaced here by one built through httpcore's public API.
    Proxies from the environment are not used: the check must see the address actually connected to.
    """
    transport = httpx.AsyncHTTPTransport(verify=tls_context(), trust_env=False)
    if not isinstance(getattr(transport, "_pool", None), httpcore.AsyncConnectionPool):
        raise RuntimeError("this httpx version keeps no httpcore pool in _pool; the address check cannot be set up")
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=tls_context(),
        max_connections=options.concurrency,
        max_keepalive_connections=options.concurrency,
        keepalive_expiry=httpx.Limits(max_connections=None).keepalive_expiry,
        network_backend=_PublicOnly(),
    )
    return transport


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
        self._public_client: httpx.AsyncClient | None = None  # for links found in feeds: public addresses only

    def _new_client(self, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
        o = self.options
        return httpx.AsyncClient(
            headers={"User-Agent": USER_AGENT, "Accept": _ACCEPT},
            verify=tls_context(),
            timeout=httpx.Timeout(o.read_timeout, connect=o.connect_timeout, pool=o.total_timeout),
            limits=httpx.Limits(max_connections=o.concurrency, max_keepalive_connections=o.concurrency),
            follow_redirects=True,
            max_redirects=o.max_redirects,
            transport=transport,
        )

    async def __aenter__(self) -> Fetcher:
        self._client = self._new_client(self._transport)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for client in (self._client, self._public_client):
            if client is not None:
                await client.aclose()

    async def fetch(self, location: str, *, etag: str | None = None, last_modified: str | None = None) -> Fetched:
        """A location the operator named: http(s) to any address, a file:// URL or a local path."""
        path = local_path(location)
        if path is not None:
            return await asyncio.to_thread(read_local, path, self.options.max_bytes)
        if self._client is None:
            raise RuntimeError("use Fetcher as an async context manager")
        return await self._http(self._client, location, etag, last_modified)

    async def fetch_link(self, url: str, *, internal: bool = False) -> Fetched:
        """A URL found in a feed's content: http(s) only, and only to public addresses unless `internal`.

        Never a file or a local path, whatever the source: a remote feed must not read our disk.
        """
        if self._client is None:
            raise RuntimeError("use Fetcher as an async context manager")
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):
            raise RefusedFetch(f"refused to fetch {_short(url)}: only http and https links of feed items are fetched")
        if internal:
            return await self._http(self._client, url, None, None)
        if self._public_client is None:
            self._public_client = self._new_client(_public_only_transport(self.options))
        try:
            return await self._http(self._public_client, url, None, None)
        except _Refused as exc:
            start = (urlsplit(url).hostname or "").lower()
            via = "" if exc.host.lower().strip("[]") == start.strip("[]") else " (it redirects there)"
            raise RefusedFetch(
                f"refused to fetch {_short(url)}: {exc}{via}; "
                "mark the source internal = true in the newsletter file if this is intended"
            ) from None

    async def _http(
        self, client: httpx.AsyncClient, location: str, etag: str | None, last_modified: str | None
    ) -> Fetched:
        host = (urlsplit(location).hostname or "").lower()
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        # The host's slot first, so that a task waiting on a busy host holds no global slot.
        async with self._hosts[host], self._all:
            try:
                async with asyncio.timeout(self.options.total_timeout):
                    return await self._get(client, location, headers, etag, last_modified)
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
            except httpx.UnsupportedProtocol as exc:
                raise FetchError(f"unsupported URL (a redirect to another scheme?): {_reason(exc)}") from None
            except httpx.HTTPError as exc:
                raise FetchError(f"{type(exc).__name__}: {_reason(exc)}") from None

    async def _get(
        self,
        client: httpx.AsyncClient,
        location: str,
        headers: dict[str, str],
        etag: str | None,
        last_modified: str | None,
    ) -> Fetched:
        max_bytes = self.options.max_bytes
        async with client.stream("GET", location, headers=headers) as response:
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
            chunks: list[bytes] = []
            size = 0
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


def _short(url: str) -> str:
    return url if len(url) <= 200 else url[:200] + "…"


def _reason(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__
