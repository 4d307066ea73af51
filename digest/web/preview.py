"""The editor's preview: /preview (this week's draft) and /preview/{slug} (any stored issue).

The e-mail is shown in a frame exactly as rendered and stored, with sample values in the
per-recipient placeholders; the page around it gives the subject, preheader, size, a plain-text tab,
the issue's articles with the editor's changes (leave out, put back, pin, edit a summary), a rebuild
button, and for a sent issue its figures from the provider's events. Every route here is for
editors only (digest.web.access).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from digest.config import PACKAGED_TEMPLATES
from digest.email import placeholders
from digest.email.render import GMAIL_CLIP_BYTES, GMAIL_CLIP_KB
from digest.errors import DigestError, NothingToSend
from digest.jobs import draft
from digest.jobs.figures import figures_of
from digest.jobs.issues import find_issue
from digest.jobs.local import issue_waves
from digest.jobs.weekly import build
from digest.locale import N_
from digest.store.models import Issue
from digest.web.access import COOKIE as EDITOR_COOKIE
from digest.web.access import csrf_problem, editor_problem
from digest.web.csrf import with_csrf
from digest.web.deps import BadForm, core_of, read_form
from digest.web.pages import editor_message, page
from digest.web.security import email_csp

router = APIRouter()
VIEWS = {"desktop": 640, "mobile": 375, "text": None}
# An issue's statuses, which the preview shows translated (`| translated`).
STATUSES = (N_("draft"), N_("sending"), N_("sent"))
SCRIPT = PACKAGED_TEMPLATES / "web" / "static" / "preview.js"


def _not_found(request: Request, slug: str) -> HTMLResponse:
    return editor_message(request, 404, N_("No such issue"), f"There is no stored issue {slug!r}.", back="/preview")


def _view(value: str | None) -> str:
    return value if value is not None and value in VIEWS else "desktop"


@router.get("/preview", response_class=HTMLResponse)
def preview_current(request: Request) -> Response:
    if problem := editor_problem(request):
        return problem
    issue = draft.current_issue(core_of(request))
    if issue is None:
        return with_csrf(request, lambda token: page(request, "preview_empty.html", csrf_token=token))
    return RedirectResponse(f"/preview/{issue.slug}", 303)


@router.post("/preview/build", response_class=HTMLResponse)
async def build_current(request: Request) -> Response:
    if problem := editor_problem(request):
        return problem
    form = await _form(request)
    if isinstance(form, Response):
        return form
    try:
        issue = await run_in_threadpool(build, core_of(request), None)
    except NothingToSend as exc:
        return editor_message(request, 200, N_("Nothing to build yet"), str(exc), back="/preview")
    except DigestError as exc:
        return editor_message(request, 400, N_("The draft could not be built"), str(exc), back="/preview")
    return RedirectResponse(f"/preview/{issue.slug}", 303)


def _page(request: Request, issue: Issue, view: str, *, error: str | None = None, status_code: int = 200) -> Response:
    core = core_of(request)
    size = len(issue.html.encode()) if issue.html else 0
    text = None
    if view == "text" and issue.text is not None:
        text = placeholders.fill_preview(
            issue.text, core.settings.base_url, core.config.issue.first_name_fallback, html_part=False
        )
    review = draft.review(core, issue)
    values: dict[str, Any] = {
        "issue": issue,
        "view": view,
        "frame_width": VIEWS[view],
        "text": text,
        "size_kb": size / 1024,
        "limit_kb": GMAIL_CLIP_KB,
        "over_limit": size > GMAIL_CLIP_BYTES,
        "articles": review.articles,
        "pending": review.pending,
        "figures": review.figures,
        "unknown": review.unknown,
        "waves": issue_waves(core, issue),
        "issues": review.issues,
        "error": error,
        "logged_in": EDITOR_COOKIE in request.cookies,
    }
    return with_csrf(
        request, lambda token: page(request, "preview.html", status_code=status_code, csrf_token=token, **values)
    )


@router.get("/preview/{slug}", response_class=HTMLResponse)
def preview_issue(request: Request, slug: str, view: str | None = None) -> Response:
    if problem := editor_problem(request):
        return problem
    issue = find_issue(core_of(request), slug)
    if issue is None:
        return _not_found(request, slug)
    return _page(request, issue, _view(view))


@router.get("/preview/{slug}/email.html", response_class=HTMLResponse)
def preview_email(request: Request, slug: str) -> Response:
    if problem := editor_problem(request):
        return problem
    core = core_of(request)
    issue = find_issue(core, slug)
    if issue is None:
        return _not_found(request, slug)
    if issue.html is None:
        return editor_message(request, 409, N_("Not rendered"), f"Issue {issue.week} is not rendered; rebuild it.")
    html = placeholders.fill_preview(
        issue.html, core.settings.base_url, core.config.issue.first_name_fallback, html_part=True
    )
    return HTMLResponse(html, headers={"Content-Security-Policy": email_csp("'self'"), "Cache-Control": "no-store"})


@router.get("/preview/{slug}/figures.json")
def preview_figures(request: Request, slug: str) -> Response:
    if problem := editor_problem(request):
        return problem
    core = core_of(request)
    issue = find_issue(core, slug)
    if issue is None:
        return JSONResponse({"error": f"there is no stored issue {slug!r}"}, 404)
    return JSONResponse(figures_of(core, issue).as_dict(), headers={"Cache-Control": "no-store"})


@router.get("/static/preview.js")
def preview_script() -> FileResponse:
    return FileResponse(SCRIPT, media_type="text/javascript", headers={"Cache-Control": "max-age=300"})


# --- the editor's changes -----------------------------------------------------------------------


async def _form(request: Request) -> FormData | Response:
    try:
        form = await read_form(request)
    except BadForm as exc:
        return editor_message(request, 400, N_("The form could not be read"), str(exc), back="/preview")
    return csrf_problem(request, form) or form


def _optional(value: object) -> str | None:
    return None if value is None else str(value)


async def _change(request: Request, slug: str, action: str, article_id: int | None = None) -> Response:
    if problem := editor_problem(request):
        return problem
    form = await _form(request)
    if isinstance(form, Response):
        return form
    core = core_of(request)
    issue = find_issue(core, slug)
    if issue is None:
        return _not_found(request, slug)
    view = _view(str(form.get("view") or ""))
    try:
        if action == "unpin":
            await run_in_threadpool(draft.pin, core, issue.id, None)
        elif action == "rebuild":
            await run_in_threadpool(draft.rebuild, core, issue)
        elif article_id is None:
            raise AssertionError(f"{action} needs an article")  # the routes below always give one
        elif action == "leave-out":
            await run_in_threadpool(draft.leave_out, core, issue.id, article_id)
        elif action == "put-back":
            await run_in_threadpool(draft.put_back, core, issue.id, article_id)
        elif action == "pin":
            await run_in_threadpool(draft.pin, core, issue.id, article_id)
        elif action == "edit":
            await run_in_threadpool(
                draft.edit_draft_article,
                core,
                issue,
                article_id,
                _optional(form.get("teaser")),
                _optional(form.get("excerpt")),
                reset=form.get("reset") is not None,
            )
    except DigestError as exc:
        issue = find_issue(core, slug) or issue
        return _page(request, issue, view, error=str(exc), status_code=400)
    anchor = "" if action == "rebuild" else "#articles"
    return RedirectResponse(f"/preview/{issue.slug}?view={view}{anchor}", 303)


@router.post("/preview/{slug}/rebuild", response_class=HTMLResponse)
async def rebuild(request: Request, slug: str) -> Response:
    return await _change(request, slug, "rebuild")


@router.post("/preview/{slug}/unpin", response_class=HTMLResponse)
async def unpin(request: Request, slug: str) -> Response:
    return await _change(request, slug, "unpin")


@router.post("/preview/{slug}/articles/{article_id}/{action}", response_class=HTMLResponse)
async def article_action(request: Request, slug: str, article_id: int, action: str) -> Response:
    if problem := editor_problem(request):
        return problem
    if action not in ("leave-out", "put-back", "pin", "edit"):
        return editor_message(request, 404, N_("No such change"), f"{action!r} is not something the preview can do.")
    return await _change(request, slug, action, article_id)
