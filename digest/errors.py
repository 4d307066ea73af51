"""The exceptions the digest raises, and how they reach the user.

Every error the user can fix carries a message that names the file, key, source or input at fault
and says what to do. Library code raises them; only the edges turn them into an exit code (the CLI's
`main`) or an HTTP answer (the web app's one handler), each reading it from the class.

                           exit  HTTP
    DigestError               1   503  anything the digest reports to a person (our side failed)
    ├── UsageError            2   400  bad input: the command line, a file given to it, a request
    │   ├── ConfigError       2   503  a bad or missing setting or newsletter-file value
    │   ├── InvalidInput      2   422  a form, API or CSV field we refuse (subscribers.store)
    │   ├── BadToken          2   400  a link we did not sign, altered or expired (subscribers.tokens)
    │   ├── SignatureError    2   403  a webhook post not signed with our key (subscribers.events)
    │   └── BadEvents         2   400  a webhook body that is not a JSON array of events
    ├── FetchError            1   502  a source or page could not be fetched (never stops the others)
    ├── ProviderError         1   502  one attempt at the e-mail provider failed; its `kind` says what next
    ├── TemplateError         1   500  a template failed to render or compile; names the file and line
    ├── NothingToSend         1   404  a week with no new articles: no issue composed
    └── DeliveryError         1   503  the send cannot go on (the provider refused or failed)
"""

from __future__ import annotations

from enum import Enum


class DigestError(Exception):
    """An error meant for a person: the message says what went wrong and what to do."""

    exit_code = 1
    http_status = 503
    title = "Something went wrong on our side"  # the heading of the web page that shows it


class UsageError(DigestError):
    exit_code = 2
    http_status = 400
    title = "That did not work"


class ConfigError(UsageError):
    """A setting or a newsletter-file value is missing or wrong."""

    http_status = 503  # the server's own settings, not the request
    title = DigestError.title

    def __init__(self, where: str, key: str | None, problem: str):
        self.where, self.key, self.problem = where, key, problem
        located = f"{where}: {key}" if key else where
        super().__init__(f"{located}: {problem}")


class TemplateError(DigestError):
    http_status = 500


class NothingToSend(DigestError):
    """Raised when a week has no new articles; callers usually report it and exit 0."""

    http_status = 404


class DeliveryError(DigestError):
    pass


class FailureKind(Enum):
    """How the sender treats a failed attempt at the provider."""

    TRANSIENT = "transient"  # 5xx, refused connection: back off and try again, a bounded number of times
    # The request may have reached the provider and been accepted (a timeout or a broken connection after it
    # was sent): never retried by itself; the batch stays `submitting` until events or an operator settle it.
    UNKNOWN = "unknown"
    RATE_LIMITED = "rate_limited"  # 429: wait `retry_after` seconds, then try again
    REFUSED = "refused"  # 400, 403, 413, ...: this batch cannot go as it is; fail it and go on
    STOP = "stop"  # 401, a wrong SMTP password: no batch can go; stop the whole send


class ProviderError(DigestError):
    """One attempt at the provider failed. `sent` holds the recipients (person ids) that did go out
    before the failure (SMTP, outbox), `refused` those refused one by one before it (with the reason).

    It lives here, not with the providers, because the audience's confirmation mail meets it too."""

    http_status = 502

    def __init__(
        self,
        message: str,
        *,
        kind: FailureKind = FailureKind.REFUSED,
        retry_after: float | None = None,
        sent: dict[int, str | None] | None = None,
        refused: dict[int, str] | None = None,
    ):
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after
        self.sent: dict[int, str | None] = sent or {}
        self.refused: dict[int, str] = refused or {}
