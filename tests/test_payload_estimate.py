"""`digest send --dry-run`'s payload of a batch (outbox, SMTP): estimated from a few built messages, never
below what the batch would really put on the wire."""

from __future__ import annotations

from datetime import UTC, datetime

from digest.delivery.providers.outbox import OutboxProvider
from digest.email.message import OutgoingIssue, Recipient, prepare

ISSUE = OutgoingIssue(
    1, "2026-w48", "This week", "<p>Hello %%first_name%%</p>", "Hello %%first_name%%", "weekly@example.org",
    "The Weekly", None,
)  # fmt: skip


def reader(n: int, name: str | None) -> Recipient:
    url = f"https://news.example.org/unsubscribe/{'t' * (n % 7)}{n}"
    return Recipient(n, f"reader{n}@example.org", name, {"first_name": (name or "there").split()[0]}, url)


def exact(recipients: list[Recipient]) -> int:
    return sum(len(prepare(ISSUE, r, now=datetime(2026, 11, 30, tzinfo=UTC)).data()) for r in recipients)


def test_the_estimate_is_at_least_the_real_payload_even_with_one_long_name_in_the_batch(tmp_path):
    recipients = [reader(n, f"Reader {n}") for n in range(1, 200)]
    recipients.append(reader(200, "Maximiliana " + "Ölberg-" * 30 + "Zürich"))
    estimated = OutboxProvider(tmp_path).payload_size(ISSUE, recipients, batch_id=1)
    real = exact(recipients)
    assert real <= estimated <= real * 1.2


def test_a_recipient_whose_message_cannot_be_built_does_not_stop_the_estimate(tmp_path):
    broken = Recipient(0, "reader0@example.org", "Bad\nName", {"first_name": "x"}, "https://x.example/u")
    recipients = [broken, *(reader(n, f"Reader {n}") for n in range(1, 10))]
    estimated = OutboxProvider(tmp_path).payload_size(ISSUE, recipients, batch_id=1)
    assert estimated >= exact(recipients[1:])
