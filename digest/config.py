"""Settings: secrets and deployment values from the environment, the newsletter from a TOML file.

Two layers, each declared once with a default and a line of help:

* `Settings` reads `DIGEST_*` environment variables and the `.env` file it is given (the publication
  folder's: `digest.folder.folder_settings`; never the working directory's). Every field is
  documented in `.env.example`; a test keeps the two in step.
* `NewsletterConfig` is the non-secret newsletter file (`digest.toml`): name, addresses, timezone,
  schedule, sections and sources.

Which folder they are read from, and what relative paths mean, is `digest.folder`'s job.

A bad value stops the command with one line naming the file, the key and what is wrong.
"""

from __future__ import annotations

import importlib.resources
import re
import string
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args
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
from digest.locale import language

NEWSLETTER_FILE = "digest.toml"
# The overrides folder a publication has by default (`digest init` makes it), beside its digest.toml.
DEFAULT_TEMPLATES_DIR = "templates"
# The e-mail (email/) and web page (web/) templates: the top-level templates/ folder, which the build
# installs as `digest.templates` (pyproject.toml); a newsletter's templates_dir is searched before them.
PACKAGED_TEMPLATES = Path(str(importlib.resources.files("digest.templates")))
SECRET_KEY_MIN_LENGTH = 32
# Values shown in documentation: whoever read them could sign links, so they are never accepted.
EXAMPLE_SECRET_KEYS = frozenset({"change-me-to-a-long-random-value-of-32-characters-or-more"})


class Settings(BaseSettings):
    """Deployment settings and secrets, from `DIGEST_*` variables or the `.env` given as `_env_file`."""

    # No .env by default: the publication folder's is passed in (digest.folder), whatever the working directory.
    model_config = SettingsConfigDict(env_prefix="DIGEST_", env_file=None, extra="ignore")

    database_url: str = Field(
        "sqlite:///var/digest.db",
        description="SQLAlchemy URL of the store: sqlite:///path or postgresql://user@host/db.",
    )
    dir: Path | None = Field(
        None,
        description="The publication folder (holding digest.toml, .env, templates/); relative paths resolve "
        "against it. Default: --dir, else the working directory or the nearest folder above it with a digest.toml.",
    )
    config: Path = Field(
        Path(NEWSLETTER_FILE),
        description="Path of the newsletter file, relative to the publication folder.",
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
        10, ge=1, description="Sign-up form posts accepted per client IP per hour (counted across every web process)."
    )
    redis_url: str | None = Field(
        None,
        description="Redis to count rate limits in (redis://host:6379/0); unset: they are counted in the store.",
    )
    max_body_bytes: int = Field(65536, ge=1024, description="Largest request body for forms and the JSON API.")
    webhook_max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Largest Event Webhook body (SendGrid sends at most about 768 KB)."
    )

    @property
    def issues_dir(self) -> Path:
        """Where `digest run` and `digest build` write an issue's files, one folder per week."""
        return (self.dir or Path()) / "var" / "issues"

    def require_secret_key(self) -> str:
        """The key that signs links and forms, refused when missing, short or a documented example."""
        how = (
            "put a long random value in the publication folder's .env (`digest init` writes one; "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
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
    """Settings from the environment (and the `.env` given as pydantic-settings' `_env_file`); `overrides`
    are field values by name, of whatever type each takes: Settings validates them."""
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


# The fields of the subject template, with what each holds. `name` and `top_title` are the names the
# first versions used, still accepted so that older newsletter files keep working.
SUBJECT_FIELDS = {
    "top_headline": "the top story's headline",
    "newsletter": "the newsletter's name",
    "date": "the issue's date as readers see it (November 30, 2026)",
    "count": "the number of articles in the issue",
    "name": "the newsletter's name (older spelling of {newsletter})",
    "top_title": "the top story's headline (older spelling of {top_headline})",
}
# A subject is clipped on a word to this many characters (what most inboxes show in full).
SUBJECT_MAX_CHARS = 78


def check_subject_template(template: str) -> str:
    """The template, or ValueError naming the field or brace that is wrong and the fields there are."""
    known = ", ".join("{" + name + "}" for name in SUBJECT_FIELDS)
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except ValueError as exc:
        raise ValueError(f"{template!r} is not a valid template ({exc}); write {{{{ and }}}} for a brace") from None
    for field in fields:
        if field not in SUBJECT_FIELDS:
            shown = "{" + field + "}"
            raise ValueError(f"{template!r} has the unknown field {shown}; the fields are {known}")
    try:
        template.format(**dict.fromkeys(SUBJECT_FIELDS, "x") | {"count": 1})
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{template!r} cannot be filled in: {exc}") from None
    return template


# How a section's articles are shown in the e-mail (templates/email/partials/section.mjml.j2): "lead" its
# first article in full and the rest as compact rows, "cards" every article in full (photo, dek, byline,
# excerpt, Keep reading), "compact" a row each (headline, teaser, a small photo), "headlines" the
# headline alone (and its author). The issue's top story is always shown in full, above the sections.
Layout = Literal["lead", "cards", "compact", "headlines"]
LAYOUTS: tuple[Layout, ...] = get_args(Layout)


class SectionConfig(_Strict):
    """A section written as a table in `sections`, to give it its own layout."""

    name: str = Field(min_length=1, description="The section's name, as sources name it.")
    layout: Layout | None = Field(None, description="How its articles are shown; unset: `issue.layout`.")


class IssueConfig(_Strict):
    layout: Layout = Field(
        "compact",
        description="The layout of a section that names none in `sections`: lead, cards, compact or headlines. "
        "The top story is always shown in full.",
    )
    articles_per_section: int = Field(5, ge=1, le=50, description="At most this many articles a section.")
    subject: str = Field(
        "{top_headline}",
        description="Subject line template; fields: {top_headline}, {newsletter}, {date}, {count}. The From "
        f"name already says who it is from. Clipped on a word at {SUBJECT_MAX_CHARS} characters.",
    )
    first_name_fallback: str = Field(
        "there", description="Used when a subscriber has no name; unset: the language's (there, à vous...)."
    )
    window: Literal["since_last_sent", "days"] = Field(
        "since_last_sent",
        description="Without --week: articles since the end of the last sent issue's window (the last "
        "`window_days` days when none was sent), or always the last `window_days` days.",
    )
    window_days: int = Field(7, ge=1, le=62, description="Length of the window when no issue was sent before.")

    @field_validator("subject")
    @classmethod
    def _known_fields(cls, value: str) -> str:
        return check_subject_template(value)


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
    request_process_batches: int = Field(
        0,
        ge=0,
        description="A send of at least this many batches makes and posts its requests in a process of its own, "
        "beside the one that works the store (SendGrid), at the cost of a second process of about 100 MB; on a "
        "two-core machine it gains nothing over the sender's own threads; 0: never.",
    )
    max_failed_batches: int = Field(
        3, ge=0, description="Pause the send when more batches than this have failed (resume with --resume)."
    )
    categories: list[str] = Field(default_factory=list, max_length=10, description="SendGrid categories (at most 10).")
    asm_group_id: int | None = Field(None, description="SendGrid unsubscribe group id, when the account uses one.")
    unsubscribe_mailto: str | None = Field(
        None, description="An address for mailto unsubscribes, added to List-Unsubscribe after the https link."
    )
    list_id: str = Field(
        "",
        pattern=r"^([A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+)?$",
        description="The List-Id header's id (RFC 2919), the same for every issue: a dotted name in a domain "
        "you own, e.g. weekly.meridian-review.example.org; empty: the From address, its @ made a dot.",
    )
    feedback_id_sender: str = Field(
        "",
        pattern=r"^[^:\s]*$",
        description="The sender id that ends the Feedback-ID header (issue:newsletter:newsletter:SENDER), by which "
        "Gmail's Postmaster Tools report complaints; no colon; empty: the From address's domain.",
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
        None,
        description="A folder whose files replace the packaged templates of the same name (relative to the file); "
        "default: the templates/ folder beside the file, when there is one.",
    )
    sections: list[str] = Field(
        min_length=1,
        description="Section names in issue order; an entry may be a table, "
        '{ name = "Opinion", layout = "headlines" }, to give that section its own layout.',
    )
    section_layouts: dict[str, Layout] = Field(
        default_factory=dict,
        exclude=True,
        description="The layouts given in `sections` tables, by section name (filled from `sections`, not a key of "
        "the file); a section not named here has `issue.layout`.",
    )
    sources: list[SourceConfig] = Field(default_factory=list)
    schedule: ScheduleConfig = ScheduleConfig()
    issue: IssueConfig = IssueConfig()
    summary: SummaryConfig = SummaryConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    email: EmailConfig = EmailConfig()
    gather: GatherConfig = GatherConfig()
    path: Path = Field(Path(NEWSLETTER_FILE), exclude=True, description="Where it was read from.")

    @model_validator(mode="before")
    @classmethod
    def _greeting_in_the_language(cls, data: Any) -> Any:
        """Without `[issue] first_name_fallback`, a nameless reader is greeted in the newsletter's language
        ("Hello there", "Bonjour à vous"), not always in English."""
        if not isinstance(data, dict) or not isinstance(data.get("language", "en"), str):
            return data
        issue = data.get("issue", {})
        if not isinstance(issue, dict) or "first_name_fallback" in issue:
            return data
        there = language(data.get("language", "en")).pgettext("greeting a reader with no name", "there")
        return {**data, "issue": {**issue, "first_name_fallback": there}}

    @model_validator(mode="before")
    @classmethod
    def _section_tables(cls, data: Any) -> Any:
        """`sections` entries written as tables become their names, their layouts `section_layouts`."""
        if not isinstance(data, dict) or not isinstance(data.get("sections"), list):
            return data
        if "section_layouts" in data:
            raise ValueError("section_layouts: not a key of the file; give a section's layout in `sections`")
        names: list[Any] = []
        layouts: dict[str, str] = {}
        for i, entry in enumerate(data["sections"]):
            if not isinstance(entry, dict):
                names.append(entry)
                continue
            try:
                section = SectionConfig.model_validate(entry)
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(part) for part in err["loc"])
                problem = "is not a known key (name, layout)" if err["type"] == "extra_forbidden" else err["msg"]
                raise ValueError(f"sections[{i}]{'.' + where if where else ''}: {problem}") from None
            names.append(section.name)
            if section.layout is not None:
                layouts[section.name] = section.layout
        return {**data, "sections": names, "section_layouts": layouts}

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

    def layout_of(self, section: str) -> Layout:
        """How the section's articles are shown: its own layout, else `issue.layout`."""
        return self.section_layouts.get(section, self.issue.layout)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def slug(self) -> str:
        """The newsletter's name in lower-case letters, digits and dashes (the-meridian-review)."""
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-") or "newsletter"

    def _from_domain(self) -> tuple[str, str]:
        local, _, domain = self.from_email.rpartition("@")
        if not domain.isascii():
            domain = domain.encode("idna").decode("ascii")
        return local, domain.lower()

    @property
    def list_id(self) -> str:
        """The List-Id's id: `delivery.list_id`, else the From address with its @ made a dot."""
        if self.delivery.list_id:
            return self.delivery.list_id
        local, domain = self._from_domain()
        label = re.sub(r"[^A-Za-z0-9_-]+", "-", local).strip("-") or self.slug
        return f"{label}.{domain}"

    @property
    def feedback_id_sender(self) -> str:
        """The last field of Feedback-ID: `delivery.feedback_id_sender`, else the From address's domain."""
        return self.delivery.feedback_id_sender or self._from_domain()[1]

    def local_time(self, moment: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        """A stored time as the editor reads it: in the newsletter's timezone, with the zone's name
        ("2026-12-07 07:00 CET"); "never" for none. A time without a zone is UTC (how the store keeps them)."""
        if moment is None:
            return "never"
        local = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(self.tz)
        return f"{local:{fmt}} {local:%Z}"

    def template_dirs(self) -> list[Path]:
        """Where templates are looked up: templates_dir (relative to this file; by default its folder's
        templates/, when there is one) first, then the packaged ones."""
        dirs = []
        if custom := self.templates_dir:
            dirs.append(custom if custom.is_absolute() else self.path.parent / custom)
        elif (
            beside := self.path.parent / DEFAULT_TEMPLATES_DIR
        ).is_dir() and beside.resolve() != PACKAGED_TEMPLATES.resolve():
            dirs.append(beside)
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
    """Read the newsletter file; `None` means digest.toml in the working directory."""
    path = Path(NEWSLETTER_FILE if path is None else path)
    if not path.exists():
        raise ConfigError(
            str(path), None, "file not found; make a publication folder with `digest init DIR`, or set DIGEST_CONFIG"
        )
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
