"""Quick ways to fill a test store: many subscribers in one statement, and a rendered issue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.orm import Session

from digest.store.models import Issue
from subscribers.models import Subscriber

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)

HTML = (
    "<!doctype html><html><body><p>Hello %%first_name%%,</p><p>Caf\u00e9 diplomacy this week.</p>"
    '<a href="%%unsubscribe_url%%">Unsubscribe</a> <a href="%%preferences_url%%">Preferences</a></body></html>'
)
TEXT = "Hello %%first_name%%,\n\nCaf\u00e9 diplomacy this week.\n\nUnsubscribe: %%unsubscribe_url%%\n"


def address(i: int) -> str:
    return f"reader{i:07d}@example.org"


def subscriber_row(email: str, name: str | None) -> dict:
    """An active, confirmed subscriber as an INSERT row, stored as it is (no entry checks)."""
    return {
        "email": email,
        "name": name,
        "status": "active",
        "consent_source": "import",
        "consent_at": NOW,
        "confirmed_at": NOW,
        "preferences": {},
        "created_at": NOW,
        "updated_at": NOW,
    }


def seed_subscribers(session: Session, count: int, *, start: int = 1, chunk: int = 10_000) -> None:
    for first in range(start, start + count, chunk):
        rows = [
            subscriber_row(address(i), f"Reader {i}" if i % 3 else None)
            for i in range(first, min(first + chunk, start + count))
        ]
        session.execute(insert(Subscriber), rows)


def make_issue(session: Session, week: str = "2026-W48", *, subject: str = "The Meridian Review: caf\u00e9s") -> Issue:
    issue = Issue(
        week=week,
        slug=week.lower(),
        status="draft",
        window_start=NOW - timedelta(days=7),
        window_end=NOW,
        subject=subject,
        content={},
        html=HTML,
        text=TEXT,
        rendered_at=NOW,
        created_at=NOW,
    )
    session.add(issue)
    session.flush()
    return issue


def sendgrid_send_env(
    cli_env: dict[str, str], settings, fake, tmp_path, *, subscribers: int, timeout_seconds: int | None = None
) -> dict[str, str]:
    """The environment of a real `digest send` against the fake SendGrid: `subscribers` readers, the
    sample week's issue rendered, batches of 100, quick backoff, and optionally a short answer timeout."""
    from digest.config import load_newsletter
    from digest.core import build_core
    from tests.conftest import EXAMPLE_CONFIG, SAMPLE_WEEK

    config = tmp_path / "digest.toml"
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    text = text.replace("batch_size = 1000", "batch_size = 100").replace(
        "backoff_seconds = 1.0", "backoff_seconds = 0.01"
    )
    if timeout_seconds is not None:
        text = text.replace("request_timeout_seconds = 30", f"request_timeout_seconds = {timeout_seconds}")
        assert f"request_timeout_seconds = {timeout_seconds} " in text
    config.write_text(text, encoding="utf-8")
    core = build_core(settings, load_newsletter(config))
    with core.sessions.begin() as session:
        seed_subscribers(session, subscribers)
        make_issue(session, SAMPLE_WEEK)
    core.close()
    return {**cli_env, "DIGEST_CONFIG": str(config), **fake.env()}
