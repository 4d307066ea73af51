"""The DNS records a sender needs on its From domain, and what is there: SPF (who may send as the
domain), DKIM (the key that signs its mail) and DMARC (what receivers do with mail that fails both).
Gmail and Yahoo refuse bulk mail without them.

The lookups go through a `TxtLookup` (dnspython's resolver, `txt_lookup`), so a check can be pointed at
a given name server, or at none: when DNS cannot be asked, each record is reported with what to set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import dns.exception
import dns.rdtypes.ANY.TXT
import dns.resolver

Status = Literal["ok", "warn", "fail"]
# SendGrid's domain authentication asks for these two selectors (CNAMEs to keys SendGrid holds and rotates).
SENDGRID_DKIM_SELECTORS = ("s1", "s2")


class DnsUnavailable(Exception):
    """DNS could not be asked (no network, no name server answered): nothing is known about the record."""


# The TXT strings at a name, each record's strings joined; [] when the name has none or does not exist.
TxtLookup = Callable[[str], list[str]]


def txt_lookup(resolver: dns.resolver.Resolver) -> TxtLookup:
    """Look TXT records up with `resolver` (CNAMEs followed, as for DKIM keys SendGrid hosts)."""

    def look_up(name: str) -> list[str]:
        try:
            answer = resolver.resolve(name, "TXT", raise_on_no_answer=False, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.Timeout:
            raise DnsUnavailable(f"no answer within {resolver.lifetime:g} s") from None
        except dns.resolver.NoNameservers:
            raise DnsUnavailable("no name server answered") from None
        except dns.resolver.NoResolverConfiguration:
            raise DnsUnavailable("no name server is configured") from None
        except (dns.exception.DNSException, OSError) as exc:
            raise DnsUnavailable(f"{type(exc).__name__}: {exc}") from None
        if answer.rrset is None:
            return []
        return [
            b"".join(rdata.strings).decode("utf-8", "replace")
            for rdata in answer.rrset
            if isinstance(rdata, dns.rdtypes.ANY.TXT.TXT)
        ]

    return look_up


@dataclass(frozen=True)
class RecordCheck:
    """One record: where it goes, what was found there, and the record to set when it is missing or wrong."""

    kind: Literal["SPF", "DKIM", "DMARC"]
    name: str
    status: Status
    found: str
    to_set: str


def spf_record(provider: str) -> str:
    """An SPF record that lets the provider send as the domain (`~all`: others soft-fail)."""
    if provider == "sendgrid":
        return "v=spf1 include:sendgrid.net ~all"
    if provider == "smtp":
        return "v=spf1 a:<your SMTP server's name> ~all (or the include: your mail service documents)"
    return "v=spf1 mx ~all (with the servers that send the newsletter)"


def dmarc_record(domain: str) -> str:
    return f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain} (p=quarantine once the reports look right)"


def dkim_record(provider: str) -> str:
    if provider == "sendgrid":
        return "CNAME to the s1/s2 targets SendGrid shows under Settings > Sender Authentication"
    return "TXT v=DKIM1; k=rsa; p=<the public key of the server that signs the mail>"


def check_spf(domain: str, records: Sequence[str], provider: str) -> RecordCheck:
    to_set = spf_record(provider)
    spf = [r for r in records if r.lower() == "v=spf1" or r.lower().startswith("v=spf1 ")]
    if not spf:
        return RecordCheck("SPF", domain, "fail", "no SPF record", f"TXT {domain} {to_set}")
    if len(spf) > 1:
        found = " | ".join(spf)
        return RecordCheck(
            "SPF",
            domain,
            "fail",
            f"{len(spf)} SPF records (receivers then treat SPF as failed): {found}",
            f"one TXT record at {domain} merging them",
        )
    record = spf[0]
    terms = record.lower().split()[1:]
    last = terms[-1] if terms else ""
    if last in ("all", "+all"):
        return RecordCheck("SPF", domain, "fail", f"{record} lets anyone send as {domain}", f"TXT {domain} {to_set}")
    if last not in ("~all", "-all"):
        return RecordCheck("SPF", domain, "warn", f"{record} does not end in ~all or -all", f"TXT {domain} {to_set}")
    if provider == "sendgrid" and "include:sendgrid.net" not in terms:
        return RecordCheck(
            "SPF",
            domain,
            "warn",
            f"{record} does not include sendgrid.net (fine when SendGrid's domain authentication sends from a "
            "subdomain of its own, with automated security)",
            f"TXT {domain} {to_set}",
        )
    return RecordCheck("SPF", domain, "ok", record, "")


def check_dmarc(domain: str, records: Sequence[str]) -> RecordCheck:
    name = f"_dmarc.{domain}"
    to_set = f"TXT {name} {dmarc_record(domain)}"
    dmarc = [r for r in records if r.replace(" ", "").lower().startswith("v=dmarc1")]
    if not dmarc:
        return RecordCheck("DMARC", name, "fail", "no DMARC record", to_set)
    if len(dmarc) > 1:
        return RecordCheck("DMARC", name, "fail", f"{len(dmarc)} DMARC records (receivers ignore them all)", to_set)
    policy = _tags(dmarc[0]).get("p", "").lower()
    if policy not in ("none", "quarantine", "reject"):
        return RecordCheck("DMARC", name, "fail", f"{dmarc[0]}: no valid p= policy", to_set)
    return RecordCheck("DMARC", name, "ok", dmarc[0], "")


def check_dkim(domain: str, selectors: Sequence[str], look_up: TxtLookup, provider: str) -> RecordCheck:
    """A DKIM key under one of the selectors; without selectors to try, what to set (and how to check)."""
    where = f"<selector>._domainkey.{domain}"
    if not selectors:
        return RecordCheck(
            "DKIM",
            where,
            "warn",
            "no selector to look up (give --dkim-selector, the one your server signs with)",
            f"{where} {dkim_record(provider)}",
        )
    names = [f"{selector}._domainkey.{domain}" for selector in selectors]
    problems = []
    for name in names:
        keys = [r for r in look_up(name) if "p=" in r.replace(" ", "")]
        if not keys:
            problems.append(f"nothing at {name}")
            continue
        if not _tags(keys[0]).get("p"):
            problems.append(f"{name} holds a revoked key (empty p=)")
            continue
        return RecordCheck("DKIM", name, "ok", f"a key at {name}", "")
    return RecordCheck("DKIM", " or ".join(names), "fail", "; ".join(problems), f"{names[0]} {dkim_record(provider)}")


def sender_records(
    domain: str, provider: str, look_up: TxtLookup | None, dkim_selectors: Sequence[str] = ()
) -> list[RecordCheck]:
    """SPF, DKIM and DMARC for the From domain. With no lookup, or when DNS cannot be asked, each is a
    warning carrying the record to set."""
    selectors = list(dkim_selectors) or (list(SENDGRID_DKIM_SELECTORS) if provider == "sendgrid" else [])
    if look_up is None:
        return _unknown(domain, provider, selectors, "DNS lookups are off (--no-dns)")
    try:
        return [
            check_spf(domain, look_up(domain), provider),
            check_dkim(domain, selectors, look_up, provider),
            check_dmarc(domain, look_up(f"_dmarc.{domain}")),
        ]
    except DnsUnavailable as exc:
        return _unknown(domain, provider, selectors, f"DNS could not be asked ({exc})")


def _unknown(domain: str, provider: str, selectors: Sequence[str], why: str) -> list[RecordCheck]:
    dkim_name = f"{selectors[0] if selectors else '<selector>'}._domainkey.{domain}"
    return [
        RecordCheck("SPF", domain, "warn", why, f"TXT {domain} {spf_record(provider)}"),
        RecordCheck("DKIM", dkim_name, "warn", why, f"{dkim_name} {dkim_record(provider)}"),
        RecordCheck("DMARC", f"_dmarc.{domain}", "warn", why, f"TXT _dmarc.{domain} {dmarc_record(domain)}"),
    ]


def _tags(record: str) -> dict[str, str]:
    """A DKIM or DMARC record's tag=value list (RFC 6376 3.2): names lowercased, whitespace trimmed."""
    tags: dict[str, str] = {}
    for part in record.split(";"):
        key, _, value = part.partition("=")
        if key.strip():
            tags[key.strip().lower()] = "".join(value.split())
    return tags
