"""The checklist as tables, as JSON and as a Markdown report for the network team (pure text).

:func:`sections` gives every table once (title, what it is for, headers, rows); the command
line draws them, :func:`to_markdown` writes them as GitHub-flavoured Markdown tables under
headings, with the geo-DNS policy as a ``[GeoDns]`` file (``hybridvoice dns export`` turns it
into BIND views) and as the Windows DNS Server commands
(:func:`hybridvoice.mediation.geo_dns_export.windows_commands`, the original's recommended
set-up). :func:`to_json` is one object with the same content.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from hybridvoice.media.ports import PORTS_PER_CALL
from hybridvoice.mediation.geo_dns import GeoPolicy
from hybridvoice.mediation.geo_dns_export import windows_commands

from .checklist import Checklist

__all__ = ["Section", "geo_dns_toml", "sections", "to_json", "to_markdown"]


@dataclass(frozen=True, slots=True)
class Section:
    """One table of the report."""

    title: str
    intro: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def _geo_rows(policy: GeoPolicy) -> tuple[tuple[str, ...], ...]:
    return tuple(
        (s.name, ", ".join(map(str, s.subnets)), ", ".join(map(str, s.addresses)))
        for s in policy.sites
    )


_UNMATCHED = {"all": "every site's addresses", "nxdomain": "NXDOMAIN", "refuse": "REFUSED"}


def sections(checklist: Checklist) -> list[Section]:
    """Every table of the checklist, in the report's order."""
    c = checklist
    out = [
        Section(
            "Findings",
            "Problems found in the settings: fix them before the go-live "
            "(the key names the setting).",
            ("severity", "key", "finding"),
            tuple((f.severity, f.key, f.message) for f in c.findings),
        ),
        Section(
            "DNS records",
            "External records go into the public zone, internal ones into "
            f"the internal DNS only ({c.bypass_name} must not resolve from the internet).",
            ("name", "type", "value", "visibility", "site", "why"),
            tuple((r.name, r.type, r.value, r.visibility, r.site, r.why) for r in c.dns),
        ),
    ]
    if c.geo_dns is not None:
        p = c.geo_dns
        out.append(
            Section(
                "Geo-DNS policy",
                f"{p.name} (zone {p.zone}, TTL {p.ttl} s): each client subnet "
                f"gets its own site's mediation addresses; clients of no site get "
                f"{_UNMATCHED[p.unmatched]}.",
                ("site", "client subnets", "mediation addresses"),
                _geo_rows(p),
            )
        )
    for side in ("external", "internal"):
        rules = [r for r in c.firewall if r.side == side]
        out.append(
            Section(
                f"Firewall: {side}",
                "Destination ports; source ports are any unless the ports "
                "say otherwise. Direction is seen from the appliance.",
                ("from", "to", "protocol", "ports", "direction", "why", "setting"),
                tuple(
                    (r.source, r.destination, r.protocol, r.ports, r.direction, r.why, r.key)
                    for r in rules
                ),
            )
        )
    out += [
        Section(
            "Certificates",
            "Subject and subject alternative names of every certificate; "
            "the site CA's are made by hybridvoice up, the public one you order.",
            ("role", "holder", "subject", "SANs", "issuer", "why"),
            tuple(
                (x.role, x.holder, x.subject, ", ".join(x.sans) or "-", x.issuer, x.why)
                for x in c.certificates
            ),
        ),
        Section(
            "Mediation media ports",
            f"{PORTS_PER_CALL} ports per call (RTP and RTCP of "
            "both legs): the range must hold the appliance's calls.",
            ("appliance", "calls", "from", "range", "ports", "needed", "calls it holds", "enough"),
            tuple(
                (
                    s.appliance,
                    str(s.calls),
                    s.calls_from,
                    f"{s.start}-{s.end}",
                    str(s.ports),
                    str(s.ports_needed),
                    str(s.calls_fit),
                    "yes" if s.enough else "NO",
                )
                for s in c.sizing
            ),
        ),
    ]
    return out


def geo_dns_toml(policy: GeoPolicy) -> str:
    """The policy as a ``[GeoDns]`` file for ``hybridvoice dns show|serve|export``."""
    lines = [
        "[GeoDns]",
        f"ServiceName = {json.dumps(policy.name)}",
        f"TTL = {policy.ttl}",
        f"Unmatched = {json.dumps(policy.unmatched)}",
    ]
    if policy.nameserver:  # the admin's policy file named it
        lines.append(f"NameServer = {json.dumps(policy.nameserver)}")
        if policy.nameserver_addresses:
            ips = [str(a) for a in policy.nameserver_addresses]
            lines.append(f"NameServerIPs = {json.dumps(ips)}")
    else:
        lines += [
            f'# NameServer = "ns1.{policy.zone}"  # the zone\'s name server: set yours',
            "# NameServerIPs = []  # its addresses, required when it is inside the zone",
        ]
    for site in policy.sites:
        lines += [
            "",
            f"[GeoDns.Sites.{site.name}]",
            f"ClientSubnets = {json.dumps([str(n) for n in site.subnets])}",
            f"MediationIPs = {json.dumps([str(a) for a in site.addresses])}",
        ]
    return "\n".join(lines) + "\n"


def _geo_json(policy: GeoPolicy | None) -> dict[str, object] | None:
    return None if policy is None else policy.to_json()


def to_json(checklist: Checklist) -> dict[str, Any]:
    """The whole checklist as one JSON-ready object."""
    c = checklist
    return {
        "source": c.source,
        "sites": list(c.sites),
        "bypass_name": c.bypass_name,
        "findings": [asdict(f) for f in c.findings],
        "dns": [asdict(r) for r in c.dns],
        "geo_dns": _geo_json(c.geo_dns),
        "firewall": [asdict(r) for r in c.firewall],
        "certificates": [asdict(x) for x in c.certificates],
        "media_ports": [
            {
                **asdict(s),
                "ports": s.ports,
                "ports_needed": s.ports_needed,
                "calls_fit": s.calls_fit,
                "enough": s.enough,
            }
            for s in c.sizing
        ],
        "import_notes": list(c.notes),
    }


def _cell(text: str) -> str:
    text = text.replace("<", "&lt;")  # never an HTML tag; "->" stays as written
    return text.replace("|", "\\|").replace("\n", " ") or " "


def _table(section: Section) -> list[str]:
    if not section.rows:
        return ["(none)"]
    lines = [
        "| " + " | ".join(section.headers) + " |",
        "|" + "|".join("---" for _ in section.headers) + "|",
    ]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in section.rows]
    return lines


def to_markdown(checklist: Checklist) -> str:
    """A self-contained report: headings, a table per section, the geo-DNS configuration."""
    c = checklist
    errors = sum(f.severity == "error" for f in c.findings)
    lines = [
        "# Network checklist: DNS, firewall and certificates",
        "",
        f"Deployment: {c.source}. Sites: {', '.join(c.sites)}. "
        f"{len(c.dns)} DNS records, {len(c.firewall)} firewall rules, "
        f"{len(c.certificates)} certificates, {len(c.findings)} findings ({errors} errors).",
        "",
        "Written by `hybridvoice plan checklist`; the addresses, ports and names are this "
        "deployment's own settings.",
    ]
    for section in sections(c):
        lines += ["", f"## {section.title}", "", _cell(section.intro), "", *_table(section)]
    if c.geo_dns is not None:
        lines += [
            "",
            "### Geo-DNS as a policy file",
            "",
            "Save as `geo.toml` (with your zone's name server where the file says so); "
            "`hybridvoice dns export geo.toml --format bind` writes BIND 9 views, "
            "`hybridvoice dns serve geo.toml` answers the name itself (docs/geo-dns.md).",
            "",
            "```toml",
            geo_dns_toml(c.geo_dns).rstrip("\n"),
            "```",
            "",
            "### Geo-DNS on Windows DNS Server",
            "",
            "```powershell",
            windows_commands(c.geo_dns).rstrip("\n"),
            "```",
        ]
    if c.notes:
        lines += [
            "",
            "## What the CloudConnector.ini import changed",
            "",
            "Ports moved so that every role runs on one host (hybridvoice init --ini):",
            "",
            *(f"- {_cell(n)}" for n in c.notes),
        ]
    return "\n".join(lines) + "\n"
