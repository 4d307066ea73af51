"""The public archive: /issues (sent issues, newest first, paged), /issues/{slug} (one issue, the "view
in browser" target), /issues/feed.xml (Atom), and /manage, where the archive's neutral links lead.

An archived issue is the HTML that was sent, with the per-recipient placeholders filled by neutral
values: the unsubscribe and preferences links lead to /manage, the greeting uses the fallback name.
Rendered issues hold placeholders only, never a reader's token, so no reader's link can show here.
Only issues that are sending or sent are public; a draft answers 404 as if it did not exist.
"""

from __future__ import annotations

import re
from html import escape
from xml.etree import ElementTree

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from digest.email import placeholders
from digest.email.links import Links
from digest.jobs.issues import count_public, find_issue, public_issues
from digest.locale import N_, Language, language
from digest.store.models import Issue
from digest.web.deps import core_of
from digest.web.pages import page
from digest.web.security import email_csp

router = APIRouter()
PER_PAGE = 20
FEED_ENTRIES = 20
_BODY = re.compile(r"<body\b[^>]*>", re.I)


def neutral_values(links: Links, first_name: str) -> dict[str, str]:
    manage = links.url("manage")
    return {"unsubscribe_url": manage, "preferences_url": manage, "first_name": first_name}


def public_html(issue: Issue, links: Links, first_name: str, lang: Language | None = None) -> str:
    """The issue as sent, its placeholders filled with neutral values (`first_name`: the fallback), under a
    banner of links in the newsletter's language `lang`."""
    html = placeholders.fill(issue.html or "", neutral_values(links, first_name), html_part=True)
    say = lang.gettext if lang else str
    banner = (
        '<div style="font:14px/1.4 Helvetica,Arial,sans-serif;text-align:center;padding:10px;background:#f4f4f2">'
        f'<a href="{links.url("issues")}" style="color:#1f3a5f">{escape(say("All issues"))}</a> · '
        f'<a href="{links.url("subscribe")}" style="color:#1f3a5f">{escape(say("Subscribe"))}</a></div>'
    )
    match = _BODY.search(html)
    return html[: match.end()] + banner + html[match.end() :] if match else banner + html


def _not_found(request: Request, message: str, **details: object) -> HTMLResponse:
    """`message`, marked for the catalogs (N_), is shown translated and then filled in with `details`."""
    return page(request, "archive_missing.html", status_code=404, message=message, details=details)


@router.get("/issues", response_class=HTMLResponse)
def archive(request: Request) -> HTMLResponse:
    core = core_of(request)
    asked = request.query_params.get("page", "1")
    number = _page_number(asked)
    pages = max(1, -(-count_public(core) // PER_PAGE))
    # Checked before the query: a page number beyond any store's integer would fail there, not here.
    if number is None or number > pages:
        return _not_found(
            request,
            N_("There is no page %(page)s of the archive (it has %(pages)s)."),
            page=repr(asked[:20]),
            pages=pages,
        )
    found = public_issues(core, offset=(number - 1) * PER_PAGE, limit=PER_PAGE)
    return page(request, "archive.html", issues=found.issues, number=number, pages=pages, total=found.total)


def _page_number(value: str) -> int | None:
    """1 for a missing or non-positive number; None for anything that cannot be a page."""
    value = value.strip()
    if not value:
        return 1
    if not (value.isascii() and value.isdigit()) or len(value) > 9:
        return None
    return max(1, int(value))


@router.get("/issues/feed.xml")
def feed(request: Request) -> Response:
    core = core_of(request)
    issues = public_issues(core, limit=FEED_ENTRIES).issues
    atom = "http://www.w3.org/2005/Atom"
    ElementTree.register_namespace("", atom)

    def add(parent: ElementTree.Element, tag: str, text: str | None = None, **attrs: str) -> ElementTree.Element:
        element = ElementTree.SubElement(parent, f"{{{atom}}}{tag}", attrs)
        if text is not None:
            element.text = text
        return element

    root = ElementTree.Element(f"{{{atom}}}feed")
    add(root, "title", core.config.name)
    if core.config.tagline:
        add(root, "subtitle", core.config.tagline)
    add(root, "id", core.url("issues"))
    add(root, "link", href=core.url("issues/feed.xml"), rel="self", type="application/atom+xml")
    add(root, "link", href=core.url("issues"), rel="alternate", type="text/html")
    newest = max((i.sent_at or i.send_started_at or i.window_end for i in issues), default=None)
    add(root, "updated", (newest or core.now()).isoformat())
    author = add(root, "author")
    add(author, "name", core.config.from_name or core.config.name)
    for issue in issues:
        entry = add(root, "entry")
        add(entry, "title", issue.subject)
        add(entry, "id", core.issue_url(issue.slug))
        add(entry, "link", href=core.issue_url(issue.slug), rel="alternate", type="text/html")
        add(entry, "updated", (issue.sent_at or issue.send_started_at or issue.window_end).isoformat())
        content = issue.content or {}
        titles = ([content["top"]["title"]] if content.get("top") else []) + [
            a["title"] for s in content.get("sections", []) for a in s["articles"]
        ]
        # Atom's <summary>: the preheader and the articles' titles.
        blurb = issue.preheader or ""
        if titles:
            blurb = (blurb + "\n\n" if blurb else "") + "In this issue: " + "; ".join(titles)
        add(entry, "summary", blurb)
    body = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
    return Response(body, media_type="application/atom+xml; charset=utf-8")


@router.get("/issues/{slug}", response_class=HTMLResponse)
def issue_page(request: Request, slug: str) -> HTMLResponse:
    core = core_of(request)
    issue = find_issue(core, slug, public=True)
    if issue is None or issue.html is None:
        return _not_found(request, N_("There is no issue %(slug)s."), slug=repr(slug))
    html = public_html(issue, core.links, core.config.issue.first_name_fallback, language(core.config.language))
    return HTMLResponse(html, headers={"Content-Security-Policy": email_csp("'none'")})


@router.get("/manage", response_class=HTMLResponse)
def manage(request: Request) -> HTMLResponse:
    return page(request, "manage.html")
