"""Sign-up as the web hooks do it: store the consent and queue the confirm mail, in one transaction.

The mail itself goes from the queue (subscribers.confirmation.send_due), so the request that signs up
never waits for the provider: a slow or failing provider holds no request, and a crash after the commit
loses neither the consent nor the mail.
"""

from __future__ import annotations

from sqlalchemy import Engine

from subscribers import store
from subscribers.confirmation import OptIn, queue_confirmation


def sign_up(
    opt_in: OptIn, address: str, name: str | None, consent: store.Consent, *, timezone: str | None = None
) -> store.SignUpResult:
    """Raises store.InvalidInput for a bad address, name or timezone. `send_confirmation` on the result says
    a confirm mail was queued (the throttle of store.CONFIRMATION_RESEND_AFTER starts at once)."""
    now = opt_in.now()
    # Most sign-ups are of new addresses: one statement on PostgreSQL, in autocommit (no BEGIN and
    # COMMIT round trips), one short transaction on SQLite. An address already there (pending, back
    # after leaving, active) takes the general path below.
    engine: Engine = opt_in.sessions.kw["bind"]
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            created = store.sign_up_new(
                connection, address, name, consent, now=now, double_opt_in=opt_in.double_opt_in, timezone=timezone
            )
    else:
        with engine.begin() as connection:
            created = store.sign_up_new(
                connection, address, name, consent, now=now, double_opt_in=opt_in.double_opt_in, timezone=timezone
            )
    if created is not None:
        return created
    with opt_in.sessions.begin() as session:
        result = store.sign_up(
            session, address, name, consent, now=now, double_opt_in=opt_in.double_opt_in, timezone=timezone
        )
        if result.send_confirmation:
            store.mark_confirmation_sent(session, result.subscriber.id, now)
            queue_confirmation(session, result.subscriber.id, now)
    return result
