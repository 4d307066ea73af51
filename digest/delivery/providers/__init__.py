"""E-mail providers. `make_provider` picks one from the settings: SendGrid when an API key is set,
else the outbox, unless DIGEST_PROVIDER names one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from digest.delivery.providers.base import Provider
from digest.errors import ConfigError

if TYPE_CHECKING:
    from digest.config import DeliveryConfig, Settings

__all__ = ["Provider", "make_provider"]


# Each provider is imported when it is made: the sender's request process (digest.delivery.posting) imports
# this package and needs neither the settings nor the store the others bring.
def make_provider(settings: Settings, delivery: DeliveryConfig | None = None) -> Provider:
    from digest.config import DeliveryConfig

    delivery = delivery or DeliveryConfig()
    choice = settings.provider
    if choice == "auto":
        choice = "sendgrid" if settings.sendgrid_api_key else "outbox"
    if choice == "outbox":
        from digest.delivery.providers.outbox import OutboxProvider

        return OutboxProvider(settings.outbox_dir)
    if choice == "sendgrid":
        key = settings.sendgrid_api_key.get_secret_value().strip() if settings.sendgrid_api_key else ""
        if not key:
            raise ConfigError("environment", "DIGEST_SENDGRID_API_KEY", "is not set; DIGEST_PROVIDER=sendgrid needs it")
        from digest.delivery.providers.sendgrid_api import SendGridProvider

        return SendGridProvider(
            key,
            host=settings.sendgrid_api_host,
            timeout=delivery.request_timeout_seconds,
            categories=delivery.categories,
            asm_group_id=delivery.asm_group_id,
        )
    if choice == "smtp":
        if not settings.smtp_url:
            raise ConfigError("environment", "DIGEST_SMTP_URL", "is not set; DIGEST_PROVIDER=smtp needs it")
        from digest.delivery.providers.smtp import SMTPProvider

        return SMTPProvider(settings.smtp_url, timeout=delivery.request_timeout_seconds)
    raise ConfigError("environment", "DIGEST_PROVIDER", f"unknown provider {choice!r}; use sendgrid, smtp or outbox")
