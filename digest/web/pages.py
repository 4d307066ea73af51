"""HTML pages from templates/web/ (a file of the same name under the newsletter's templates_dir replaces one)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from digest.email.templates import template_environment
from digest.web.deps import core_of


def _environment(request: Request) -> jinja2.Environment:
    env = getattr(request.app.state, "pages", None)
    if not isinstance(env, jinja2.Environment):
        config = core_of(request).config
        env = request.app.state.pages = template_environment(config.template_dirs(), config.language)
    return env


def page(
    request: Request,
    template: str,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    **values: Any,  # the template's variables
) -> HTMLResponse:
    html = _environment(request).get_template(f"web/{template}").render(newsletter=core_of(request).config, **values)
    return HTMLResponse(html, status_code=status_code, headers=headers)


def error_page(request: Request, status_code: int, title: str, message: str, **values: Any) -> HTMLResponse:
    return page(request, "error.html", status_code=status_code, title=title, message=message, **values)


def editor_message(request: Request, status_code: int, title: str, text: str, **values: Any) -> HTMLResponse:
    """A message on the editor's pages (with a way back to where they were)."""
    return page(request, "editor_message.html", status_code=status_code, title=title, message=text, **values)
