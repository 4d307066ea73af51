"""What the routers share: the core, the caller's address, reading a form, the API's bearer auth."""

from __future__ import annotations

import hmac

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.datastructures import FormData

from digest.core import Digest


def core_of(request: Request) -> Digest:
    core: Digest = request.app.state.core  # set by create_app
    return core


def client_ip(request: Request) -> str | None:
    # Behind a proxy, `digest serve --forwarded-allow-ips` lets uvicorn put the real client here.
    return request.client.host if request.client else None


class BadForm(Exception):
    pass


async def read_form(request: Request) -> FormData:
    """urlencoded or multipart; anything else, or a broken body, is a BadForm."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind and kind not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise BadForm(f"send the form as application/x-www-form-urlencoded or multipart/form-data, not {kind}")
    try:
        return await request.form(max_files=0, max_fields=100)
    except Exception as exc:  # python-multipart and starlette raise several types for a broken body
        raise BadForm(f"the form data could not be read: {exc}") from None


def bearer_problem(request: Request) -> JSONResponse | None:
    """None when the request carries DIGEST_API_TOKEN; else the 401/403 answer to give."""
    expected = core_of(request).settings.api_token
    if expected is None or not expected.get_secret_value():
        return JSONResponse({"error": "the subscriber API is off: set DIGEST_API_TOKEN to turn it on"}, 403)
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return JSONResponse(
            {"error": "missing 'Authorization: Bearer <DIGEST_API_TOKEN>' header"},
            401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(given.strip().encode(), expected.get_secret_value().encode()):
        return JSONResponse(
            {"error": "the bearer token is wrong"}, 401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        )
    return None


__all__ = ["BadForm", "bearer_problem", "client_ip", "core_of", "read_form"]
