"""`digest doctor` against real parts: the store on SQLite and PostgreSQL, the fake SendGrid's /v3/scopes,
aiosmtpd for SMTP and a DNS server on loopback. A misconfigured installation exits 1 listing each
thing to fix; a good one exits 0."""

from __future__ import annotations

import json
import os
import socket

import dns.resolver
import pytest
from aiosmtpd.controller import Controller

from digest.delivery.sender_dns import (
    DnsUnavailable,
    check_dkim,
    check_dmarc,
    check_spf,
    sender_records,
    txt_lookup,
)
from digest.folder import STARTER
from tests.cli_helpers import run_cli
from tests.fakes.dns_server import FakeDns
from tests.fakes.sendgrid import FakeSendGrid, WebhookSigner
from tests.test_delivery_smtp import certificate, smtp_server  # noqa: F401 - the real SMTP server's fixtures

DOMAIN = "meridian-review.example.org"  # the From domain of examples/digest.toml
TOKEN = "a-token-of-more-than-twenty-four-characters"
GOOD_RECORDS = {
    DOMAIN: ["google-site-verification=abc", "v=spf1 include:sendgrid.net ~all"],
    f"_dmarc.{DOMAIN}": ["v=DMARC1; p=quarantine; rua=mailto:dmarc@meridian-review.example.org"],
    f"s1._domainkey.{DOMAIN}": ("CNAME", "s1.domainkey.u123.wl.sendgrid.net"),
    "s1.domainkey.u123.wl.sendgrid.net": ["k=rsa; t=s; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC1"],
}


def closed_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once closed


def findings(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def by_check(result) -> dict[str, dict]:
    return {f["check"]: f for f in findings(result)}


def test_a_misconfigured_installation_exits_1_listing_each_thing_to_fix(cli_env, tmp_path):
    with FakeSendGrid(api_key="SG.right") as sendgrid:
        env = {
            **cli_env,
            **sendgrid.env(),
            "DIGEST_SENDGRID_API_KEY": "SG.wrong",
            "DIGEST_BASE_URL": "http://news.example.org",
        }
        result = run_cli(["doctor", "--no-dns"], env, tmp_path)  # the store: never migrated

    assert result.returncode == 1, result.stdout
    to_fix = result.stdout.split("to fix:")[1]
    assert "base URL: serve it over https" in to_fix
    assert "admin token: set DIGEST_ADMIN_TOKEN" in to_fix
    assert "API token: set DIGEST_API_TOKEN" in to_fix
    assert "webhook key: turn on SendGrid's Signed Event Webhook" in to_fix
    assert "store: run digest db upgrade" in to_fix
    assert "provider: check DIGEST_SENDGRID_API_KEY" in to_fix
    assert "6 to fix:" in result.stdout
    # The provider's own words, as a send would report them.
    assert "SendGrid refused the API key (401: The provided authorization grant is invalid" in result.stdout
    assert "FAIL base URL: DIGEST_BASE_URL=http://news.example.org is not https" in result.stdout


def test_a_good_installation_exits_0_with_every_check_passed(cli_env, tmp_path):
    assert run_cli(["db", "upgrade"], cli_env, tmp_path).returncode == 0
    with FakeSendGrid() as sendgrid, FakeDns(GOOD_RECORDS) as dns_server:
        env = {
            **cli_env,
            **sendgrid.env(),
            "DIGEST_ADMIN_TOKEN": TOKEN,
            "DIGEST_API_TOKEN": TOKEN + "-api",
            "DIGEST_SENDGRID_WEBHOOK_PUBLIC_KEY": WebhookSigner().public_b64,
        }
        args = ["doctor", "--nameserver", f"127.0.0.1:{dns_server.port}"]
        result = run_cli([*args, "--json"], env, tmp_path)
        text = run_cli(args, env, tmp_path)

    assert result.returncode == 0, result.stdout
    statuses = {f["check"]: f["status"] for f in findings(result)}
    assert statuses == {
        "folder": "ok", "mode": "ok", "newsletter": "ok", "secret key": "ok", "base URL": "ok", "admin token": "ok",
        "API token": "ok", "webhook key": "ok", "store": "ok", "provider": "ok", "SPF": "ok", "DKIM": "ok",
        "DMARC": "ok",
    }  # fmt: skip
    assert "accepted the key (3 scopes, Mail Send among them)" in by_check(result)["provider"]["detail"]
    assert by_check(result)["DKIM"]["detail"] == f"s1._domainkey.{DOMAIN}: a key at s1._domainkey.{DOMAIN}"
    assert dns_server.questions[:3] == [DOMAIN, f"s1._domainkey.{DOMAIN}", f"_dmarc.{DOMAIN}"]
    assert text.returncode == 0 and text.stdout.rstrip().endswith("nothing to fix")


def test_a_sendgrid_key_without_mail_send_is_a_failure(cli_env, tmp_path):
    with FakeSendGrid() as sendgrid:
        sendgrid.scopes = ["stats.read"]
        result = run_cli(["doctor", "--no-dns", "--json"], {**cli_env, **sendgrid.env()}, tmp_path)
    provider = by_check(result)["provider"]
    assert result.returncode == 1
    assert provider["status"] == "fail" and "lacks the Mail Send permission" in provider["detail"]


def test_an_smtp_server_that_is_down_is_named_with_what_to_check(cli_env, tmp_path):
    env = {**cli_env, "DIGEST_PROVIDER": "smtp", "DIGEST_SMTP_URL": f"smtp://127.0.0.1:{closed_port()}?tls=none"}
    result = run_cli(["doctor", "--no-dns", "--json"], env, tmp_path)
    provider = by_check(result)["provider"]
    assert result.returncode == 1
    assert provider["status"] == "fail"
    assert provider["detail"].startswith("cannot reach the SMTP server 127.0.0.1:")
    assert provider["fix"].startswith("check DIGEST_SMTP_URL")


def test_an_smtp_server_that_answers_ehlo_passes(cli_env, tmp_path):
    controller = Controller(object(), hostname="127.0.0.1", port=closed_port(), server_hostname="mx.test")
    controller.start()
    try:
        env = {**cli_env, "DIGEST_PROVIDER": "smtp", "DIGEST_SMTP_URL": f"smtp://127.0.0.1:{controller.port}?tls=none"}
        result = run_cli(["doctor", "--no-dns", "--json"], env, tmp_path)
    finally:
        controller.stop()
    provider = by_check(result)["provider"]
    assert provider["status"] == "ok"
    assert provider["detail"] == f"SMTP 127.0.0.1:{controller.port} (none) answered EHLO: mx.test"


def test_smtp_is_checked_as_a_send_connects_starttls_and_login_included(cli_env, tmp_path, smtp_server):  # noqa: F811
    _, url = smtp_server  # STARTTLS required, a certificate the client trusts through SSL_CERT_FILE, a login
    # cli_env was taken before the server's fixture pointed SSL_CERT_FILE at the test's certificate.
    env = {**cli_env, "SSL_CERT_FILE": os.environ["SSL_CERT_FILE"], "DIGEST_PROVIDER": "smtp"}
    good = run_cli(["doctor", "--no-dns", "--json"], {**env, "DIGEST_SMTP_URL": url}, tmp_path)
    bad = run_cli(
        ["doctor", "--no-dns", "--json"], {**env, "DIGEST_SMTP_URL": url.replace("s3cret", "wrong")}, tmp_path
    )
    assert by_check(good)["provider"]["status"] == "ok", by_check(good)["provider"]
    assert "(starttls) answered EHLO" in by_check(good)["provider"]["detail"]
    refused = by_check(bad)["provider"]
    assert bad.returncode == 1 and refused["status"] == "fail"
    assert (
        refused["detail"] == "the SMTP server refused the login (535); check the user and password in DIGEST_SMTP_URL"
    )


def test_missing_sender_records_are_failures_that_say_what_to_set(cli_env, tmp_path):
    with FakeSendGrid() as sendgrid, FakeDns({}) as dns_server:
        args = ["doctor", "--nameserver", f"127.0.0.1:{dns_server.port}", "--json"]
        result = run_cli(args, {**cli_env, **sendgrid.env()}, tmp_path)
    checks = by_check(result)
    assert result.returncode == 1
    assert checks["SPF"] == {
        "check": "SPF", "status": "fail", "detail": f"{DOMAIN}: no SPF record",
        "fix": f"set TXT {DOMAIN} v=spf1 include:sendgrid.net ~all",
    }  # fmt: skip
    assert checks["DMARC"]["status"] == "fail" and checks["DMARC"]["fix"].startswith(
        f"set TXT _dmarc.{DOMAIN} v=DMARC1; p=none"
    )
    assert checks["DKIM"]["status"] == "fail"
    assert checks["DKIM"]["detail"].endswith(f"nothing at s1._domainkey.{DOMAIN}; nothing at s2._domainkey.{DOMAIN}")


def test_without_dns_the_records_to_set_are_printed_and_nothing_fails_for_them(cli_env, tmp_path):
    assert run_cli(["db", "upgrade"], cli_env, tmp_path).returncode == 0
    env = {**cli_env, "DIGEST_BASE_URL": "http://127.0.0.1:8000"}  # the outbox, loopback: a local install
    result = run_cli(["doctor", "--no-dns"], env, tmp_path)
    assert result.returncode == 0, result.stdout
    assert f"warn SPF: {DOMAIN}: DNS lookups are off (--no-dns)" in result.stdout
    assert f"     set TXT {DOMAIN} v=spf1 mx ~all" in result.stdout
    assert f"     set TXT _dmarc.{DOMAIN} v=DMARC1; p=none" in result.stdout
    # Locally, what production needs is a warning, not a failure.
    assert "warn admin token: DIGEST_ADMIN_TOKEN is not set" in result.stdout
    assert "ok   mode: local" in result.stdout


def test_a_bad_setting_is_the_one_thing_reported(cli_env, tmp_path):
    result = run_cli(["doctor", "--no-dns", "--json"], {**cli_env, "DIGEST_SUBSCRIBE_PER_IP_PER_HOUR": "0"}, tmp_path)
    assert result.returncode == 1
    (finding,) = findings(result)
    assert finding["check"] == "settings" and "DIGEST_SUBSCRIBE_PER_IP_PER_HOUR" in finding["detail"]


def test_loopback_links_in_mail_that_really_leaves_are_a_failure(cli_env, tmp_path):
    with FakeSendGrid() as sendgrid:
        env = {**cli_env, **sendgrid.env(), "DIGEST_BASE_URL": "http://localhost:8000"}
        result = run_cli(["doctor", "--no-dns", "--json"], env, tmp_path)
    base = by_check(result)["base URL"]
    assert base["status"] == "fail" and "unsubscribe links would lead nowhere" in base["detail"]


@pytest.mark.parametrize(
    ("setting", "value", "check", "detail"),
    [
        ("DIGEST_SECRET_KEY", "short", "secret key", "DIGEST_SECRET_KEY is 5 characters long"),
        ("DIGEST_ADMIN_TOKEN", "short-token", "admin token", "DIGEST_ADMIN_TOKEN is 11 characters long: easy to guess"),
        ("DIGEST_SENDGRID_WEBHOOK_PUBLIC_KEY", "bm90IGEga2V5", "webhook key", "is not a public key"),
        ("DIGEST_INSECURE_ACCEPT_UNSIGNED_WEBHOOKS", "true", "webhook key", "anyone can post forged events"),
        ("DIGEST_CONFIG", str(STARTER), "newsletter", "from_email and postal_address still the starter's placeholder"),
        ("DIGEST_DATABASE_URL", f"postgresql://digest@127.0.0.1:{closed_port()}/x", "store", "cannot reach the store"),
    ],
)
def test_each_unsafe_production_setting_is_named(cli_env, tmp_path, setting, value, check, detail):
    result = run_cli(["doctor", "--no-dns", "--json"], {**cli_env, setting: value}, tmp_path)
    failed = [f for f in findings(result) if f["check"] == check and f["status"] == "fail"]
    assert result.returncode == 1
    assert any(detail in f["detail"] for f in failed), failed


def without_a_folder(cli_env) -> dict[str, str]:
    return {k: v for k, v in cli_env.items() if k not in ("DIGEST_DIR", "DIGEST_CONFIG")}


def test_without_a_publication_folder_the_one_finding_says_how_to_make_one(cli_env, tmp_path):
    result = run_cli(["doctor", "--no-dns", "--json"], without_a_folder(cli_env), tmp_path)
    assert result.returncode == 1
    (finding,) = findings(result)
    assert finding["check"] == "folder" and finding["status"] == "fail"
    assert finding["detail"].startswith(f"no publication folder: neither {tmp_path.resolve()} nor a folder above")
    assert finding["fix"].startswith("make one with `digest init DIR`")


def test_a_folder_fresh_from_digest_init_is_found_and_its_placeholders_named(cli_env, tmp_path):
    env = {k: v for k, v in without_a_folder(cli_env).items() if k != "DIGEST_SECRET_KEY"}
    env["DIGEST_BASE_URL"] = "http://127.0.0.1:8000"  # the outbox, loopback: a local install
    assert run_cli(["init", "letter"], env, tmp_path).returncode == 0
    result = run_cli(["doctor", "--no-dns", "--json"], env, tmp_path / "letter")
    checks = by_check(result)
    assert checks["folder"] == {
        "check": "folder", "status": "ok", "fix": "",
        "detail": f"{tmp_path.resolve() / 'letter'} (settings from its .env and the environment)",
    }  # fmt: skip
    assert checks["secret key"]["status"] == "ok"  # the key init wrote in the folder's .env
    newsletter = checks["newsletter"]
    assert newsletter["status"] == "warn"  # locally; in production a failure
    assert newsletter["detail"].endswith("digest.toml: from_email and postal_address still the starter's placeholder")


def test_an_env_file_every_user_can_read_is_a_failure_in_production(cli_env, tmp_path):
    assert run_cli(["init", "letter"], without_a_folder(cli_env), tmp_path).returncode == 0
    env_file = tmp_path / "letter" / ".env"
    env_file.chmod(0o644)
    result = run_cli(["--dir", tmp_path / "letter", "doctor", "--no-dns", "--json"], without_a_folder(cli_env))
    folder = by_check(result)["folder"]
    assert result.returncode == 1
    assert folder == {
        "check": "folder", "status": "fail",
        "detail": f"{env_file.resolve()} holds the secrets and every user of this machine can read it",
        "fix": f"chmod 600 {env_file.resolve()}",
    }  # fmt: skip


# --- the records, read ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("records", "status", "found"),
    [
        (["v=spf1 include:sendgrid.net -all"], "ok", "v=spf1 include:sendgrid.net -all"),
        (["v=spf1 a ~all", "v=spf1 include:sendgrid.net ~all"], "fail", "2 SPF records"),
        (["v=spf1 +all"], "fail", "lets anyone send"),
        (["v=spf1 include:sendgrid.net"], "warn", "does not end in ~all or -all"),
        (["v=spf1 mx ~all"], "warn", "does not include sendgrid.net"),
        (["v=spf10 something", "spf1"], "fail", "no SPF record"),
    ],
)
def test_spf_records_are_read_as_receivers_read_them(records, status, found):
    check = check_spf(DOMAIN, records, "sendgrid")
    assert check.status == status and found in check.found


@pytest.mark.parametrize(
    ("records", "status"),
    [
        (["v=DMARC1; p=reject"], "ok"),
        (["v=DMARC1 ; P = None ; pct=100"], "ok"),
        (["v=DMARC1; rua=mailto:x@example.org"], "fail"),
        (["v=DMARC1; p=none", "v=DMARC1; p=reject"], "fail"),
        ([], "fail"),
    ],
)
def test_dmarc_needs_exactly_one_record_with_a_policy(records, status):
    assert check_dmarc(DOMAIN, records).status == status


def test_a_revoked_dkim_key_is_not_a_key():
    records = {f"s1._domainkey.{DOMAIN}": ["v=DKIM1; k=rsa; p="], f"s2._domainkey.{DOMAIN}": []}
    check = check_dkim(DOMAIN, ["s1", "s2"], lambda name: records.get(name, []), "smtp")
    assert check.status == "fail"
    assert check.found == f"s1._domainkey.{DOMAIN} holds a revoked key (empty p=); nothing at s2._domainkey.{DOMAIN}"


def test_long_txt_records_are_joined_from_their_strings():
    long_key = "p=" + "A" * 400  # over 255 bytes: DNS carries it as two strings
    with FakeDns({f"x._domainkey.{DOMAIN}": [f"v=DKIM1; k=rsa; {long_key}"]}) as dns_server:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers, resolver.port = ["127.0.0.1"], dns_server.port
        found = txt_lookup(resolver)(f"x._domainkey.{DOMAIN}")
    assert found == [f"v=DKIM1; k=rsa; {long_key}"]


def test_a_name_server_that_does_not_answer_makes_dns_unavailable_and_the_records_warnings():
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port, resolver.lifetime = ["127.0.0.1"], closed_port(socket.SOCK_DGRAM), 2.0
    look_up = txt_lookup(resolver)
    with pytest.raises(DnsUnavailable):
        look_up(DOMAIN)
    checks = sender_records(DOMAIN, "sendgrid", look_up)
    assert [(c.kind, c.status) for c in checks] == [("SPF", "warn"), ("DKIM", "warn"), ("DMARC", "warn")]
    assert checks[0].found == "DNS could not be asked (no answer within 2 s)"
    assert checks[1].to_set.startswith(f"s1._domainkey.{DOMAIN} CNAME to the s1/s2 targets")
