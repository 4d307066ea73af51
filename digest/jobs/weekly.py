"""The weekly job and its steps: gather, build (article pages on demand + compose + render), send. Used by
CLI and scheduler."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from digest import shutdown
from digest.content.compose import compose_issue
from digest.content.weeks import Week
from digest.core import Digest
from digest.delivery.sender import Progress, SendReport
from digest.delivery.waves import LocalDelivery
from digest.email.render import render_issue
from digest.gather import GatherReport, SourceReport, gather_sources
from digest.jobs.pages import fetch_draft_pages
from digest.store.models import Issue

log = logging.getLogger(__name__)


@dataclass
class WeeklyReport:
    week: Week
    gather: GatherReport
    issue: Issue
    planned_batches: int
    send: SendReport
    seconds: float


def gather(core: Digest, progress: Callable[[SourceReport], None] | None = None) -> GatherReport:
    return gather_sources(core.sessions, core.config, progress=progress)


def build(core: Digest, week: Week | None, *, pin: int | None = None, unpin: bool = False) -> Issue:
    """Fetch the pages its articles want, compose and render the draft; an issue already sending or
    sent is returned as it is.

    `week=None` is the scheduled default: the window since the last sent issue (see digest.content.compose)."""
    try:
        return _build(core, week, pin=pin, unpin=unpin)
    except IntegrityError:
        # Another process (a second scheduler) created the week's issue at the same moment; the
        # unique Issue.week kept it to one row. Build again: this time the row is found.
        log.info("another process composed the same issue at the same time; using its issue")
        return _build(core, week, pin=pin, unpin=unpin)


def _build(core: Digest, week: Week | None, *, pin: int | None, unpin: bool) -> Issue:
    # The pages of the draft's short articles first, outside the draft's transaction (see digest.jobs.pages).
    fetch_draft_pages(core, week, pin=pin, unpin=unpin)
    with core.sessions.begin() as session:
        composed = compose_issue(session, core.config, week, now=core.now(), pin=pin, unpin=unpin)
        issue = composed.issue
        if composed.created or issue.html is None:
            rendered = render_issue(
                core.config,
                issue.content,
                subject=issue.subject,
                preheader=issue.preheader,
                view_url=core.issue_url(issue.slug),
                slug=issue.slug,
            )
            issue.html, issue.text, issue.mjml, issue.rendered_at = (
                rendered.html,
                rendered.text,
                rendered.mjml,
                core.now(),
            )
        return issue


def send(
    core: Digest,
    issue: Issue,
    on_batch: Callable[[Progress], None] | None = None,
    stop: threading.Event | None = None,
    local: LocalDelivery | None = None,
    stale_after: timedelta | None = None,
    on_start: Callable[[int], None] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> tuple[int, SendReport]:
    """Plan (once) and send the issue's pending batches, under the issue's send lock. With `local`, a
    plan made now puts readers into waves and only the waves that are due go (see digest.delivery.waves).

    When `stop` is set (by default: a scheduler's SIGTERM sets shutdown.requested), the batch in
    flight finishes and is recorded, then the send stops."""
    from digest.delivery.run import deliver

    return deliver(
        core.mailer(),
        issue,
        on_batch=on_batch,
        stop=stop or shutdown.requested,
        local=local,
        stale_after=stale_after,
        on_start=on_start,
        on_stage=on_stage,
    )


def run_once(
    core: Digest,
    week: Week | None,
    *,
    gather_progress: Callable[[SourceReport], None] | None = None,
    on_batch: Callable[[Progress], None] | None = None,
    stop: threading.Event | None = None,
    local: LocalDelivery | None = None,
    on_start: Callable[[int], None] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> WeeklyReport:
    """The weekly job: gather, compose, render, send. Safe to run again: nobody is mailed twice.

    A source that fails is reported in the gather report and left out: the issue is built and sent
    with what the other sources gave, never held back for one feed. The callbacks follow its progress:
    `gather_progress` each source, `on_stage` the steps after (composing, planning...), `on_start` and
    `on_batch` the send (see digest.delivery.run.deliver)."""
    started = time.monotonic()
    gathered = gather(core, progress=gather_progress)
    if on_stage:
        on_stage("composing")
    issue = build(core, week)
    planned, sent = send(core, issue, on_batch=on_batch, stop=stop, local=local, on_start=on_start, on_stage=on_stage)
    with core.sessions() as session:
        issue = session.get(Issue, issue.id) or issue
    return WeeklyReport(week or Week.parse(issue.week), gathered, issue, planned, sent, time.monotonic() - started)
