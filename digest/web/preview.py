"""The editor's preview: /preview (this period's draft) and /preview/{slug} (any stored issue).

The e-mail is shown in a frame exactly as rendered and stored, with sample values in the
per-recipient placeholders; the page around it gives the subject, preheader, size, a plain-text tab,
the issue's articles with the editor's changes (leave out, put back, pin, edit a summary), a rebuild
button, and for a sent issue its figures from the provider's events. Every route here is for
editors only (digest.web.editor).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from digest.config import PACKAGED_TEMPLATES
from digest.delivery.sender import unknown_batches
from digest.email import placeholders
from digest.email.render import GMAIL_CLIP_BYTES
from digest.errors import DigestError, NothingToSend, UsageError
from digest.jobs import draft
from digest.jobs.articles import edit_article
from digest.jobs.figures import issue_figures
from digest.store.models import Article, Issue
from digest.web.deps import BadForm, core_of, read_form
from digest.web.editor import COOKIE as EDITOR_COOKIE
from digest.web.editor import csrf_problem, editor_problem, with_csrf
from digest.web.pages import page
from digest.web.security import email_csp

router = APIRouter()
VIEWS = {"desktop": 640, "mobile": 375, "text": None}
# Gmail clips a message beyond 102 KB; the render keeps a margin below it (GMAIL_CLIP_BYTES).
GMAIL_LIMIT_KB = 102
SCRIPT = PACKAGED_TEMPLATES / "web" / "static" / "preview.js"


def message(request: Request, status_code: int, title: str, text: str, **values) -> HTMLResponse:
    return page(request, "editor_message.html", status_code=status_code, title=title, message=text, **values)


def _issue(request: Request, slug: str) -> Issue | None:
    with core_of(request).sessions() as session:
        return draft.find_issue(session, slug)


def _not_found(request: Request, slug: str) -> HTMLResponse:
    return message(request, 404, "No such issue", f"There is no stored issue {slug!r}.", back="/preview")


def _view(value: str | None) -> str:
    return value if value in VIEWS else "desktop"


@router.get("/preview", response_class=HTMLResponse)
def preview_current(request: Request):
    if problem := editor_problem(request):
        return problem
    issue = draft.current_issue(core_of(request))
    if issue is None:
        return with_csrf(request, lambda token: page(request, "preview_empty.html", csrf_token=token))
    return RedirectResponse(f"/preview/{issue.slug}", 303)


@router.post("/preview/build", response_class=HTMLResponse)
async def build_current(request: Request):
    if problem := editor_problem(request):
        return problem
    form = await _form(request)
    if isinstance(form, Response):
        return form
    from digest.jobs.weekly import build

    try:
        issue = await run_in_threadpool(build, core_of(request), None)
    except NothingToSend as exc:
        return message(request, 200, "Nothing to build yet", str(exc), back="/preview")
    except DigestError as exc:
        return message(request, 400, "The draft could not be built", str(exc), back="/preview")
    return RedirectResponse(f"/preview/{issue.slug}", 303)


def _page(request: Request, issue: Issue, view: str, *, error: str | None = None, status_code: int = 200):
    core = core_of(request)
    size = len(issue.html.encode()) if issue.html else 0
    text = None
    if view == "text" and issue.text is not None:
        text = placeholders.fill_preview(
            issue.text, core.settings.base_url, core.config.issue.first_name_fallback, html_part=False
        )
    with core.sessions() as session:
        issues = list(session.scalars(select(Issue).order_by(Issue.window_end.desc()).limit(30)))
        figures = issue_figures(session, issue) if issue.status != "draft" else None
        unknown = unknown_batches(session, issue.id) if issue.status != "draft" else []
    values = {
        "issue": issue,
        "view": view,
        "frame_width": VIEWS[view],
        "text": text,
        "size_kb": size / 1024,
        "limit_kb": GMAIL_LIMIT_KB,
        "over_limit": size > GMAIL_CLIP_BYTES,
        "articles": draft.draft_articles(core, issue),
        "pending": draft.pending_changes(core, issue),
        "figures": figures,
        "unknown": unknown,
        "issues": issues,
        "error": error,
        "logged_in": EDITOR_COOKIE in request.cookies,
    }
    return with_csrf(
        request, lambda token: page(request, "preview.html", status_code=status_code, csrf_token=token, **values)
    )


@router.get("/preview/{slug}", response_class=HTMLResponse)
def preview_issue(request: Request, slug: str, view: str | None = None):
    if problem := editor_problem(request):
        return problem
    issue = _issue(request, slug)
    if issue is None:
        return _not_found(request, slug)
    return _page(request, issue, _view(view))


@router.get("/preview/{slug}/email.html", response_class=HTMLResponse)
def preview_email(request: Request, slug: str):
    if problem := editor_problem(request):
        return problem
    issue = _issue(request, slug)
    if issue is None:
        return _not_found(request, slug)
    if issue.html is None:
        return message(request, 409, "Not rendered", f"Issue {issue.period} is not rendered; rebuild it.")
    core = core_of(request)
    html = placeholders.fill_preview(
        issue.html, core.settings.base_url, core.config.issue.first_name_fallback, html_part=True
    )
    return HTMLResponse(html, headers={"Content-Security-Policy": email_csp("'self'"), "Cache-Control": "no-store"})


@router.get("/preview/{slug}/figures.json")
def preview_figures(request: Request, slug: str):
    if problem := editor_problem(request):
        return problem
    core = core_of(request)
    with core.sessions() as session:
        issue = draft.find_issue(session, slug)
        if issue is None:
            return JSONResponse({"error": f"there is no stored issue {slug!r}"}, 404)
        return JSONResponse(issue_figures(session, issue).as_dict(), headers={"Cache-Control": "no-store"})


@router.get("/static/preview.js")
def preview_script():
    return FileResponse(SCRIPT, media_type="text/javascript", headers={"Cache-Control": "max-age=300"})


# --- the editor's changes -----------------------------------------------------------------------


async def _form(request: Request):
    try:
        form = await read_form(request)
    except BadForm as exc:
        return message(request, 400, "The form could not be read", str(exc), back="/preview")
    return csrf_problem(request, form) or form


def _edit(core, issue: Issue, article_id: int, teaser: str | None, excerpt: str | None, reset: bool) -> None:
    if issue.status != "draft":
        raise UsageError(f"issue {issue.period} is {issue.status}; its articles can no longer change here")
    if reset:
        edit_article(core, article_id, reset=True)
        return
    with core.sessions() as session:
        article = session.get(Article, article_id)
        if article is None:
            raise UsageError(f"no article with id {article_id}")
    for name, value in (("teaser", teaser), ("excerpt", excerpt)):
        if value is not None and not value.strip():
            raise UsageError(f"the {name} must not be empty; use 'Reset' to go back to the computed one")
    # Only what the editor changed becomes an override; an untouched field keeps following the summary.
    teaser = teaser.strip() if teaser is not None and teaser.strip() != article.shown_teaser else None
    excerpt = excerpt.strip() if excerpt is not None and excerpt.strip() != article.shown_excerpt else None
    if teaser is not None or excerpt is not None:
        edit_article(core, article_id, teaser=teaser, excerpt=excerpt)


async def _change(request: Request, slug: str, action: str, article_id: int | None = None):
    if problem := editor_problem(request):
        return problem
    form = await _form(request)
    if isinstance(form, Response):
        return form
    issue = _issue(request, slug)
    if issue is None:
        return _not_found(request, slug)
    core = core_of(request)
    view = _view(str(form.get("view") or ""))
    try:
        if action == "leave-out":
            await run_in_threadpool(draft.leave_out, core, issue.id, article_id)
        elif action == "put-back":
            await run_in_threadpool(draft.put_back, core, issue.id, article_id)
        elif action == "pin":
            await run_in_threadpool(draft.pin, core, issue.id, article_id)
        elif action == "unpin":
            await run_in_threadpool(draft.pin, core, issue.id, None)
        elif action == "edit":
            teaser, excerpt = form.get("teaser"), form.get("excerpt")
            await run_in_threadpool(
                _edit,
                core,
                issue,
                article_id,
                None if teaser is None else str(teaser),
                None if excerpt is None else str(excerpt),
                form.get("reset") is not None,
            )
        elif action == "rebuild":
            await run_in_threadpool(draft.rebuild, core, issue)
    except DigestError as exc:
        issue = _issue(request, slug) or issue
        return _page(request, issue, view, error=str(exc), status_code=400)
    anchor = "" if action == "rebuild" else "#articles"
    return RedirectResponse(f"/preview/{issue.slug}?view={view}{anchor}", 303)


@router.post("/preview/{slug}/rebuild", response_class=HTMLResponse)
async def rebuild(request: Request, slug: str):
    return await _change(request, slug, "rebuild")


@router.post("/preview/{slug}/unpin", response_class=HTMLResponse)
async def unpin(request: Request, slug: str):
    return await _change(request, slug, "unpin")


@router.post("/preview/{slug}/articles/{article_id}/{action}", response_class=HTMLResponse)
async def article_action(request: Request, slug: str, article_id: int, action: str):
    if problem := editor_problem(request):
        return problem
    if action not in ("leave-out", "put-back", "pin", "edit"):
        return message(request, 404, "No such change", f"{action!r} is not something the preview can do.")
    return await _change(request, slug, action, article_id)
