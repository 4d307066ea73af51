"""The SendGrid provider: one v3 Mail Send request per batch, through the official `sendgrid` package.

The request body is a plain dict (the package's helper classes reverse the order of personalizations
and leak `Substitution(p=0)` into all of them). One personalization per recipient, each with the
recipient's substitutions and their own List-Unsubscribe header; a recipient whose personalization
cannot be made (an address SendGrid cannot take, substitutions over its limit) is refused alone and
the others go. SendGrid replaces each substitution key wherever it occurs in the subject and content:
the keys are `%%name%%` tokens, which no content can hold (see `digest.email.placeholders`). The body is
serialized by the
package with `json.dumps`, whose ASCII escapes keep non-ASCII text intact whatever the transport does
with bytes; SendGrid sends the parts as UTF-8.
"""

from __future__ import annotations

import functools
import html
import http.client
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any

import python_http_client.exceptions as http_errors
from sendgrid import SendGridAPIClient

from digest.delivery.providers.base import BatchResult
from digest.email import placeholders
from digest.email.message import (
    OutgoingIssue,
    Recipient,
    list_headers,
    list_unsubscribe,
    safe_display_name,
    unbuildable,
    wire_address,
)
from digest.errors import ConfigError, FailureKind, ProviderError

MAX_PERSONALIZATIONS = 1000
MAX_SUBSTITUTION_BYTES = 10_000
MAX_CATEGORIES = 10
# A Mail Send request body, as JSON: the boundary with SendGrid's API.
Body = dict[str, Any]
# Headers SendGrid sets itself and refuses in `headers`.
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "x-sg-id", "x-sg-eid", "received", "dkim-signature", "Content-Type", "Content-Transfer-Encoding",
        "To", "From", "Subject", "Reply-To", "CC", "BCC",
    )
)  # fmt: skip
# Headers of a transactional EmailMessage that the request carries in its own fields, or that SendGrid writes.
_MESSAGE_FIELDS = RESERVED_HEADERS | {"mime-version", "date", "message-id"}


# An address that `wire_address` would hand back unchanged: printable ASCII, no space, one `@` before
# a domain that holds none.
_PLAIN_ADDRESS = re.compile(r"[!-~]+@[!-?A-~]+")
_NO_ONE = Recipient(0, "", None, {}, "-")


def html_token(name: str) -> str:
    """The HTML part's own token for a value: SendGrid substitutes the same string in both parts, and a
    name such as `Tom & <Jerry>` must be escaped in HTML but not in text."""
    return f"%%{name}__html%%"


class SendGridRequestBuilder:
    """Builds Mail Send bodies for one issue: the shared part once, the personalizations per batch."""

    def __init__(
        self,
        issue: OutgoingIssue,
        *,
        categories: list[str] | tuple[str, ...] = (),
        asm_group_id: int | None = None,
    ):
        if len(categories) > MAX_CATEGORIES:
            raise ValueError(f"SendGrid takes at most {MAX_CATEGORIES} categories, got {len(categories)}")
        self.issue = issue
        html_part = issue.html
        for name in placeholders.NAMES:
            html_part = html_part.replace(placeholders.token(name), html_token(name))
        sender = {"email": issue.from_email}
        if issue.from_name:
            sender["name"] = issue.from_name
        self.shared: Body = {
            "from": sender,
            # A headline may hold a token or a line break: neither may reach SendGrid's subject.
            "subject": safe_display_name(placeholders.neutralize_text(issue.subject)),
            # text/plain must come before text/html.
            "content": [{"type": "text/plain", "value": issue.text}, {"type": "text/html", "value": html_part}],
        }
        if issue.reply_to:
            self.shared["reply_to"] = {"email": issue.reply_to}
        if headers := list_headers(issue):  # List-Id, Feedback-ID: the same for every recipient
            self.shared["headers"] = headers
        if categories:
            self.shared["categories"] = list(categories)
        if asm_group_id is not None:
            self.shared["asm"] = {"group_id": asm_group_id}
        # What follows the recipient's own URL in List-Unsubscribe (`message.list_unsubscribe`), made once.
        self._mailto = list_unsubscribe(issue, _NO_ONE)[len(_NO_ONE.unsubscribe_url) + 2 :]
        self._tokens: dict[str, tuple[str, str]] = {}  # placeholder name -> (text key, HTML key)

    def personalization(self, recipient: Recipient, custom_args: dict[str, str]) -> Body:
        """One recipient's part of the request; raises (ValueError) when it cannot be made.

        Made a million times a send: the common case (an ASCII address, values with no `%`, a plain
        name) takes the short way, and anything else the general one, with the same result."""
        email = recipient.email
        if _PLAIN_ADDRESS.fullmatch(email) is None:
            address = wire_address(email)
            if address.smtputf8:
                # SendGrid drops or refuses addresses with a non-ASCII local part (sendgrid-python#100, #119).
                raise ValueError("SendGrid does not deliver to an address whose local part is not ASCII")
            email = address.addr_spec
        substitutions: dict[str, str] = {}
        tokens = self._tokens
        size = 0
        for name, value in recipient.values.items():
            if "%" in value:
                value = placeholders.neutralize({name: value})[name]
            keys = tokens.get(name)
            if keys is None:
                keys = tokens[name] = (placeholders.token(name), html_token(name))
            escaped = html.escape(value, quote=True)
            substitutions[keys[0]] = value
            substitutions[keys[1]] = escaped
            size += len(keys[0]) + len(keys[1]) + len(value) + len(escaped)
        # A character is at most 4 bytes in UTF-8: only values that might be near the limit are measured.
        if size * 4 > MAX_SUBSTITUTION_BYTES:
            size = sum(len(k.encode()) + len(v.encode()) for k, v in substitutions.items())
            if size > MAX_SUBSTITUTION_BYTES:
                raise ValueError(
                    f"substitutions take {size} bytes, over SendGrid's {MAX_SUBSTITUTION_BYTES}; "
                    "shorten the subscriber's name or DIGEST_BASE_URL"
                )
        to = {"email": email}
        name = recipient.name or ""
        if name:
            if not (name.isascii() and name.isprintable() and "%" not in name and "  " not in name):
                name = safe_display_name(placeholders.neutralize_text(name))
            elif name[0] == " " or name[-1] == " ":
                name = name.strip()
            # SendGrid refuses a display name with a comma or semicolon; the address alone is enough.
            if name and "," not in name and ";" not in name:
                to["name"] = name
        return {
            "to": [to],
            "substitutions": substitutions,
            "headers": {
                "List-Unsubscribe": f"<{recipient.unsubscribe_url}>{self._mailto}",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
            "custom_args": custom_args,
        }

    def build(self, recipients: list[Recipient], *, batch_id: int | str) -> tuple[Body | None, dict[int, str]]:
        """(the request body, or None when no recipient is left; the refused recipients with the reason)."""
        if len(recipients) > MAX_PERSONALIZATIONS:
            raise ValueError(f"a SendGrid request takes at most {MAX_PERSONALIZATIONS} recipients")
        # Only ids: custom_args travel into every event and log, so never personal data. Two short ids
        # stay far below SendGrid's 10,000-byte custom_args limit, so that limit needs no check here.
        custom_args = {"issue_id": str(self.issue.issue_id), "batch_id": str(batch_id)}
        personalizations: list[Body] = []
        refused: dict[int, str] = {}
        seen: dict[str, int] = {}  # address -> the delivery it goes to
        for recipient in recipients:
            try:
                personalization = self.personalization(recipient, custom_args)
            except Exception as exc:  # whatever one recipient's data does, the others still go
                refused[recipient.person_id] = unbuildable(exc)
                continue
            # SendGrid refuses a whole request that names an address twice (two stored spellings of one
            # IDN address, say): the second is left out, and that reader still gets one copy.
            address = personalization["to"][0]["email"].lower()
            if address in seen:
                refused[recipient.person_id] = f"the same address as subscriber {seen[address]} in this batch"
                continue
            seen[address] = recipient.person_id
            personalizations.append(personalization)
        if not personalizations:
            return None, refused
        return {**self.shared, "personalizations": personalizations}, refused

    def body(self, recipients: list[Recipient], *, batch_id: int | str) -> Body | None:
        return self.build(recipients, batch_id=batch_id)[0]


def _error_messages(body: bytes | str | None) -> str:
    """SendGrid's own words from an error body: {"errors": [{"message": ..., "field": ...}]}."""
    if not body:
        return "no details given"
    try:
        data = json.loads(body)
        parts = []
        for error in data.get("errors", []):
            field = error.get("field")
            parts.append(f"{field}: {error.get('message')}" if field else str(error.get("message")))
        if parts:
            return "; ".join(parts)
    except (ValueError, AttributeError):
        pass
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return text.strip()[:500]


def _header(headers: object, name: str) -> str | None:
    """A header from whatever the client hands back (an HTTPMessage, a dict, or nothing)."""
    get = getattr(headers, "get", None)
    value = get(name) if callable(get) else None
    return None if value is None else str(value)


def retry_after_seconds(headers: object, now: float | None = None) -> float | None:
    """Seconds until SendGrid lets us in again: X-RateLimit-Reset is a Unix time, Retry-After seconds."""
    now = time.time() if now is None else now
    reset = _header(headers, "X-RateLimit-Reset")
    if reset:
        try:
            return max(0.0, float(reset) - now)
        except ValueError:
            pass
    after = _header(headers, "Retry-After")
    if after:
        try:
            return max(0.0, float(after))
        except ValueError:
            pass
    return None


def classify_http_error(exc: http_errors.HTTPError) -> ProviderError:
    status = exc.status_code
    details = _error_messages(exc.body)
    if status == 401:
        return ProviderError(
            f"SendGrid refused the API key (401: {details}); check DIGEST_SENDGRID_API_KEY", kind=FailureKind.STOP
        )
    if status == 429:
        return ProviderError(
            f"SendGrid rate limit (429): {details}",
            kind=FailureKind.RATE_LIMITED,
            retry_after=retry_after_seconds(exc.headers),
        )
    if status >= 500:
        return ProviderError(f"SendGrid failed ({status}): {details}", kind=FailureKind.TRANSIENT)
    return ProviderError(f"SendGrid refused the request ({status}): {details}", kind=FailureKind.REFUSED)


class SendGridProvider:
    name = "sendgrid"
    max_batch_size = MAX_PERSONALIZATIONS
    # SendGrid schedules a request up to 72 hours ahead; an hour is kept back for a slow send or a skewed clock.
    schedules_ahead = timedelta(hours=71)

    def __init__(
        self,
        api_key: str,
        *,
        host: str = "https://api.sendgrid.com",
        timeout: float = 30.0,
        categories: list[str] | tuple[str, ...] = (),
        asm_group_id: int | None = None,
    ):
        self.client = SendGridAPIClient(api_key, host=host.rstrip("/"))
        # Mail Send is posted here, not through `self.client` (see `post`), with the client's own headers.
        if urllib.parse.urlsplit(host).scheme not in ("http", "https"):
            raise ConfigError("environment", "DIGEST_SENDGRID_API_HOST", f"an http(s) URL is needed, not {host!r}")
        self._mail_send = f"{host.rstrip('/')}/v3/mail/send"
        self._headers = {**self.client.client.request_headers, "Content-Type": "application/json"}
        self._opener = urllib.request.build_opener()
        self._api_key = api_key
        self.host = host
        self.timeout = timeout
        self.categories = tuple(categories)
        self.asm_group_id = asm_group_id
        self._builder: SendGridRequestBuilder | None = None

    def portable(self) -> Callable[[], SendGridProvider]:
        """How to make this provider again in the request process (`digest.delivery.posting`)."""
        return functools.partial(
            SendGridProvider,
            self._api_key,
            host=self.host,
            timeout=self.timeout,
            categories=self.categories,
            asm_group_id=self.asm_group_id,
        )

    def builder(self, issue: OutgoingIssue) -> SendGridRequestBuilder:
        # One builder per rendering: the batches of one segment share it whatever their wave (send_at).
        if self._builder is None or not _same_rendering(self._builder.issue, issue):
            self._builder = SendGridRequestBuilder(issue, categories=self.categories, asm_group_id=self.asm_group_id)
        return self._builder

    def _call(self, what: str, request: Callable[[], Any]) -> Any:
        """One attempt at an endpoint other than Mail Send; failures classified as for Mail Send."""
        try:
            return request()
        except http_errors.HTTPError as exc:
            raise classify_http_error(exc) from None
        except urllib.error.URLError as exc:
            raise ProviderError(
                f"cannot reach SendGrid at {self.host} to {what}: {exc.reason}", kind=FailureKind.TRANSIENT
            ) from None
        except (TimeoutError, http.client.HTTPException, OSError) as exc:
            raise ProviderError(
                f"SendGrid did not answer the request to {what} ({type(exc).__name__}: {exc})",
                kind=FailureKind.UNKNOWN,
            ) from None

    def new_schedule_id(self) -> str:
        """A batch id from SendGrid (POST /v3/mail/batch), carried by every scheduled request of the issue."""
        response = self._call("create a batch id", lambda: self.client.client.mail.batch.post(timeout=self.timeout))
        try:
            found = json.loads(response.body or b"{}").get("batch_id")
        except (ValueError, AttributeError):
            found = None
        if not isinstance(found, str) or not found:
            raise ProviderError("SendGrid's answer to POST /v3/mail/batch held no batch_id", kind=FailureKind.TRANSIENT)
        return found

    def cancel_scheduled(self, schedule_id: str) -> None:
        """Cancel at SendGrid every request of this batch id that has not gone yet
        (POST /v3/user/scheduled_sends, status "cancel"). SendGrid does not promise to stop a request due
        within about ten minutes."""
        body = {"batch_id": schedule_id, "status": "cancel"}
        self._call(
            "cancel the scheduled sends",
            lambda: self.client.client.user.scheduled_sends.post(request_body=body, timeout=self.timeout),
        )

    def scopes(self) -> list[str]:
        """The API key's permissions (GET /v3/scopes): the cheapest authenticated call, for `digest doctor`.
        A refused key raises ProviderError as a send would ("SendGrid refused the API key (401: ...)")."""
        response = self._call("read the API key's scopes", lambda: self.client.client.scopes.get(timeout=self.timeout))
        try:
            found = json.loads(response.body or b"{}").get("scopes")
        except (ValueError, AttributeError):
            found = None
        if not isinstance(found, list) or not all(isinstance(scope, str) for scope in found):
            raise ProviderError(
                "SendGrid's answer to GET /v3/scopes held no list of scopes", kind=FailureKind.TRANSIENT
            )
        return found

    def post(self, body: Body | bytes) -> str | None:
        """One attempt; returns X-Message-Id, or raises ProviderError saying how to go on. `body`: the
        request, or its JSON already made (`prepare_batch` makes it before the request's turn comes).

        Posted with urllib as the `sendgrid` package does, with its headers, but not through it: its
        client encodes the body itself and formats the whole payload into a debug message on every
        request, logged or not (half a megabyte a batch).

        urllib wraps in URLError only what fails while connecting or writing the request; past that point
        (a timeout or a broken connection while waiting for the answer) SendGrid may have accepted the
        request, and there is no idempotency key to ask, so the attempt's fate is unknown."""
        data = body if isinstance(body, bytes) else _json(body)
        # The scheme is http(s), checked when the provider was made.
        request = urllib.request.Request(self._mail_send, data=data, headers=self._headers, method="POST")  # noqa: S310
        try:
            with self._opener.open(request, timeout=self.timeout) as answer:
                answer.read()
                headers = answer.headers
        except urllib.error.HTTPError as exc:
            raise classify_http_error(http_errors.handle_error(exc)) from None
        except urllib.error.URLError as exc:
            raise ProviderError(
                f"cannot reach SendGrid at {self.host}: {exc.reason}", kind=FailureKind.TRANSIENT
            ) from None
        except TimeoutError:
            raise ProviderError(
                f"SendGrid did not answer within {self.timeout:g}s after the request was sent; it may have accepted it",
                kind=FailureKind.UNKNOWN,
            ) from None
        except (http.client.HTTPException, OSError) as exc:
            raise ProviderError(
                f"the connection to SendGrid broke after the request was sent ({type(exc).__name__}: {exc}); "
                "it may have accepted it",
                kind=FailureKind.UNKNOWN,
            ) from None
        return _header(headers, "X-Message-Id")

    def send_batch(self, issue: OutgoingIssue, recipients: list[Recipient], *, batch_id: int) -> BatchResult:
        return self.prepare_batch(issue, recipients, batch_id=batch_id)()

    def prepare_batch(
        self, issue: OutgoingIssue, recipients: list[Recipient], *, batch_id: int
    ) -> Callable[[], BatchResult]:
        """The request made now, its JSON too (half of a batch's time); the call returned posts it."""
        body, refused = self.builder(issue).build(recipients, batch_id=batch_id)
        if body is None:
            return lambda: BatchResult(refused=refused)
        request = _json({**body, **_schedule(issue)})

        def send() -> BatchResult:
            try:
                message_id = self.post(request)
            except ProviderError as exc:
                exc.refused = {**refused, **exc.refused}
                raise
            refused_ids = set(refused)
            sent = {r.person_id: message_id for r in recipients if r.person_id not in refused_ids}
            return BatchResult(sent, refused)

        return send

    def payload_size(self, issue: OutgoingIssue, recipients: list[Recipient], *, batch_id: int) -> int:
        body = self.builder(issue).body(recipients, batch_id=batch_id)
        return len(_json({**body, **_schedule(issue)})) if body is not None else 0

    def send_transactional(self, message: EmailMessage) -> str | None:
        return self.post(transactional_body(message))

    def close(self) -> None:
        self._builder = None


def _json(body: Body) -> bytes:
    """A request's body as SendGrid is sent it (and as the `sendgrid` package encodes it)."""
    return json.dumps(body).encode("utf-8")


def _same_rendering(a: OutgoingIssue, b: OutgoingIssue) -> bool:
    return a is b or (a.issue_id == b.issue_id and a.html is b.html and a.text is b.text and a.subject == b.subject)


def _schedule(issue: OutgoingIssue) -> Body:
    """`send_at` (a Unix time; SendGrid takes up to 72 hours ahead) and `batch_id`, for a scheduled batch."""
    scheduled: Body = {}
    if issue.send_at is not None:
        scheduled["send_at"] = int(issue.send_at.timestamp())
    if issue.schedule_id:
        scheduled["batch_id"] = issue.schedule_id
    return scheduled


def _address(value: str) -> dict[str, str]:
    name, address = getaddresses([value])[0]
    return {"email": address, "name": name} if name else {"email": address}


def transactional_body(message: EmailMessage) -> Body:
    """One ready EmailMessage as a one-personalization Mail Send body."""
    to = [_address(a) for a in message.get_all("To", [])]
    if not to or message["From"] is None or message["Subject"] is None:
        raise ProviderError("a transactional message needs From, To and Subject", kind=FailureKind.REFUSED)
    content = []
    for subtype in ("plain", "html"):  # text/plain first
        part = message.get_body((subtype,))
        if part is not None:
            content.append({"type": f"text/{subtype}", "value": part.get_content()})
    if not content:
        raise ProviderError("a transactional message needs a text/plain or text/html part", kind=FailureKind.REFUSED)
    headers = {k: str(v) for k, v in message.items() if k.lower() not in _MESSAGE_FIELDS}
    personalization: Body = {"to": to}
    if headers:
        personalization["headers"] = headers
    body = {
        "from": _address(str(message["From"])),
        "subject": str(message["Subject"]),
        "content": content,
        "personalizations": [personalization],
    }
    if message["Reply-To"] is not None:
        body["reply_to"] = _address(str(message["Reply-To"]))
    return body
