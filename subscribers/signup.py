"""Sign-up as the web hooks do it: store the consent first, then mail the confirm link."""

from __future__ import annotations

from digest.errors import DeliveryError
from subscribers import store
from subscribers.confirmation import OptIn, send_confirmation


def sign_up(
    opt_in: OptIn, address: str, name: str | None, consent: store.Consent, *, timezone: str | None = None
) -> store.SignUpResult:
    """Raises store.InvalidInput for a bad address, name or timezone and DeliveryError when the mail cannot go out."""
    with opt_in.sessions.begin() as session:
        result = store.sign_up(
            session,
            address,
            name,
            consent,
            now=opt_in.now(),
            double_opt_in=opt_in.double_opt_in,
            timezone=timezone,
        )
    # The sign-up is committed before the mail goes: a crash in between loses no consent, and its
    # claim lapses after store.CONFIRMATION_CLAIM, so a retry soon after sends the mail again. Only a
    # mail that went out starts the full resend throttle.
    if result.send_confirmation:
        try:
            send_confirmation(opt_in, result.subscriber)
        except DeliveryError:
            with opt_in.sessions.begin() as session:
                store.release_confirmation(session, result.subscriber.id)
            raise
        with opt_in.sessions.begin() as session:
            store.mark_confirmation_sent(session, result.subscriber.id, opt_in.now())
    return result
