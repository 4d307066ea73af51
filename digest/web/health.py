"""Probes for a process manager, a load balancer or an orchestrator.

`/healthz` says the process is up and answering: it touches nothing, so a store that is down does not
get the web processes restarted (a restart would not bring the store back). `/readyz` says whether this
process can serve what needs the store: the store answers and is at this code's migration head; a load
balancer sends traffic only to instances that answer it 200.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from digest.jobs.maintenance import readiness
from digest.web.deps import core_of

router = APIRouter()
# Probes are asked every few seconds: never cached on the way, and never kept by a proxy.
NO_STORE = {"Cache-Control": "no-store"}


@router.get("/healthz", include_in_schema=False)
def healthz() -> JSONResponse:
    return JSONResponse({"ok": True}, headers=NO_STORE)


@router.get("/readyz", include_in_schema=False)
def readyz(request: Request) -> JSONResponse:
    reason = readiness(core_of(request))
    if reason is not None:
        return JSONResponse({"ok": False, "reason": reason}, 503, headers={**NO_STORE, "Retry-After": "10"})
    return JSONResponse({"ok": True}, headers=NO_STORE)
