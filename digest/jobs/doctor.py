"""`digest doctor`: whether this installation can run, and what to fix before it does.

It checks, without changing anything: the publication folder (found, its .env private), the settings,
the newsletter file (no longer the starter `digest init` wrote), the secret key, the public address,
the tokens and the webhook key, the store (reachable, migrated), the provider (SendGrid: the key's
scopes; SMTP: connect and EHLO) and the From domain's SPF, DKIM and DMARC records.

It builds no core: a core cannot be built from the very settings it is there to check, so each check
loads what it needs and reports what it could not.

Production is when mail really leaves (SendGrid or SMTP) or when the public address is not this machine:
there a missing token or an http address is a failure; on a machine kept to itself (the outbox, a
loopback address) the same is only a warning.
"""

from __future__ import annotations

import ipaddress
import stat
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr
from sqlalchemy.engine import make_url

from digest.config import NewsletterConfig, Settings, load_newsletter
from digest.delivery.providers import make_provider
from digest.delivery.providers.sendgrid_api import SendGridProvider
from digest.delivery.providers.smtp import SMTPProvider
from digest.delivery.sender_dns import Status, TxtLookup, sender_records
from digest.errors import ConfigError, DigestError, ProviderError
from digest.folder import ENV_FILE, STARTER, NoFolder, folder_settings
from digest.locale import available, language
from digest.store import db

TOKEN_MIN_LENGTH = 24
# Keys of the starter digest.toml whose values are placeholders: left as they are, mail goes out
# from a domain that is not the publication's, with an address that is not its own.
STARTER_PLACEHOLDERS = ("from_email", "postal_address")
GENERATE = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
# The provider's answer is waited for this long (a send waits longer: delivery.request_timeout_seconds).
PROBE_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Finding:
    """One check: `status` ok, warn or fail, what was found, and for a warning or a failure what to do."""

    check: str
    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Diagnosis:
    findings: list[Finding]

    @property
    def to_fix(self) -> list[Finding]:
        return [f for f in self.findings if f.status == "fail"]


def diagnose(
    settings: Settings | None = None,
    *,
    look_up: TxtLookup | None = None,
    dkim_selectors: Sequence[str] = (),
    timeout: float = PROBE_TIMEOUT_SECONDS,
) -> Diagnosis:
    """Every check, in the order a person would fix them. `look_up` asks DNS (None: the records to set
    are given without looking); `settings` default to the publication folder's (digest.folder)."""
    findings: list[Finding] = []
    if settings is None:
        try:
            settings = folder_settings()
        except NoFolder as exc:
            return Diagnosis(
                [
                    Finding(
                        "folder",
                        "fail",
                        str(exc),
                        "make one with `digest init DIR`, then pass --dir DIR or set DIGEST_DIR",
                    )
                ]
            )
        except ConfigError as exc:
            return Diagnosis([Finding("settings", "fail", str(exc), "correct it in the environment or .env")])
    provider = provider_name(settings)
    production = provider != "outbox" or not is_loopback_url(settings.base_url)
    if settings.dir is not None:
        findings.append(_folder(settings.dir, production))
    findings.append(_mode(settings, provider, production))
    config = _newsletter(settings, production, findings)
    findings.extend(_language(config) if config else [])
    findings.append(_secret_key(settings))
    findings.append(_base_url(settings.base_url, provider, production))
    findings.append(
        _token(
            "admin token",
            "DIGEST_ADMIN_TOKEN",
            settings.admin_token,
            production,
            "the editor's preview answers only browsers on this machine, never through a proxy",
        )
    )
    findings.append(
        _token(
            "API token",
            "DIGEST_API_TOKEN",
            settings.api_token,
            production,
            "the subscriber API (POST /api/subscribers, /api/unsubscribe) is off",
        )
    )
    findings.extend(_webhook(settings, provider, production))
    findings.extend(_store(settings.database_url))
    findings.append(_provider(settings, config, provider, production, timeout))
    if config is not None:
        domain = config.from_email.rpartition("@")[2].lower()
        for record in sender_records(domain, provider, look_up, dkim_selectors):
            status: Status = record.status
            if status == "fail" and not production:
                status = "warn"
            detail = f"{record.name}: {record.found}"
            findings.append(Finding(record.kind, status, detail, f"set {record.to_set}" if record.to_set else ""))
    return Diagnosis(findings)


def provider_name(settings: Settings) -> str:
    """The provider the settings choose (DIGEST_PROVIDER=auto resolved as make_provider does)."""
    if settings.provider == "auto":
        key = settings.sendgrid_api_key.get_secret_value().strip() if settings.sendgrid_api_key else ""
        return "sendgrid" if key else "outbox"
    return settings.provider


def is_loopback_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _failure(production: bool) -> Status:
    return "fail" if production else "warn"


def _mode(settings: Settings, provider: str, production: bool) -> Finding:
    if production:
        why = (
            f"mail leaves through {provider}" if provider != "outbox" else f"the public address is {settings.base_url}"
        )
        return Finding("mode", "ok", f"production ({why}): every check below must pass")
    return Finding(
        "mode", "ok", "local (the outbox, a loopback address): what production needs is reported as warnings"
    )


def _folder(folder: Path, production: bool) -> Finding:
    env = folder / ENV_FILE
    if not env.is_file():
        return Finding("folder", "ok", f"{folder} (no {ENV_FILE}: the settings come from the environment alone)")
    if env.stat().st_mode & stat.S_IROTH:
        return Finding(
            "folder",
            _failure(production),
            f"{env} holds the secrets and every user of this machine can read it",
            f"chmod 600 {env}",
        )
    return Finding("folder", "ok", f"{folder} (settings from its {ENV_FILE} and the environment)")


def _newsletter(settings: Settings, production: bool, findings: list[Finding]) -> NewsletterConfig | None:
    try:
        config = load_newsletter(settings.config)
    except ConfigError as exc:
        findings.append(
            Finding("newsletter", "fail", str(exc), f"correct {exc.where} (`digest init` explains each key)")
        )
        return None
    starter = tomllib.loads(STARTER.read_text(encoding="utf-8"))
    unchanged = [key for key in STARTER_PLACEHOLDERS if getattr(config, key) == starter.get(key)]
    if unchanged:
        findings.append(
            Finding(
                "newsletter",
                _failure(production),
                f"{config.path}: {' and '.join(unchanged)} still the starter's placeholder",
                f"set {' and '.join(unchanged)} in {config.path} (your own domain, your postal address)",
            )
        )
    elif not config.sources:
        findings.append(Finding("newsletter", "warn", f"{config.path}: no sources", f"list the feeds in {config.path}"))
    else:
        findings.append(Finding("newsletter", "ok", f"{config.path}: {config.name}, {len(config.sources)} sources"))
    return config


def _language(config: NewsletterConfig) -> list[Finding]:
    """A warning when the newsletter's language has no catalog of ours (nothing when it has one)."""
    if language(config.language).translated:
        return []
    return [
        Finding(
            "language",
            "warn",
            f"{config.path}: language = {config.language!r}: the digest's own words (Keep reading, the footer, "
            f"the web pages) stay in English; there are catalogs for {', '.join(available())}",
            f"set language in {config.path} to one of them, or add a catalog (README, Development)",
        )
    ]


def _secret_key(settings: Settings) -> Finding:
    try:
        settings.require_secret_key()
    except ConfigError as exc:
        problem = exc.problem.partition(";")[0]  # the rest says how to make one: the fix below
        return Finding("secret key", "fail", f"DIGEST_SECRET_KEY {problem}", f"set DIGEST_SECRET_KEY: {GENERATE}")
    return Finding("secret key", "ok", "DIGEST_SECRET_KEY is set")


def _base_url(url: str, provider: str, production: bool) -> Finding:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Finding(
            "base URL",
            "fail",
            f"DIGEST_BASE_URL={url!r} is not an http(s) address",
            "set DIGEST_BASE_URL to the public https address of digest serve",
        )
    if is_loopback_url(url):
        if provider != "outbox":
            return Finding(
                "base URL",
                "fail",
                f"DIGEST_BASE_URL={url} is this machine, yet mail leaves through "
                f"{provider}: readers' unsubscribe links would lead nowhere",
                "set DIGEST_BASE_URL to the public https address of digest serve",
            )
        return Finding("base URL", "ok", f"{url} (local)")
    if parts.scheme != "https" and production:
        return Finding(
            "base URL",
            "fail",
            f"DIGEST_BASE_URL={url} is not https: one-click unsubscribe (RFC 8058) "
            "needs https, and links would carry readers' tokens in the clear",
            "serve it over https (a reverse proxy with a certificate) and set DIGEST_BASE_URL=https://...",
        )
    return Finding("base URL", "ok", url)


def _token(check: str, variable: str, value: SecretStr | None, production: bool, without: str) -> Finding:
    text = value.get_secret_value().strip() if value is not None else ""
    if not text:
        return Finding(check, _failure(production), f"{variable} is not set: {without}", f"set {variable}: {GENERATE}")
    if len(text) < TOKEN_MIN_LENGTH:
        return Finding(
            check,
            _failure(production),
            f"{variable} is {len(text)} characters long: easy to guess",
            f"set {variable} to {TOKEN_MIN_LENGTH} or more random characters: {GENERATE}",
        )
    return Finding(check, "ok", f"{variable} is set")


def _webhook(settings: Settings, provider: str, production: bool) -> list[Finding]:
    from subscribers.events import load_public_key

    findings = []
    key = (settings.sendgrid_webhook_public_key or "").strip()
    if key:
        try:
            load_public_key(key)
            findings.append(Finding("webhook key", "ok", "DIGEST_SENDGRID_WEBHOOK_PUBLIC_KEY is a P-256 public key"))
        except ValueError as exc:
            findings.append(
                Finding(
                    "webhook key",
                    "fail",
                    str(exc).partition(";")[0],
                    "paste the Verification Key from SendGrid's Mail Settings > Signed Event Webhook",
                )
            )
    elif provider == "sendgrid":
        findings.append(
            Finding(
                "webhook key",
                _failure(production),
                "DIGEST_SENDGRID_WEBHOOK_PUBLIC_KEY is not set: the event webhook refuses every post, "
                "so bounces and complaints are never recorded",
                "turn on SendGrid's Signed Event Webhook and set DIGEST_SENDGRID_WEBHOOK_PUBLIC_KEY "
                "to its Verification Key",
            )
        )
    else:
        findings.append(Finding("webhook key", "ok", f"not needed: {provider} posts no events"))
    if settings.insecure_accept_unsigned_webhooks:
        findings.append(
            Finding(
                "webhook key",
                _failure(production),
                "DIGEST_INSECURE_ACCEPT_UNSIGNED_WEBHOOKS is on: anyone can post forged events",
                "set DIGEST_INSECURE_ACCEPT_UNSIGNED_WEBHOOKS=false",
            )
        )
    return findings


def _store(url: str) -> list[Finding]:
    """Reachable and migrated; a SQLite file that does not exist is reported, not created."""
    try:
        parsed = make_url(db.normalize_url(url))
    except Exception:  # noqa: BLE001 - SQLAlchemy raises several types for a URL it cannot read
        return [
            Finding(
                "store",
                "fail",
                f"DIGEST_DATABASE_URL={url!r} is not a database URL",
                "set DIGEST_DATABASE_URL to sqlite:///path or postgresql://user@host/db",
            )
        ]
    shown = parsed.render_as_string(hide_password=True)
    sqlite_file = parsed.database if parsed.get_backend_name() == "sqlite" and parsed.database != ":memory:" else None
    if sqlite_file and not Path(sqlite_file).exists():
        return [Finding("store", "fail", f"{shown}: the file does not exist", "run digest db upgrade")]
    try:
        engine = db.make_engine(url)
    except ConfigError as exc:
        return [Finding("store", "fail", str(exc), "correct DIGEST_DATABASE_URL")]
    try:
        state = db.store_state(engine)
    except DigestError as exc:
        return [Finding("store", "fail", str(exc), "start the database, or correct DIGEST_DATABASE_URL")]
    finally:
        engine.dispose()
    if state.revision is None:
        return [Finding("store", "fail", f"{shown}: no migrations applied", "run digest db upgrade")]
    if state.ahead:
        return [
            Finding(
                "store",
                "fail",
                f"{shown}: at revision {state.revision}, made by a newer release than this one ({state.head})",
                "install the release that migrated the store",
            )
        ]
    if not state.migrated:
        return [
            Finding(
                "store",
                "fail",
                f"{shown}: at revision {state.revision}, this code needs {state.head}",
                "run digest db upgrade",
            )
        ]
    return [Finding("store", "ok", f"{shown}: reachable, at revision {state.revision} (the newest)")]


def _provider(
    settings: Settings, config: NewsletterConfig | None, provider: str, production: bool, timeout: float
) -> Finding:
    if provider == "outbox":
        if production:
            return Finding(
                "provider",
                "fail",
                f"the outbox: mail is written to {settings.outbox_dir} and nobody gets it",
                "set DIGEST_SENDGRID_API_KEY, or DIGEST_PROVIDER=smtp with DIGEST_SMTP_URL",
            )
        return Finding("provider", "ok", f"the outbox: .eml files in {settings.outbox_dir}")
    delivery = config.delivery if config is not None else None
    try:
        chosen = make_provider(
            settings, delivery.model_copy(update={"request_timeout_seconds": timeout}) if delivery else None
        )
    except ConfigError as exc:
        return Finding("provider", "fail", str(exc), f"set {exc.key}" if exc.key else "correct the provider's settings")
    try:
        if isinstance(chosen, SendGridProvider):
            return _sendgrid(chosen, config)
        if isinstance(chosen, SMTPProvider):
            return Finding(
                "provider",
                "ok",
                f"SMTP {chosen.server.host}:{chosen.server.port} ({chosen.server.tls}) "
                f"answered EHLO: {chosen.greeting()}",
            )
    except ProviderError as exc:
        return Finding("provider", "fail", str(exc), _provider_fix(provider))
    finally:
        chosen.close()
    return Finding("provider", "ok", provider)


def _sendgrid(provider: SendGridProvider, config: NewsletterConfig | None) -> Finding:
    scopes = set(provider.scopes())
    if "mail.send" not in scopes:
        return Finding(
            "provider",
            "fail",
            "the SendGrid API key lacks the Mail Send permission",
            "make a key with Mail Send (Settings > API Keys) and set DIGEST_SENDGRID_API_KEY",
        )
    local = config is not None and config.schedule.deliver == "local"
    wanted = {"mail.batch.create", "user.scheduled_sends.create"}
    if local and not wanted <= scopes:
        return Finding(
            "provider",
            "fail",
            f'deliver = "local" schedules sends ahead, and the key lacks {", ".join(sorted(wanted - scopes))}',
            "give the key Mail Send > Scheduled Sends (Settings > API Keys)",
        )
    return Finding(
        "provider", "ok", f"SendGrid at {provider.host} accepted the key ({len(scopes)} scopes, Mail Send among them)"
    )


def _provider_fix(provider: str) -> str:
    if provider == "sendgrid":
        return "check DIGEST_SENDGRID_API_KEY (and DIGEST_SENDGRID_API_HOST), and that SendGrid is reachable from here"
    return "check DIGEST_SMTP_URL (host, port, user and password) and that the server is reachable from here"
