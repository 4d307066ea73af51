"""The SMTP provider: one connection per batch, one message per recipient, STARTTLS or SSL.

DIGEST_SMTP_URL names the server and credentials:
    smtp://user:pass@host:587           STARTTLS, required (the password never crosses in the clear)
    smtps://user:pass@host:465          TLS from the first byte
    smtp://host:25?tls=none             no TLS: only for a relay on the same machine or a test server
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import ssl
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from digest.delivery.providers.base import BatchResult
from digest.delivery.providers.estimate import estimated_payload
from digest.email.message import OutgoingIssue, Prepared, Recipient, ensure_message_id, prepare, unbuildable
from digest.errors import ConfigError, FailureKind, ProviderError
from digest.store.models import utcnow


@dataclass(frozen=True)
class SMTPServer:
    host: str
    port: int
    tls: str  # starttls, ssl or none
    username: str | None
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> SMTPServer:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigError(
                "environment", "DIGEST_SMTP_URL", "expected smtp://user:pass@host:587 or smtps://user:pass@host:465"
            )
        tls = "ssl" if parts.scheme == "smtps" else "starttls"
        query = parse_qs(parts.query)
        if "tls" in query:
            tls = query["tls"][-1]
            if tls not in ("starttls", "ssl", "none"):
                raise ConfigError("environment", "DIGEST_SMTP_URL", f"tls={tls!r}: use starttls, ssl or none")
        try:
            port = parts.port or (465 if tls == "ssl" else 587)
        except ValueError:
            raise ConfigError("environment", "DIGEST_SMTP_URL", "the port is not a number") from None
        return cls(
            host=parts.hostname,
            port=port,
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


class _AnswerLost(Exception):
    """The whole message reached the server, and its answer did not come back: it may have been taken."""


_LEADING_DOT = re.compile(rb"(?m)^\.")


def _transmit(conn: smtplib.SMTP, sender: str, to: str, data: bytes, options: list[str]) -> None:
    """MAIL, RCPT and DATA, as `smtplib.SMTP.sendmail` sends them, but telling a failure after the whole
    message was written (`_AnswerLost`: the server may have taken it) from one before it (it did not)."""
    conn.ehlo_or_helo_if_needed()
    code, answer = conn.mail(sender, options)
    if code != 250:
        _reset(conn)
        raise smtplib.SMTPSenderRefused(code, answer, sender)
    code, answer = conn.rcpt(to)
    if code not in (250, 251):
        _reset(conn)
        raise smtplib.SMTPRecipientsRefused({to: (code, answer)})
    code, answer = conn.docmd("data")
    if code != 354:
        _reset(conn)
        raise smtplib.SMTPDataError(code, answer)
    body = _LEADING_DOT.sub(b"..", data)  # dot-stuffing (RFC 5321 4.5.2)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    conn.send(body + b".\r\n")
    try:
        code, answer = conn.getreply()
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        raise _AnswerLost(str(exc) or type(exc).__name__) from None
    if code != 250:
        _reset(conn)
        raise smtplib.SMTPDataError(code, answer)


def _reset(conn: smtplib.SMTP) -> None:
    """Clear a refused transaction so the next recipient can use the connection (as sendmail does)."""
    with contextlib.suppress(smtplib.SMTPServerDisconnected):
        conn.rset()


def _said(answer: bytes | str) -> str:
    text = answer.decode("utf-8", "replace") if isinstance(answer, bytes) else str(answer)
    return text.strip()[:300]


class SMTPProvider:
    name = "smtp"
    max_batch_size = 1000
    schedules_ahead = timedelta(0)  # a batch is taken only when it is due

    def __init__(self, url: str, *, timeout: float = 30.0):
        self.server = SMTPServer.from_url(url)
        self.timeout = timeout

    def connect(self) -> smtplib.SMTP:
        s = self.server
        context = ssl.create_default_context()
        try:
            if s.tls == "ssl":
                conn: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=self.timeout, context=context)
            else:
                conn = smtplib.SMTP(s.host, s.port, timeout=self.timeout)
                if s.tls == "starttls":
                    conn.ehlo()
                    if not conn.has_extn("starttls"):
                        conn.close()
                        raise ProviderError(
                            f"the SMTP server {s.host}:{s.port} does not offer STARTTLS; use smtps:// or, "
                            "for a local relay only, add ?tls=none to DIGEST_SMTP_URL",
                            kind=FailureKind.STOP,
                        )
                    conn.starttls(context=context)
            if s.username:
                conn.login(s.username, s.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise ProviderError(
                f"the SMTP server refused the login ({exc.smtp_code}); check the user and password in DIGEST_SMTP_URL",
                kind=FailureKind.STOP,
            ) from None
        except ssl.SSLError as exc:
            raise ProviderError(f"TLS with {s.host}:{s.port} failed: {exc}", kind=FailureKind.STOP) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise ProviderError(
                f"cannot reach the SMTP server {s.host}:{s.port}: {exc}", kind=FailureKind.TRANSIENT
            ) from None
        return conn

    def greeting(self) -> str:
        """Connect, EHLO and, as a send would, STARTTLS and log in; returns the first line of the server's
        EHLO answer (its name). For `digest doctor`: a failure raises ProviderError as a send's would."""
        where = f"{self.server.host}:{self.server.port}"
        conn = self.connect()
        try:
            code, answer = conn.ehlo()
        except (smtplib.SMTPException, OSError) as exc:
            conn.close()
            raise ProviderError(
                f"the SMTP server {where} broke the connection at EHLO: {exc}", kind=FailureKind.TRANSIENT
            ) from None
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()
        if code != 250:
            raise ProviderError(
                f"the SMTP server {where} answered EHLO with {code} {_said(answer)}", kind=FailureKind.STOP
            )
        return (_said(answer).splitlines() or [where])[0]

    def send_batch(self, issue: OutgoingIssue, recipients: list[Recipient], *, batch_id: int) -> BatchResult:
        result = BatchResult()
        if not recipients:
            return result
        conn = self.connect()
        try:
            for recipient in recipients:
                try:
                    prepared = prepare(issue, recipient, now=utcnow())
                    data = prepared.data("\r\n")
                except Exception as exc:  # whatever one recipient's data does, the others still go
                    result.refused[recipient.person_id] = unbuildable(exc)
                    continue
                reason = self._send_one(conn, prepared, data, result, recipient.person_id)
                if reason is None:
                    result.sent[recipient.person_id] = prepared.message["Message-ID"]
                else:
                    result.refused[recipient.person_id] = reason
        finally:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()
        return result

    def _send_one(
        self, conn: smtplib.SMTP, prepared: Prepared, data: bytes, result: BatchResult, person_id: int
    ) -> str | None:
        """None when the server took the message; the reason when it refused this one recipient.
        Anything that concerns the connection raises ProviderError, carrying what went out before."""
        options: list[str] = []
        try:
            if prepared.smtputf8:
                conn.ehlo_or_helo_if_needed()  # the server's extensions are known only after EHLO
                if not conn.has_extn("smtputf8"):
                    return "the address is internationalized and the SMTP server does not offer SMTPUTF8"
                options = ["SMTPUTF8", "BODY=8BITMIME"]
            _transmit(conn, prepared.envelope_from, prepared.envelope_to, data, options)
        except smtplib.SMTPRecipientsRefused as exc:
            code, answer = next(iter(exc.recipients.values()), (0, b""))
            return f"the SMTP server refused the address ({code} {_said(answer)})"
        except smtplib.SMTPResponseException as exc:
            if 500 <= exc.smtp_code < 600:
                return f"the SMTP server refused the message ({exc.smtp_code} {_said(exc.smtp_error)})"
            raise ProviderError(
                f"the SMTP server deferred a message ({exc.smtp_code} {exc.smtp_error!r})",
                kind=FailureKind.TRANSIENT,
                sent=result.sent,
                refused=result.refused,
            ) from None
        except _AnswerLost as exc:
            # At most once: the server may have taken this message, so it is not sent again; the rest
            # of the batch goes on a new connection.
            result.refused[person_id] = (
                f"the connection broke after the whole message was sent, before the server answered ({exc}): "
                "it may have been delivered, so it is not sent again"
            )
            raise ProviderError(
                f"the SMTP connection broke while waiting for the server's answer after {len(result.sent)} messages",
                kind=FailureKind.TRANSIENT,
                sent=result.sent,
                refused=result.refused,
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise ProviderError(
                f"the SMTP connection broke after {len(result.sent)} messages: {exc}",
                kind=FailureKind.TRANSIENT,
                sent=result.sent,
                refused=result.refused,
            ) from None
        return None

    def payload_size(self, issue: OutgoingIssue, recipients: list[Recipient], *, batch_id: int) -> int:
        now = utcnow()
        return estimated_payload(recipients, lambda recipient: len(prepare(issue, recipient, now=now).data("\r\n")))

    def send_transactional(self, message: EmailMessage) -> str | None:
        message_id = ensure_message_id(message)
        conn = self.connect()
        try:
            conn.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise ProviderError(
                f"the SMTP server refused {', '.join(exc.recipients)}", kind=FailureKind.REFUSED
            ) from None
        except smtplib.SMTPNotSupportedError as exc:  # an internationalized address, a server without SMTPUTF8
            raise ProviderError(f"the SMTP server cannot take this message: {exc}", kind=FailureKind.REFUSED) from None
        except smtplib.SMTPResponseException as exc:
            kind = FailureKind.REFUSED if exc.smtp_code >= 500 else FailureKind.TRANSIENT
            raise ProviderError(f"the SMTP server answered {exc.smtp_code} {exc.smtp_error!r}", kind=kind) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise ProviderError(f"the SMTP connection broke: {exc}", kind=FailureKind.TRANSIENT) from None
        finally:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()
        return message_id

    def new_schedule_id(self) -> str:
        raise ProviderError(f"{self.name} does not schedule sends ahead", kind=FailureKind.REFUSED)

    def cancel_scheduled(self, schedule_id: str) -> None:
        raise ProviderError(f"{self.name} does not schedule sends ahead", kind=FailureKind.REFUSED)

    def close(self) -> None:
        pass
