"""Read a source's bytes: http(s) through httpx, file:// URLs and local paths from disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from digest import __version__

USER_AGENT = f"digest/{__version__} (+https://github.com/digest-builder/digest; weekly newsletter builder)"
MAX_BYTES = 10 * 1024 * 1024


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


def local_path(location: str) -> Path | None:
    """The file a location names, or None for a network URL."""
    parts = urlsplit(location)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme in ("http", "https"):
        return None
    if len(parts.scheme) > 1:
        raise FetchError(f"unsupported URL scheme {parts.scheme!r}; use http(s), file:// or a path")
    return Path(location)


def fetch(
    location: str,
    *,
    client: httpx.Client | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
    max_bytes: int = MAX_BYTES,
) -> Fetched:
    path = local_path(location)
    if path is not None:
        try:
            if path.stat().st_size > max_bytes:
                raise FetchError(f"{path} is larger than {max_bytes // (1024 * 1024)} MB")
            return Fetched(body=path.read_bytes(), url=path.resolve().as_uri())
        except OSError as exc:
            raise FetchError(f"cannot read {path}: {exc.strerror or exc}") from None
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    own_client = client is None
    client = client or new_client()
    try:
        with client.stream("GET", location, headers=headers) as response:
            if response.status_code == 304:
                return Fetched(b"", str(response.url), not_modified=True, etag=etag, last_modified=last_modified)
            if response.status_code >= 400:
                raise FetchError(f"HTTP {response.status_code} {response.reason_phrase}")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(f"response is larger than {max_bytes // (1024 * 1024)} MB")
                chunks.append(chunk)
            return Fetched(
                body=b"".join(chunks),
                url=str(response.url),
                content_type=response.headers.get("content-type"),
                etag=response.headers.get("etag"),
                last_modified=response.headers.get("last-modified"),
            )
    except httpx.TooManyRedirects:
        raise FetchError("too many redirects (more than 5)") from None
    except httpx.TimeoutException:
        raise FetchError("timed out") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"{type(exc).__name__}: {exc}") from None
    finally:
        if own_client:
            client.close()


def new_client() -> httpx.Client:
    return httpx.Client(
        headers={"User-Agent": USER_AGENT},
        timeout=httpx.Timeout(30.0, connect=10.0),
        follow_redirects=True,
        max_redirects=5,
    )
