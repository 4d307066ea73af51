"""Segments: the issue as a subscriber who left some sections out gets it.

A segment is a set of left-out sections *of this issue* (a preference for a section the issue does not
have changes nothing), so subscribers whose preferences differ only in sections absent this week share
the full issue. The full issue is the segment "" and is the issue's own html/text; every other segment
that occurs among the planned recipients is rendered once into an `IssueRendering`, and each batch
carries exactly one segment (see digest.delivery.plan).

Choices:
- When the top story's section is left out, the top story goes with it and the newest remaining article
  of the first remaining section takes its place (as compose picks a top story), and the subject, which
  names the top story, is made again from the newsletter's subject template.
- A subscriber who left out every section this issue has gets no mail this week (nothing they asked for
  is in it); the plan counts them and leaves them out. They are not unsubscribed: next week's issue
  may have a section they kept.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from digest.config import NewsletterConfig
from digest.content.subject import subject_for
from digest.store.models import Issue, IssueRendering, utcnow

FULL = ""  # the segment of subscribers who left nothing out (of this issue): the issue's own rendering


def issue_sections(content: dict[str, Any]) -> list[str]:
    """The sections this issue shows, each once: the top story's, then those of its section list."""
    names: list[str] = []
    top = content.get("top") or {}
    for name in [top.get("section") or ""] + [s.get("name") or "" for s in content.get("sections", [])]:
        if name and name not in names:
            names.append(name)
    return names


def segment_key(left_out: Iterable[str]) -> str:
    """A short stable key for a set of left-out sections; "" for none."""
    names = sorted(set(left_out))
    if not names:
        return FULL
    return hashlib.sha256(json.dumps(names, ensure_ascii=False).encode()).hexdigest()[:32]


def left_out_everything(content: dict[str, Any], left_out: Iterable[str]) -> bool:
    """Whether leaving these sections out leaves no article to read."""
    names = list(left_out)
    return bool(names) and segment_content(content, names) is None


def segment_content(content: dict[str, Any], left_out: Iterable[str]) -> dict[str, Any] | None:
    """The content without the left-out sections; None when no article would be left."""
    gone = set(left_out)
    result = copy.deepcopy(content)
    sections = [s for s in result.get("sections", []) if s.get("name") not in gone and s.get("articles")]
    top = result.get("top")
    if top is not None and (top.get("section") or "") in gone:
        top = None
        if sections:
            # The first remaining article becomes the top story, as compose would have picked it.
            first = sections[0]
            top, first["articles"] = first["articles"][0], first["articles"][1:]
            sections = [s for s in sections if s["articles"]]
    if top is None and not sections:
        return None
    result["top"], result["sections"] = top, sections
    return result


@dataclass(frozen=True)
class SegmentRendering:
    """The issue as one segment gets it."""

    subject: str
    preheader: str
    html: str
    text: str


# (issue, sections left out) -> the rendering, or None when nothing would be left: what delivery is given
# (digest.core binds the newsletter's config and the issue's view URL).
RenderSegment = Callable[[Issue, list[str]], SegmentRendering | None]


def render_segment(
    config: NewsletterConfig, issue: Issue, left_out: list[str], *, view_url: str
) -> SegmentRendering | None:
    """The issue without the `left_out` sections; None when nothing would be left."""
    content = segment_content(issue.content or {}, left_out)
    if content is None:
        return None
    same_top = (content.get("top") or {}).get("url") == ((issue.content or {}).get("top") or {}).get("url")
    subject = issue.subject if same_top else subject_for(config, content)
    preheader = issue.preheader if same_top else (content["top"] or {}).get("teaser") or ""
    # Imported here: MJML, premailer and Jinja2 are needed to render, not to plan or count segments.
    from digest.email.render import render_issue

    rendered = render_issue(config, content, subject=subject, preheader=preheader, view_url=view_url, slug=issue.slug)
    return SegmentRendering(subject, preheader, rendered.html, rendered.text)


def render_missing(sessions: sessionmaker[Session], render: RenderSegment, issue_id: int) -> int:
    """Render the issue's planned segments that have no rendering yet; returns how many were rendered.

    Each is rendered outside any transaction (it takes a tenth of a second or so) and stored by
    compare-and-set, so a send that died between the plan and here picks up where it stopped."""
    with sessions() as session:
        issue = session.get_one(Issue, issue_id)
        todo = session.execute(
            select(IssueRendering.id, IssueRendering.left_out_sections).where(
                IssueRendering.issue_id == issue_id, IssueRendering.html.is_(None)
            )
        ).all()
    done = 0
    for rendering_id, left_out in todo:
        made = render(issue, list(left_out))
        if made is None:  # the plan never gives such a segment a batch; nothing to render
            continue
        with sessions.begin() as session:
            session.execute(
                update(IssueRendering)
                .where(IssueRendering.id == rendering_id, IssueRendering.html.is_(None))
                .values(
                    subject=made.subject, preheader=made.preheader, html=made.html, text=made.text, rendered_at=utcnow()
                )
            )
        done += 1
    return done
