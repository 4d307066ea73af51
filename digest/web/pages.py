"""HTML pages from templates/web/ (a file of the same name under the newsletter's templates_dir replaces one)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from subscribers.confirmation import template_environment


def page(
    request: Request, template: str, *, status_code: int = 200, headers: dict | None = None, **values
) -> HTMLResponse:
    core = request.app.state.core
    env = getattr(request.app.state, "pages", None)
    if env is None:
        env = request.app.state.pages = template_environment(core, autoescape=True)
    html = env.get_template(f"web/{template}").render(newsletter=core.config, **values)
    return HTMLResponse(html, status_code=status_code, headers=headers)


def error_page(request: Request, status_code: int, title: str, message: str, **values) -> HTMLResponse:
    return page(request, "error.html", status_code=status_code, title=title, message=message, **values)
