"""The front page: the newsletter's name and tagline, the way to sign up, and the latest issues."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from digest.jobs.issues import public_issues
from digest.web.deps import core_of
from digest.web.pages import page

router = APIRouter()
LATEST = 5


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> HTMLResponse:
    latest = public_issues(core_of(request), limit=LATEST)
    return page(request, "home.html", issues=latest.issues, total=latest.total)
