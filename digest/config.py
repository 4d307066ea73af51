"""Settings: secrets and deployment values from the environment, the newsletter from a TOML file.

Two layers, each declared once with a default and a line of help:

* `Settings` reads `DIGEST_*` environment variables (and `.env` when present). Every field is
  documented in `.env.example`; a test keeps the two in step.
* `NewsletterConfig` is the non-secret newsletter file (`digest.toml`, falling back to
  `digest.example.toml`): name, addresses, timezone, schedule, sections and sources.

A bad value stops the command with one line naming the file, the key and what is wrong.
"""

from __future__ import annotations

import importlib.resources
import logging
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from digest.errors import ConfigError

log = logging.getLogger(__name__)

EXAMPLE_CONFIG = "digest.example.toml"
# The e-mail (email/) and web page (web/) templates: the top-level templates/ folder, which the build
# installs as `digest.templates` (pyproject.toml); a newsletter's templates_dir is searched before them.
PACKAGED_TEMPLATES = Path(str(importlib.resources.files("digest.templates")))
SECRET_KEY_MIN_LENGTH = 32
# Values shown in documentation: whoever read them could sign links, so they are never accepted.
EXAMPLE_SECRET_KEYS = frozenset({"change-me-to-a-long-random-value-of-32-characters-or-more"})


class Settings(BaseSettings):
    """Deployment settings and secrets, from `DIGEST_*` variables or `.env`."""

    model_config = SettingsConfigDict(env_prefix="DIGEST_", env_file=".env", extra="ignore")

    database_url: str = Field(
        "sqlite:///var/digest.db",
        description="SQLAlchemy URL of the store: sqlite:///path or postgresql://user@host/db.",
    )
    config: Path = Field(
        Path("digest.toml"),
        description="Path of the newsletter file; digest.example.toml is used when it is missing.",
    )
    secret_key: SecretStr | None = Field(
        None, description="Signs unsubscribe, preference and confirmation links. Keep it secret."
    )
    base_url: str = Field(
        "http://127.0.0.1:8000",
        description="Public address of `digest serve`; links in mail point here (https in production).",
    )
    provider: Literal["auto", "sendgrid", "smtp", "outbox"] = Field(
        "auto", description="How mail leaves: auto picks sendgrid when an API key is set, else outbox."
    )
    outbox_dir: Path = Field(Path("var/outbox"), description="Where the outbox provider writes .eml files.")
    sendgrid_api_key: SecretStr | None = Field(None, description="SendGrid API key (Mail Send permission).")
    sendgrid_api_host: str = Field(
        "https://api.sendgrid.com", description="SendGrid API host; tests point it at a loopback server."
    )
    smtp_url: str | None = Field(
        None, description="smtp://user:pass@host:587 (STARTTLS) or smtps://user:pass@host:465 (SSL)."
    )
    admin_token: SecretStr | None = Field(None, description="Bearer token for the editor's preview pages.")
    api_token: SecretStr | None = Field(None, description="Bearer token for the subscriber API.")
    metrics_token: SecretStr | None = Field(
        None, description="Bearer token for /metrics (Prometheus text format); without it /metrics answers 404."
    )
    old_secret_keys: SecretStr | None = Field(
        None, description="Earlier secret keys, comma-separated, still accepted when reading links (key rotation)."
    )
    sendgrid_webhook_public_key: str | None = Field(
        None,
        description="SendGrid's Event Webhook verification key (base64 DER or PEM). Without it the webhook "
        "refuses every post (503); with it, unsigned or badly signed posts get 403.",
    )
    insecure_accept_unsigned_webhooks: bool = Field(
        False,
        description="LOCAL TESTING ONLY: with no webhook key set, accept unsigned SendGrid events. Anyone who can "
        "reach the server can then mark subscribers bounced or complained and forge opens and clicks.",
    )
    double_opt_in: bool = Field(True, description="Sign-ups stay pending until the confirm link is opened.")
    subscribe_per_ip_per_hour: int = Field(
        10, ge=1, description="Sign-up form posts accepted per client IP per hour (in-process count)."
    )
    max_body_bytes: int = Field(65536, ge=1024, description="Largest request body for forms and the JSON API.")
    webhook_max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Largest Event Webhook body (SendGrid sends at most about 768 KB)."
    )

    def require_secret_key(self) -> str:
        """The key that signs links and forms, refused when missing, short or a documented example."""
        how = "put a long random value in .env (python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        raw = self.secret_key.get_secret_value() if self.secret_key is not None else ""
        value = raw.strip()
        if not value:
            raise ConfigError("environment", "DIGEST_SECRET_KEY", f"is not set; {how}")
        if value in EXAMPLE_SECRET_KEYS:
            raise ConfigError("environment", "DIGEST_SECRET_KEY", f"is the example's value, known to all; {how}")
        if len(value) < SECRET_KEY_MIN_LENGTH:
            raise ConfigError(
                "environment",
                "DIGEST_SECRET_KEY",
                f"is {len(value)} characters long; it needs at least {SECRET_KEY_MIN_LENGTH} "
                f"(anyone who guesses it can forge unsubscribe and confirm links); {how}",
            )
        return raw

    def old_secret_key_list(self) -> list[str]:
        if self.old_secret_keys is None:
            return []
        return [k.strip() for k in self.old_secret_keys.get_secret_value().split(",") if k.strip()]


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and .env; `overrides` are field values (or pydantic-settings'
    own `_env_file`) by name, of whatever type each takes: Settings validates them."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = "DIGEST_" + "_".join(str(p) for p in err["loc"]).upper()
        raise ConfigError("environment", key, err["msg"]) from None


# --- the newsletter file ------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Strict):
    name: str = Field(description="A short unique name for the source.")
    url: str = Field(description="Feed URL, file:// URL or local path (relative to the newsletter file).")
    section: str = Field(description="The section its articles go in, one of `sections`.")
    categories: dict[str, str] = Field(
        default_factory=dict, description="Feed category -> section, overriding `section` on a match."
    )
    full_text: bool = Field(
        False,
        description="Fetch each new article's page for its full text while gathering. Otherwise a short "
        "item's page is fetched only when the article first enters a draft (see full_text_min_words).",
    )
    internal: bool = Field(
        False,
        description="Trust the links in this feed: fetch its items' pages even from loopback, private and "
        "link-local addresses (an intranet feed). Otherwise such pages are refused, whatever the feed says.",
    )


CRONTAB_FIELDS = ("minute", "hour", "day", "month", "day_of_week")


def check_crontab(expression: str) -> str:
    """The expression, when APScheduler reads it as a crontab; else a ValueError naming the field at fault."""
    parts = expression.split()
    if len(parts) != len(CRONTAB_FIELDS):
        raise ValueError(
            f"{expression!r} has {len(parts)} fields; a crontab has 5: minute hour day month day-of-week "
            "(e.g. '0 8 * * mon')"
        )
    for name, value in zip(CRONTAB_FIELDS, parts, strict=True):
        try:
            CronTrigger(**{name: value}, timezone="UTC")
        except ValueError as exc:
            label = name.replace("_", "-")
            raise ValueError(f"{expression!r}: the {label} field {value!r} is wrong: {exc}") from None
    try:
        CronTrigger.from_crontab(expression, timezone="UTC")
    except ValueError as exc:
        raise ValueError(f"{expression!r} is not a crontab expression: {exc}") from None
    return expression


class ScheduleConfig(_Strict):
    weekly: str = Field(
        "0 8 * * mon", description="Crontab expression of the weekly send (checked when the file is read)."
    )
    gather_every_minutes: int = Field(60, ge=5, description="How often to gather between sends.")
    grace_hours: int = Field(
        6, ge=0, le=72, description="A weekly run missed while down still runs this long after; later it is skipped."
    )
    deliver: Literal["at_once", "local"] = Field(
        "at_once",
        description="When readers get the issue: all at once when the weekly run sends it, or at `local_time` "
        "on the weekly run's day in each reader's own timezone (the newsletter's when they gave none).",
    )
    local_time: str = Field(
        "07:00",
        pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
        description='With deliver = "local": the reader\'s local time the issue arrives at, HH:MM (24-hour).',
    )
    wave_check_minutes: int = Field(
        5, ge=1, le=60, description='With deliver = "local": how often the scheduler looks for a wave that is due.'
    )

    @field_validator("weekly")
    @classmethod
    def _crontab(cls, value: str) -> str:
        # At load, so that `digest build` or `serve` refuses a typo as `digest schedule` would.
        return check_crontab(value)


class IssueConfig(_Strict):
    articles_per_section: int = Field(5, ge=1, le=50, description="At most this many articles a section.")
    subject: str = Field(
        "{name}: {top_title}",
        description="Subject line; fields: {name}, {top_title}, {date} (the issue date).",
    )
    first_name_fallback: str = Field("there", description="Used when a subscriber has no name.")
    window: Literal["since_last_sent", "days"] = Field(
        "since_last_sent",
        description="Without --week: articles since the end of the last sent issue's window (the last "
        "`window_days` days when none was sent), or always the last `window_days` days.",
    )
    window_days: int = Field(7, ge=1, le=62, description="Length of the window when no issue was sent before.")


class SocialLink(_Strict):
    name: str = Field(description="Shown as the link text, e.g. Bluesky.")
    url: str = Field(description="The publication's page there.")


class EmailConfig(_Strict):
    utm: bool = Field(True, description="Add utm_source, utm_medium and utm_campaign to article links.")
    utm_source: str = Field("", description="utm_source value; empty means the newsletter's name as a slug.")
    utm_medium: str = Field("email", description="utm_medium value.")
    fonts: dict[str, str] = Field(
        default_factory=dict,
        description="Web fonts, name -> stylesheet URL, imported when a template uses the name; "
        "empty keeps the e-mail free of remote @import.",
    )
    social: list[SocialLink] = Field(default_factory=list, description="Links shown in the footer.")


class SummaryConfig(_Strict):
    teaser_words: int = Field(35, ge=5, le=200, description="Longest teaser, in words (whole sentences).")
    excerpt_words: int = Field(90, ge=10, le=500, description="Longest excerpt, in words (whole sentences).")
    pull_quote_min_words: int = Field(8, ge=3, le=100, description="Shortest quotation used as a pull quote.")


class GatherConfig(_Strict):
    concurrency: int = Field(16, ge=1, le=256, description="Requests in flight at once, over all sources.")
    per_host: int = Field(4, ge=1, le=64, description="Requests in flight at once to one host.")
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to wait for a connection.")
    read_timeout: float = Field(30.0, gt=0, description="Seconds to wait for the next bytes of a response.")
    total_timeout: float = Field(60.0, gt=0, description="Seconds one response may take in all (slow trickles).")
    max_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Largest response accepted, in bytes.")
    max_redirects: int = Field(5, ge=0, le=20, description="Redirects followed before giving up.")
    full_text_min_words: int = Field(
        120,
        ge=0,
        description="An item with fewer words than this gets its page fetched for the full text when it "
        "first enters a draft (build, rebuild); once, remembered with the article.",
    )


class DeliveryConfig(_Strict):
    batch_size: int = Field(1000, ge=1, le=1000, description="Recipients per provider request (SendGrid: 1000).")
    request_timeout_seconds: float = Field(30.0, gt=0, le=600, description="Longest wait for the provider's answer.")
    retries: int = Field(5, ge=0, le=20, description="Retries of a batch after a 5xx, 429 or refused connection.")
    backoff_seconds: float = Field(1.0, ge=0, le=300, description="First wait before a retry; doubled each time.")
    backoff_max_seconds: float = Field(60.0, ge=0, le=3600, description="Longest wait between two retries.")
    max_failed_batches: int = Field(
        3, ge=0, description="Pause the send when more batches than this have failed (resume with --resume)."
    )
    categories: list[str] = Field(default_factory=list, max_length=10, description="SendGrid categories (at most 10).")
    asm_group_id: int | None = Field(None, description="SendGrid unsubscribe group id, when the account uses one.")
    unsubscribe_mailto: str | None = Field(
        None, description="An address for mailto unsubscribes, added to List-Unsubscribe after the https link."
    )


class NewsletterConfig(_Strict):
    name: str
    tagline: str = ""
    from_email: str
    from_name: str = ""
    reply_to: str | None = None
    postal_address: str = Field(description="Physical postal address, required in every message (CAN-SPAM).")
    timezone: str = "UTC"
    language: str = "en"
    templates_dir: Path | None = Field(
        None, description="A folder whose files replace the packaged templates of the same name (relative to the file)."
    )
    sections: list[str] = Field(min_length=1)
    sources: list[SourceConfig] = Field(default_factory=list)
    schedule: ScheduleConfig = ScheduleConfig()
    issue: IssueConfig = IssueConfig()
    summary: SummaryConfig = SummaryConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    email: EmailConfig = EmailConfig()
    gather: GatherConfig = GatherConfig()
    path: Path = Field(Path(EXAMPLE_CONFIG), exclude=True, description="Where it was read from.")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}; use an IANA name such as Europe/Berlin") from None
        return value

    @field_validator("from_email", "reply_to")
    @classmethod
    def _looks_like_address(cls, value: str | None) -> str | None:
        if value is not None and ("@" not in value or value.startswith("@") or value.endswith("@")):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value

    @field_validator("postal_address", "name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @model_validator(mode="after")
    def _sources_fit_sections(self) -> NewsletterConfig:
        names: set[str] = set()
        for i, source in enumerate(self.sources):
            if source.name in names:
                raise ValueError(f"sources[{i}].name: {source.name!r} is used twice")
            names.add(source.name)
            for section in [source.section, *source.categories.values()]:
                if section not in self.sections:
                    raise ValueError(f"sources[{i}].section: {section!r} is not one of sections {self.sections}")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local_time(self, moment: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        """A stored time as the editor reads it: in the newsletter's timezone, with the zone's name
        ("2026-12-07 07:00 CET"); "never" for none. A time without a zone is UTC (how the store keeps them)."""
        if moment is None:
            return "never"
        local = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(self.tz)
        return f"{local:{fmt}} {local:%Z}"

    def template_dirs(self) -> list[Path]:
        """Where templates are looked up: templates_dir (relative to this file) first, then the packaged ones."""
        dirs = []
        if custom := self.templates_dir:
            dirs.append(custom if custom.is_absolute() else self.path.parent / custom)
        dirs.append(PACKAGED_TEMPLATES)
        return dirs

    def resolve_location(self, url: str) -> str:
        """Local paths in the file are relative to the file itself, so it works from any directory."""
        if "://" in url:
            return url
        path = Path(url).expanduser()
        if not path.is_absolute():
            path = self.path.parent.resolve() / path
        return str(path)


def _format_location(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts[-1] = f"{parts[-1]}[{p}]" if parts else f"[{p}]"
        else:
            parts.append(str(p))
    return ".".join(parts)


def load_newsletter(path: Path | str | None = None) -> NewsletterConfig:
    """Read the newsletter file; `None` means digest.toml, or digest.example.toml with a notice."""
    if path is None:
        path = Path("digest.toml")
    path = Path(path)
    if not path.exists():
        example = Path(EXAMPLE_CONFIG)
        if path.name == "digest.toml" and example.exists() and path.parent == Path("."):
            log.warning("%s not found; using %s (copy it to %s to make it yours)", path, example, path)
            path = example
        else:
            raise ConfigError(str(path), None, "file not found; set DIGEST_CONFIG or create it")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), None, f"not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), None, f"cannot read: {exc}") from None
    try:
        return NewsletterConfig(**data, path=path)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = _format_location(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "is required but missing"
        elif err["type"] == "extra_forbidden":
            msg = "is not a known key (check its spelling)"
        if not key:  # model-level validators put the key in the message
            key, _, msg = msg.partition(": ")
        raise ConfigError(str(path), key, msg) from None
