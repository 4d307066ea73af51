"""The payload of a batch of one message per recipient (the outbox, SMTP), estimated from a few messages.

Building every message of a 1,000-recipient batch for `digest send --dry-run` took seconds; the messages
differ only by the recipient's address, name and placeholder values (their "weight", in UTF-8 bytes). So
a few are built: one of median weight, and the heaviest. A recipient no heavier than the median counts as
the median's message; a heavier one adds its extra weight times the steepest growth seen between the
median's message and a heavy one's (encoded words make a non-ASCII name grow more than its bytes). That
stays at or above the real total as long as a message grows with its values no faster than the sample
shows, and one long name in a batch does not inflate everyone's size.
"""

from __future__ import annotations

from collections.abc import Callable

from digest.email.message import Recipient

HEAVIEST = 3


def _weight(recipient: Recipient) -> int:
    fields = [recipient.email, recipient.name or "", recipient.unsubscribe_url, *recipient.values.values()]
    return sum(len(field.encode("utf-8", "surrogatepass")) for field in fields)


def _built(
    recipients: list[tuple[int, Recipient]], size_of: Callable[[Recipient], int], wanted: int
) -> list[tuple[int, int]]:
    """(weight, size) of the first `wanted` recipients whose message can be built (a recipient whose message
    cannot be built is refused alone when sending: skipped here, as then)."""
    found: list[tuple[int, int]] = []
    for weight, recipient in recipients:
        try:
            found.append((weight, size_of(recipient)))
        except Exception:  # noqa: S112 -- such a recipient would be refused alone and sends nothing
            continue
        if len(found) == wanted:
            break
    return found


def estimated_payload(recipients: list[Recipient], size_of: Callable[[Recipient], int]) -> int:
    """Bytes of one message per recipient, estimated from a few built messages (see the module)."""
    weighed = sorted(((_weight(r), r) for r in recipients), key=lambda pair: pair[0])
    if not weighed:
        return 0
    middle = len(weighed) // 2
    median = _built(weighed[middle:], size_of, 1) or _built(weighed[:middle][::-1], size_of, 1)
    if not median:
        return 0
    base_weight, base_size = median[0]
    slope = 1.0
    for weight, size in _built(weighed[::-1], size_of, HEAVIEST):
        if weight > base_weight:
            slope = max(slope, (size - base_size) / (weight - base_weight))
    extra = sum(weight - base_weight for weight, _ in weighed if weight > base_weight)
    return base_size * len(weighed) + int(slope * extra + 0.999)
