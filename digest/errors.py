"""The exceptions the digest raises, and how they reach the user.

Every error the user can fix carries a message that names the file, key, source or input at fault
and says what to do. Library code raises them; only the edges (CLI, web app, scheduler) turn them into
exit codes, pages or log lines.

    DigestError            anything the digest reports to a person; exit code 1
    ├── UsageError         bad input on the command line or in a file given to it; exit code 2
    │   └── ConfigError    a bad or missing setting or newsletter-file value; exit code 2
    ├── SourceError        one source could not be fetched or parsed (never stops the others)
    ├── TemplateError      a template failed to render or compile; names the file and line
    ├── NothingToSend      a week with no new articles: no issue composed
    └── DeliveryError      the provider refused or failed a batch
"""

from __future__ import annotations


class DigestError(Exception):
    """An error meant for a person: the message says what went wrong and what to do."""

    exit_code = 1


class UsageError(DigestError):
    exit_code = 2


class ConfigError(UsageError):
    """A setting or a newsletter-file value is missing or wrong."""

    def __init__(self, where: str, key: str | None, problem: str):
        self.where, self.key, self.problem = where, key, problem
        located = f"{where}: {key}" if key else where
        super().__init__(f"{located}: {problem}")


class SourceError(DigestError):
    def __init__(self, source: str, problem: str):
        self.source, self.problem = source, problem
        super().__init__(f"source {source!r}: {problem}")


class TemplateError(DigestError):
    pass


class NothingToSend(DigestError):
    """Raised when a week has no new articles; callers usually report it and exit 0."""


class DeliveryError(DigestError):
    pass
