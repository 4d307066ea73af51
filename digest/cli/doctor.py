"""`digest doctor`: checks the installation and lists what to fix (digest.jobs.doctor)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from digest.cli.output import out, print_json

if TYPE_CHECKING:
    from digest.delivery.sender_dns import TxtLookup

MARKS = {"ok": "[green]ok[/]  ", "warn": "[yellow]warn[/]", "fail": "[bold red]FAIL[/]"}


def doctor(
    no_dns: Annotated[
        bool, typer.Option("--no-dns", help="Do not look the From domain's records up; print what to set.")
    ] = False,
    nameserver: Annotated[
        list[str] | None,
        typer.Option(help="Ask this name server (an IP, or IPv4:port; repeatable) instead of the system's."),
    ] = None,
    dkim_selector: Annotated[
        list[str] | None,
        typer.Option(help="DKIM selector to look for (repeatable); default: s1 and s2 with SendGrid."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per check: check, status, detail, fix.")
    ] = False,
) -> None:
    """Check the settings, the newsletter file, the store, the provider and the From domain's DNS.

    Production (mail leaves through SendGrid or SMTP, or the public address is not this machine) needs
    https, the tokens and the webhook key. Exit code 0 when nothing needs fixing, 1 with the list of
    what to fix."""
    from digest.jobs.doctor import diagnose

    look_up: TxtLookup | None = None if no_dns else _resolver(nameserver or [])
    diagnosis = diagnose(look_up=look_up, dkim_selectors=dkim_selector or [])
    if as_json:
        for finding in diagnosis.findings:
            print_json(finding)
    else:
        for finding in diagnosis.findings:
            out.print(f"{MARKS[finding.status]} {finding.check}: {escape(finding.detail)}", highlight=False)
            if finding.status == "warn" and finding.fix:
                out.print(f"     {escape(finding.fix)}", highlight=False)
        to_fix = diagnosis.to_fix
        if to_fix:
            out.print(f"\n{len(to_fix)} to fix:", highlight=False)
            for n, finding in enumerate(to_fix, 1):
                out.print(f"{n}. {finding.check}: {escape(finding.fix or finding.detail)}", highlight=False)
        else:
            warnings = sum(f.status == "warn" for f in diagnosis.findings)
            out.print(f"\nnothing to fix{f' ({warnings} warnings above)' if warnings else ''}", highlight=False)
    if diagnosis.to_fix:
        raise typer.Exit(1)


def _resolver(nameservers: list[str]) -> TxtLookup:
    import dns.resolver

    from digest.delivery.sender_dns import DnsUnavailable, txt_lookup

    try:
        resolver = dns.resolver.Resolver(configure=not nameservers)
    except dns.resolver.NoResolverConfiguration as exc:
        reason = str(exc) or "no name server configured"

        def unavailable(name: str) -> list[str]:
            raise DnsUnavailable(reason)

        return unavailable
    if nameservers:
        hosts = []
        for given in nameservers:
            host, _, port = given.rpartition(":") if given.count(":") == 1 else (given, "", "")
            hosts.append(host)
            if port:
                if not port.isdigit():
                    raise typer.BadParameter(f"{given!r}: the port is not a number", param_hint="--nameserver")
                resolver.port = int(port)
        try:
            resolver.nameservers = hosts
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--nameserver") from None
    resolver.lifetime = 5.0
    return txt_lookup(resolver)
