"""E-mail providers. `make_provider` picks one from the settings."""

from __future__ import annotations

from digest.config import Settings
from digest.delivery.providers.base import OutgoingIssue, Provider, ProviderError, Recipient
from digest.delivery.providers.outbox import OutboxProvider
from digest.errors import ConfigError

__all__ = ["OutgoingIssue", "Provider", "ProviderError", "Recipient", "OutboxProvider", "make_provider"]


def make_provider(settings: Settings) -> Provider:
    choice = settings.provider
    if choice == "auto":
        choice = "sendgrid" if settings.sendgrid_api_key else "outbox"
    if choice == "outbox":
        return OutboxProvider(settings.outbox_dir)
    raise ConfigError("environment", "DIGEST_PROVIDER", f"the {choice!r} provider is not available yet; use outbox")
