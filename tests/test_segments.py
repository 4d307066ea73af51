"""Preferences take effect: a subscriber who left sections out gets the issue without them. The issue is
rendered once per distinct set of left-out sections among the planned recipients, and every batch
carries one rendering. Store tests run on SQLite and PostgreSQL; the issue is composed and rendered by
the real pipeline and sent to the outbox."""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta
from email import policy

import pytest
from sqlalchemy import func, select

from digest.content.subject import clip
from digest.content.weeks import Week
from digest.delivery import run
from digest.delivery.plan import plan_batches
from digest.delivery.sender import SendOptions, send_issue
from digest.email import render as render_module
from digest.email.segments import segment_content
from digest.errors import DeliveryError
from digest.jobs.weekly import build
from digest.store.models import Batch, Delivery, IssueRendering
from subscribers import store
from subscribers.models import Subscriber
from tests.fakes.seed import NOW
from tests.test_compose import add_article

W48 = Week(2026, 48)
IN_W48 = datetime(2026, 11, 25, 12, tzinfo=UTC)
SECTIONS = ["Reporting", "Analysis", "Opinion"]


def seed_articles(core) -> dict[str, list[str]]:
    """Two articles per section; returns section -> titles (the newest Reporting one is the top story)."""
    titles: dict[str, list[str]] = {}
    with core.sessions.begin() as session:
        for hours, section in enumerate(SECTIONS * 2):
            article = add_article(
                session, section, IN_W48 - timedelta(hours=hours), title=f"{section} piece {hours} on trade"
            )
            titles.setdefault(section, []).append(article.title)
    return titles


def add_subscriber(core, name: str, excluded: list[str]) -> None:
    with core.sessions.begin() as session:
        person = Subscriber(
            email=f"{name}@example.org",
            name=name.title(),
            status="active",
            consent_source="import",
            consent_at=NOW,
            confirmed_at=NOW,
            preferences={},
        )
        session.add(person)
        session.flush()
        if excluded:
            store.set_left_out_sections(session, person, excluded, core.config.sections, now=NOW)


def outbox_by_recipient(core) -> dict[str, email.message.EmailMessage]:
    found = {}
    for path in sorted((core.settings.outbox_dir / "2026-w48").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        found[message["To"].addresses[0].addr_spec] = message
    return found


def bodies(message) -> tuple[str, str]:
    return message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()


def test_a_subscriber_without_a_section_gets_an_issue_without_it(core):
    titles = seed_articles(core)
    add_subscriber(core, "all", [])
    add_subscriber(core, "noopinion", ["Opinion"])
    add_subscriber(core, "noreporting", ["Reporting"])  # the top story's section
    add_subscriber(core, "nothing", SECTIONS)
    issue = build(core, W48)

    planned, report = run.deliver(core.mailer(), issue)

    assert report.sent == 3 and report.failed == 0 and report.not_planned == 1
    mail = outbox_by_recipient(core)
    assert sorted(mail) == ["all@example.org", "noopinion@example.org", "noreporting@example.org"]
    every_title = [t for section in SECTIONS for t in titles[section]]
    for title in every_title:
        assert all(title in part for part in bodies(mail["all@example.org"]))

    text, html = bodies(mail["noopinion@example.org"])
    for title in titles["Opinion"]:
        assert title not in text and title not in html
    for title in titles["Reporting"] + titles["Analysis"]:
        assert title in text and title in html
    compact = "".join(html.split())
    assert ">Opinion<" not in compact and ">Analysis<" in compact  # the section headings
    assert mail["noopinion@example.org"]["Subject"] == mail["all@example.org"]["Subject"]

    # Leaving out the top story's section takes the top story out too; the subject names the new one.
    text, html = bodies(mail["noreporting@example.org"])
    for title in titles["Reporting"]:
        assert title not in text and title not in html
    new_top = titles["Analysis"][0]
    assert mail["noreporting@example.org"]["Subject"] == clip(new_top)
    assert titles["Reporting"][0] in mail["all@example.org"]["Subject"]
    # Per-recipient values were filled in every rendering.
    assert "%%" not in html and "/unsubscribe/" in html

    with core.sessions() as session:
        renderings = session.scalars(select(IssueRendering).order_by(IssueRendering.id)).all()
        assert sorted(r.left_out_sections for r in renderings) == [["Opinion"], ["Reporting"]]
        assert all(r.html and r.text and r.rendered_at for r in renderings)
        segments = session.execute(select(Batch.segment).order_by(Batch.number)).scalars().all()
    assert planned == 3 and segments[0] == "" and sorted(segments[1:]) == sorted(r.segment for r in renderings)


def test_the_issue_is_rendered_once_per_distinct_set_of_left_out_sections_and_batches_do_not_mix(core, monkeypatch):
    seed_articles(core)
    preferences = [[], ["Opinion"], ["Opinion", "Analysis"], ["Analysis", "Opinion"], []]
    for i in range(25):
        add_subscriber(core, f"reader{i:02d}", preferences[i % len(preferences)])
    issue = build(core, W48)
    renders = []
    real_render = render_module.render_issue

    def counting_render(*args, **kwargs):
        renders.append(kwargs["subject"])
        return real_render(*args, **kwargs)

    monkeypatch.setattr(render_module, "render_issue", counting_render)  # segments imports it when it renders
    with core.sessions.begin() as session:
        # Batches of 2, so each segment needs several: none may hold two segments.
        assert (
            plan_batches(session, core.audience, session.get(type(issue), issue.id), batch_size=2, now=core.now())
            == 5 + 3 + 5
        )

    _, report = run.deliver(core.mailer(), issue)

    assert report.sent == 25
    assert len(renders) == 2  # without Opinion; without Analysis and Opinion (the same set, either order)
    with core.sessions() as session:
        assert session.scalar(select(func.count()).select_from(IssueRendering)) == 2
        rows = session.execute(
            select(Batch.number, Batch.segment, Subscriber.preferences)
            .join(Delivery, Delivery.batch_id == Batch.id)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        ).all()
    per_batch: dict[int, set] = {}
    for number, segment, prefs in rows:
        per_batch.setdefault(number, set()).add((segment, frozenset(prefs.get("exclude_sections", []))))
    assert all(len(kinds) == 1 for kinds in per_batch.values())
    # Within the full issue's segment, batches are filled in subscriber order.
    assert sorted(per_batch) == list(range(1, 14))
    mail = outbox_by_recipient(core)
    assert len(mail) == 25
    # Everyone with the same preferences got the same body apart from their own links.
    same = {mail[f"reader{i:02d}@example.org"]["Subject"] for i in (2, 3, 7, 8)}
    assert len(same) == 1


def test_a_preference_for_a_section_the_issue_does_not_have_changes_nothing(core):
    with core.sessions.begin() as session:
        add_article(session, "Reporting", IN_W48, title="Reporting only")
        add_article(session, "Opinion", IN_W48 - timedelta(hours=1), title="Opinion only")
    add_subscriber(core, "noanalysis", ["Analysis"])
    add_subscriber(core, "everyone", [])
    issue = build(core, W48)
    _, report = run.deliver(core.mailer(), issue)
    assert report.sent == 2
    with core.sessions() as session:
        assert session.scalar(select(func.count()).select_from(IssueRendering)) == 0
        assert session.scalars(select(Batch.segment)).all() == [""]


def test_a_send_that_died_before_rendering_renders_the_missing_segment_on_resume(core):
    seed_articles(core)
    add_subscriber(core, "all", [])
    add_subscriber(core, "noopinion", ["Opinion"])
    issue = build(core, W48)
    with core.sessions.begin() as session:
        plan_batches(session, core.audience, session.get(type(issue), issue.id), batch_size=10, now=core.now())
    # Without its rendering the sender refuses before claiming anything.
    mailer = core.mailer()
    options = SendOptions.from_config(mailer.settings)
    with pytest.raises(DeliveryError, match="no rendering for segment"):
        send_issue(
            mailer.sessions, mailer.provider, mailer.audience, run.outgoing(mailer.addresses, issue), options=options
        )
    with core.sessions() as session:
        assert set(session.scalars(select(Batch.status))) == {"pending"}

    _, report = run.deliver(core.mailer(), issue, resume=True)

    assert report.sent == 2
    text, _ = bodies(outbox_by_recipient(core)["noopinion@example.org"])
    assert "Opinion piece" not in text and "Reporting piece" in text


def test_dry_run_shows_the_segments_and_stores_nothing(core):
    seed_articles(core)
    add_subscriber(core, "all", [])
    add_subscriber(core, "noopinion", ["Opinion"])
    add_subscriber(core, "nothing", SECTIONS)
    issue = build(core, W48)
    plan = run.dry_run(core.mailer(), issue)
    assert not plan.planned and plan.recipients == 2 and plan.batches == 2
    assert [(s.left_out, s.recipients) for s in plan.segments] == [([], 1), (["Opinion"], 1)]
    assert plan.left_out_everything == 1
    with core.sessions() as session:
        assert session.scalar(select(func.count()).select_from(IssueRendering)) == 0
        assert session.scalar(select(func.count()).select_from(Batch)) == 0


def test_digest_send_prints_the_segments_in_the_dry_run_and_who_was_not_mailed(core, cli_env, monkeypatch, capsys):
    from digest.cli import main

    for key, value in cli_env.items():
        if key.startswith("DIGEST_"):
            monkeypatch.setenv(key, value)
    seed_articles(core)
    add_subscriber(core, "all", [])
    add_subscriber(core, "noopinion", ["Opinion"])
    add_subscriber(core, "nothing", SECTIONS)
    build(core, W48)
    assert main(["send", "--week", str(W48), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would plan: 2 recipients in 2 batches (nothing stored)" in out
    assert "the full issue: 1 recipients in 1 batches" in out and "without Opinion: 1 recipients in 1 batches" in out
    assert "not mailed: 1 subscribers left out every section this issue has" in out
    assert main(["send", "--week", str(W48)]) == 0
    out = capsys.readouterr().out
    assert "sent 2, failed 0" in out and "not mailed: 1 subscribers" in out
    assert main(["send", "--week", str(W48), "--dry-run"]) == 0
    assert "without Opinion: 1 recipients in 1 batches" in capsys.readouterr().out  # from the stored plan


def test_a_test_send_to_a_subscriber_shows_the_issue_as_they_get_it(core):
    titles = seed_articles(core)
    add_subscriber(core, "noopinion", ["Opinion"])
    issue = build(core, W48)
    run.send_test(core.mailer(), issue, "NoOpinion@example.org")
    [path] = (core.settings.outbox_dir / "2026-w48").glob("*.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    text, html = bodies(message)
    assert message["Subject"].startswith("[TEST] ")
    assert titles["Opinion"][0] not in html and titles["Reporting"][1] in html
    with core.sessions() as session:
        assert session.scalar(select(func.count()).select_from(IssueRendering)) == 0


# --- the content of a segment (no store) --------------------------------------------------------


def card(title: str, section: str) -> dict:
    return {"title": title, "url": f"https://example.org/{title}", "section": section}


CONTENT = {
    "top": card("top", "Reporting"),
    "sections": [
        {"name": "Reporting", "articles": [card("r1", "Reporting")]},
        {"name": "Analysis", "articles": [card("a1", "Analysis"), card("a2", "Analysis")]},
        {"name": "Opinion", "articles": [card("o1", "Opinion")]},
    ],
}


def test_leaving_out_the_top_story_section_promotes_the_first_remaining_article():
    content = segment_content(CONTENT, ["Reporting"])
    assert content["top"]["title"] == "a1"
    assert [(s["name"], [a["title"] for a in s["articles"]]) for s in content["sections"]] == [
        ("Analysis", ["a2"]),
        ("Opinion", ["o1"]),
    ]
    assert CONTENT["top"]["title"] == "top"  # the issue's own content is left as it was


def test_a_segment_that_leaves_no_article_has_no_content():
    assert segment_content(CONTENT, SECTIONS) is None
    assert segment_content(CONTENT, ["Opinion"])["top"]["title"] == "top"
