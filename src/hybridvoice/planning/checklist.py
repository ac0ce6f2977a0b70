"""The DNS, firewall and certificate checklist of a deployment, from its settings (pure).

What the original left to its planning guides (``CCE-REFERENCE.md`` "DNS", "Ports",
"Certificates"; seed 003, the bypass name and its geo-DNS policy) answered from the actual
topology (:class:`~.checklist_source.Deployment`: one appliance, a CloudConnector.ini import
or a fleet of sites):

- DNS records: the public A record of each site's access edge pool FQDN (one name per site,
  every edge of the site; :func:`hybridvoice.cms.edge_names.external_names`), the media relay
  name, the internal-only media bypass service name with each site's mediation addresses and
  the geo-DNS policy that hands each client subnet its own site's
  (:mod:`hybridvoice.cms.settings_geo_dns`, :mod:`hybridvoice.mediation.geo_dns`), the
  mediation pool and gateway names;
- firewall rules (:mod:`.checklist_firewall`);
- certificates: the edge's external one from a public CA (subject the pool FQDN, SANs the pool
  FQDN and ``sip.<domain>`` of every SIP domain: :mod:`hybridvoice.pki.external`'s rules),
  and what the site CA issues (:mod:`hybridvoice.edge.tls_names`, RFC 5280 §4.2.1.6);
- the mediation media range sized at 4 ports per call (RFC 3550 §11: an RTP/RTCP pair per
  leg, :data:`hybridvoice.media.PORTS_PER_CALL`) for the appliance's call capacity;
- findings: what is wrong or missing (a range too small, a name left to its default, two
  sites on one edge name, a private address in a public record, a site no geo-DNS subnet
  finds).
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from hybridvoice.cms.edge_names import external_names, internal_names
from hybridvoice.cms.settings import SettingsError
from hybridvoice.cms.settings_edge import relay_addresses
from hybridvoice.cms.settings_geo_dns import parse_geo_dns
from hybridvoice.edge.tls_names import runs_mras, speaks_tls, tls_names
from hybridvoice.media.ports import PORTS_PER_CALL
from hybridvoice.mediation.geo_dns import GeoPolicy, policy_from_settings
from hybridvoice.pki.identity import ApplianceIdentity

from .checklist_firewall import FirewallRule, firewall_rules
from .checklist_source import ApplianceInput, Deployment

__all__ = [
    "RELAY_PORTS_PER_CALL",
    "CertificateNeed",
    "Checklist",
    "DnsRecord",
    "Finding",
    "MediaSizing",
    "build_checklist",
]

#: the edge's media relay: an RTP/RTCP allocation per relayed call (CCE-REFERENCE "Ports")
RELAY_PORTS_PER_CALL: Final = 2
Visibility = Literal["external", "internal"]
Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class DnsRecord:
    """One record to create: ``name`` ``type`` ``value``, public or internal, for a site."""

    name: str
    type: str  # A or AAAA
    value: str
    visibility: Visibility
    site: str  # "" for every site
    why: str


@dataclass(frozen=True, slots=True)
class CertificateNeed:
    """One certificate: who presents it, its subject and SANs, who issues it, and why."""

    role: str
    holder: str  # the appliance, the site or the gateway
    subject: str
    sans: tuple[str, ...]  # "DNS:x", "IP:y", "URI:z"
    issuer: str
    why: str


@dataclass(frozen=True, slots=True)
class MediaSizing:
    """An appliance's mediation media range against its call capacity, 4 ports per call."""

    appliance: str
    calls: int  # concurrent calls the appliance takes
    calls_from: str  # why: "HardwareType Normal" or "MaxConcurrentCalls"
    start: int
    end: int

    @property
    def ports(self) -> int:
        return self.end - self.start + 1

    @property
    def ports_needed(self) -> int:
        return PORTS_PER_CALL * self.calls

    @property
    def calls_fit(self) -> int:
        return self.ports // PORTS_PER_CALL

    @property
    def enough(self) -> bool:
        return self.ports >= self.ports_needed


@dataclass(frozen=True, slots=True)
class Finding:
    """A problem found: how bad, the key to change, and what to do."""

    severity: Severity
    key: str
    message: str


@dataclass(frozen=True, slots=True)
class Checklist:
    """Everything to prepare for a deployment."""

    source: str
    sites: tuple[str, ...]
    dns: tuple[DnsRecord, ...]
    bypass_name: str
    geo_dns: GeoPolicy | None
    firewall: tuple[FirewallRule, ...]
    certificates: tuple[CertificateNeed, ...]
    sizing: tuple[MediaSizing, ...]
    findings: tuple[Finding, ...]
    notes: tuple[str, ...] = ()


def _rtype(address: str) -> str:
    return "A" if ipaddress.ip_address(address).version == 4 else "AAAA"


def _public(address: str) -> bool:
    return ipaddress.ip_address(address).is_global


# --- DNS --------------------------------------------------------------------------------------


def _edge_records(deployment: Deployment, findings: list[Finding]) -> list[DnsRecord]:
    records: list[DnsRecord] = []
    owner: dict[str, str] = {}  # pool FQDN -> the first site that publishes it
    for site in deployment.sites:
        appliances = deployment.of_site(site)
        names = {external_names(a.settings)[0] for a in appliances}
        if len(names) > 1:
            findings.append(
                Finding(
                    "error",
                    "EdgeServer.ExternalSIPPoolName",
                    f"site {site}: its appliances name {len(names)} access edge "
                    f"pools ({', '.join(sorted(names))}): a site has one name "
                    "holding every edge of the site",
                )
            )
        for a in appliances:
            pool = external_names(a.settings)[0]
            other = owner.setdefault(pool, site)
            if other != site:
                findings.append(
                    Finding(
                        "error",
                        "EdgeServer.ExternalSIPPoolName",
                        f"sites {other} and {site} both publish {pool}: each "
                        "site needs its own access edge pool FQDN (the online "
                        "service tells sites apart by it)",
                    )
                )
            for ip in a.settings.edge_server.external_sip_ips:
                records.append(
                    DnsRecord(
                        pool,
                        _rtype(ip),
                        ip,
                        "external",
                        site,
                        f"access edge of site {site} ({a.name}): the online "
                        "service and federated peers reach the site's edges",
                    )
                )
                if not _public(ip):
                    findings.append(
                        Finding(
                            "warning",
                            "EdgeServer.ExternalSIPIPs",
                            f"{a.name}: {ip} is not a public address: the public "
                            f"record of {pool} must hold the address the internet "
                            "reaches (the NAT's)",
                        )
                    )
            if a.settings.edge_server.external_sip_pool_name is None:
                findings.append(
                    Finding(
                        "warning",
                        "EdgeServer.ExternalSIPPoolName",
                        f"{a.name}: not set, so the access edge is {pool} (the "
                        "name it registers and its certificate's subject): set "
                        "the pool FQDN you publish",
                    )
                )
            elif "." not in pool:
                domain = a.settings.common.default_domain
                findings.append(
                    Finding(
                        "warning",
                        "EdgeServer.ExternalSIPPoolName",
                        f"{a.name}: {pool!r} is no fully qualified name: a public record and "
                        f"the certificate's subject need one (e.g. {pool}.{domain})",
                    )
                )
            records += _relay_records(a, site, findings)
    return records


def _relay_records(a: ApplianceInput, site: str, findings: list[Finding]) -> list[DnsRecord]:
    edge = a.settings.edge_server
    on, _, public, _ = relay_addresses(a.settings.media_relay, edge)
    if not on or edge.external_mr_fqdn_pool_name is None:
        return []
    if not _public(public):
        findings.append(
            Finding(
                "warning",
                "EdgeServer.ExternalMRPublicIPs",
                f"{a.name}: {public} is not a public address: external clients reach the media "
                f"relay {edge.external_mr_fqdn_pool_name} at it (behind NAT: the NAT's address)",
            )
        )
    why = f"media relay of site {site} ({a.name}): external clients' TURN server"
    return [
        DnsRecord(edge.external_mr_fqdn_pool_name, _rtype(public), public, "external", site, why)
    ]


def _mediation_address(a: ApplianceInput) -> str:
    ms = a.settings.mediation_server
    return ms.bypass_service_ip or ms.ip


def _internal_records(deployment: Deployment, bypass_name: str) -> list[DnsRecord]:
    records: list[DnsRecord] = []
    several = len(deployment.sites) > 1
    for site in deployment.sites:
        for a in deployment.of_site(site):
            address = _mediation_address(a)
            why = f"media bypass web service, mediation of {a.name}: internal clients only" + (
                f"; geo-DNS answers it to site {site}'s client subnets" if several else ""
            )
            records.append(DnsRecord(bypass_name, _rtype(address), address, "internal", site, why))
    for a in deployment.appliances:
        s = a.settings
        ms, edge = s.mediation_server, s.edge_server
        if ms.pool_name:
            records.append(
                DnsRecord(
                    ms.pool_name,
                    _rtype(ms.ip),
                    ms.ip,
                    "internal",
                    a.site,
                    f"mediation pool of {a.name}: gateways reach it by this "
                    "name (a TLS gateway checks it, RFC 5922)",
                )
            )
        for name in internal_names(s):
            ip = edge.internal_server_ips[0]
            records.append(
                DnsRecord(
                    name,
                    _rtype(ip),
                    ip,
                    "internal",
                    a.site,
                    f"edge internal side of {a.name}: the name it carries in "
                    "Record-Route toward the mediation role",
                )
            )
        for gw in (g for g in s.gateways if g.enabled and g.fqdn):
            value = gw.ip or "(the gateway's address)"
            kind = _rtype(gw.ip) if gw.ip else "A"
            records.append(
                DnsRecord(
                    gw.fqdn or "",
                    kind,
                    value,
                    "internal",
                    a.site,
                    f"gateway {gw.name}: the name its certificate holds; "
                    + (
                        "the appliance connects to the IP"
                        if gw.ip
                        else "the appliance resolves it (RFC 3263)"
                    ),
                )
            )
    return list(dict.fromkeys(records))


def _geo_policy(
    deployment: Deployment,
    geo: Mapping[str, Any] | None,
    bypass_name: str,
    findings: list[Finding],
) -> GeoPolicy | None:
    """The geo-DNS policy: the ``[GeoDns]`` file given, else each site's client subnets from
    its appliances' ``[MediationServer] InternalSubnets`` (problems become findings)."""
    appliances = [a.settings for a in deployment.appliances]
    if geo is not None:  # the admin's own policy: its problems are errors (SettingsError)
        return policy_from_settings(parse_geo_dns(geo, appliances))
    sites: dict[str, dict[str, Any]] = {}
    for site in deployment.sites:
        subnets = dict.fromkeys(
            str(n)
            for a in deployment.of_site(site)
            for n in a.settings.mediation_server.internal_subnets
        )
        if not subnets and len(deployment.sites) == 1:
            continue  # one site: a plain internal record, no policy needed
        if not subnets:
            findings.append(
                Finding(
                    "warning",
                    "MediationServer.InternalSubnets",
                    f"site {site}: no client subnets, so geo-DNS cannot send its "
                    "clients to its mediation addresses: set InternalSubnets, "
                    "or give a [GeoDns] policy file",
                )
            )
            continue
        sites[site] = {"ClientSubnets": list(subnets)}
    if not sites:
        return None
    zone = bypass_name.partition(".")[2]
    raw = {
        "GeoDns": {"ServiceName": bypass_name, "Sites": sites, "NameServer": f"ns1.{zone}.invalid"}
    }  # none of ours
    try:  # the zone's name server is the admin's own: not ours to name
        return replace(policy_from_settings(parse_geo_dns(raw, appliances)), nameserver="")
    except SettingsError as exc:
        for p in exc.problems:
            key = "MediationServer.InternalSubnets" if ".ClientSubnets" in p.key else p.key
            where = p.key.removeprefix("GeoDns.Sites.").partition(".")[0]
            findings.append(
                Finding("error", key, f"geo-DNS of {bypass_name}, site {where}: {p.reason}")
            )
        return None


# --- certificates -----------------------------------------------------------------------------


def _needs_site_ca(a: ApplianceInput) -> bool:
    """Whether ``up`` makes the site CA for this appliance (mgmt.appliance_setup's rule)."""
    s = a.settings
    return s.online.service_url.startswith("https:") or runs_mras(s) or speaks_tls(s)


def _sans(dns: Iterable[str], ips: Iterable[str] = (), uris: Iterable[str] = ()) -> tuple[str, ...]:
    return (*(f"DNS:{n}" for n in dns), *(f"IP:{i}" for i in ips), *(f"URI:{u}" for u in uris))


def _certificates(deployment: Deployment) -> list[CertificateNeed]:
    certs: list[CertificateNeed] = []
    for site in deployment.sites:
        first = deployment.of_site(site)[0].settings
        pool = external_names(first)[0]
        sip = [f"sip.{d}" for d in first.common.sip_domains]
        certs.append(
            CertificateNeed(
                "access edge (external)",
                f"site {site}",
                f"CN={pool}",
                _sans([pool, *sip]),
                "a public CA",
                "the online service and federated peers check it; sip.<domain> is "
                "never the subject; it comes with its whole chain (the checks: docs/pki.md)",
            )
        )
    ca_sites = [
        site
        for site in deployment.sites
        if any(_needs_site_ca(a) for a in deployment.of_site(site))
    ]
    for site in ca_sites:
        certs.append(
            CertificateNeed(
                "site CA",
                f"site {site}",
                f"CN={site} site CA, O=hybridvoice",
                (),
                "self-signed",
                "signs the roles' certificates (5 years); made on the first start: back it up "
                "(hybridvoice ca backup) and restore it on every appliance of the site",
            )
        )
    online_done = False
    for a in deployment.appliances:
        if a.site not in ca_sites:
            continue
        names = tls_names(a.settings)
        dns, ips = names["appliance"]
        subject = f"CN={dns[0] if dns else 'appliance'}"  # pki.issue: the credential name
        certs.append(
            CertificateNeed(
                "edge and mediation",
                a.name,
                subject,
                _sans(dns, ips),
                f"site CA of {a.site}",
                "mutual TLS between the roles and toward the online service and TLS gateways "
                "(2 years, renewed by up 30 days before expiry)",
            )
        )
        if not online_done:
            online_done = True
            o_dns, o_ips = names["online"]
            certs.append(
                CertificateNeed(
                    "online service SIP",
                    "online service",
                    f"CN={o_dns[0]}",
                    _sans(o_dns, o_ips),
                    f"site CA of {a.site}",
                    "the name the edge checks on SIP and MRAS ([Common] OnlineSipFederationFqdn)",
                )
            )
        if a.settings.online.service_url.startswith("https:"):
            certs += _online_api(a)
            uri = ApplianceIdentity(a.site, a.name).uri
            certs.append(
                CertificateNeed(
                    "appliance client (online API)",
                    a.name,
                    f"CN={a.name}, OU={a.site}",
                    _sans((), (), [uri]),
                    f"site CA of {a.site}",
                    "the appliance's identity "
                    "toward the online service's HTTPS API (clientAuth only)",
                )
            )
    return [*list(dict.fromkeys(certs)), *_gateway_certificates(deployment)]


def _online_api(a: ApplianceInput) -> list[CertificateNeed]:
    host = urllib.parse.urlsplit(a.settings.online.service_url).hostname or ""
    try:
        sans = _sans((), [str(ipaddress.ip_address(host))])
    except ValueError:
        sans = _sans([host])
    subject = f"CN={host}" if sans[0].startswith("DNS:") else "CN=online-api"
    return [
        CertificateNeed(
            "online service API",
            "online service",
            subject,
            sans,
            f"site CA of {a.site}",
            "HTTPS of [Online] ServiceURL: appliances check it against their site root",
        )
    ]


def _gateway_certificates(deployment: Deployment) -> list[CertificateNeed]:
    certs: dict[tuple[str, str], CertificateNeed] = {}
    for a in deployment.appliances:
        for gw in (g for g in a.settings.gateways if g.enabled and g.protocol == "TLS"):
            name = gw.tls_name
            sans = _sans([name]) if gw.fqdn else _sans((), [name])
            issuer = (
                f"the gateway's own CA ({gw.trusted_roots_file})"
                if gw.trusted_roots_file
                else f"site CA of {a.site} (hybridvoice ca issue-gateway)"
            )
            mutual = "mutual TLS: " if gw.mutual_tls else ""
            why = f"{mutual}the mediation role checks the gateway's name (RFC 5922 §7.2)"
            certs.setdefault(
                (a.site, gw.name),
                CertificateNeed(
                    "gateway", f"{gw.name} (site {a.site})", f"CN={name}", sans, issuer, why
                ),
            )
    return list(certs.values())


# --- sizing -----------------------------------------------------------------------------------


def _sizing(deployment: Deployment, findings: list[Finding]) -> list[MediaSizing]:
    out: list[MediaSizing] = []
    for a in deployment.appliances:
        c, ms = a.settings.common, a.settings.mediation_server
        why = (
            "MaxConcurrentCalls"
            if c.max_concurrent_calls_override is not None
            else f"HardwareType {c.hardware_type}"
        )
        size = MediaSizing(
            a.name, c.max_concurrent_calls, why, ms.media_port_start, ms.media_port_end
        )
        out.append(size)
        if not size.enough:
            findings.append(_too_small(deployment, size))
        _relay_sizing(a, findings)
    return out


def _too_small(deployment: Deployment, size: MediaSizing) -> Finding:
    have = (
        f"holds {size.ports} ports = {size.calls_fit} calls at {PORTS_PER_CALL} ports per "
        f"call, but the appliance takes {size.calls} calls ({size.calls_from}): it needs "
        f"{size.ports_needed} ports"
    )
    if deployment.media_range_key == "Fleet.MediaPortsPerAppliance":
        return Finding(
            "error",
            deployment.media_range_key,
            f"every appliance's media range "
            f"{have}: set MediaPortsPerAppliance = {size.ports_needed}",
        )
    return Finding(
        "error",
        deployment.media_range_key,
        f"{size.appliance}: MediaPortStart-"
        f"MediaPortEnd {size.start}-{size.end} {have}: set MediaPortEnd = "
        f"{size.start + size.ports_needed - 1}",
    )


def _relay_sizing(a: ApplianceInput, findings: list[Finding]) -> None:
    s = a.settings
    if not relay_addresses(s.media_relay, s.edge_server)[0]:
        return
    first, _, last = s.edge_server.external_mr_port_range.partition("-")
    ports, needed = int(last) - int(first) + 1, RELAY_PORTS_PER_CALL * s.common.max_concurrent_calls
    if ports < needed:
        findings.append(
            Finding(
                "warning",
                "EdgeServer.ExternalMRPortRange",
                f"{a.name}: {first}-{last} holds {ports} relay ports = "
                f"{ports // RELAY_PORTS_PER_CALL} relayed calls at "
                f"{RELAY_PORTS_PER_CALL} per call, fewer than the appliance's "
                f"{s.common.max_concurrent_calls} calls",
            )
        )


# --- the whole checklist ----------------------------------------------------------------------


def _grouped(findings: list[Finding], appliances: Iterable[str]) -> tuple[Finding, ...]:
    """Each finding once, errors first; the same finding of several appliances (``name:
    text``) as one, naming them all (``amsterdam-1, amsterdam-2: text``)."""
    names = set(appliances)
    who: dict[tuple[Severity, str, str], list[str]] = {}
    for f in findings:
        head, sep, text = f.message.partition(": ")
        if sep and head in names:
            who.setdefault((f.severity, f.key, text), []).append(head)
        else:
            who.setdefault((f.severity, f.key, f.message), [])
    grouped = [
        Finding(severity, key, f"{', '.join(dict.fromkeys(heads))}: {text}" if heads else text)
        for (severity, key, text), heads in who.items()
    ]
    return tuple(sorted(grouped, key=lambda f: f.severity != "error"))  # errors first


def build_checklist(
    deployment: Deployment,
    *,
    geo_dns: Mapping[str, Any] | None = None,
    bypass_name: str | None = None,
) -> Checklist:
    """The checklist of ``deployment``. ``geo_dns``: a parsed ``[GeoDns]`` policy file (its
    service name and client subnets win; problems raise ``SettingsError``); ``bypass_name``:
    the media bypass service name (default ``hybridvoice.<default SIP domain>``, the
    original's example)."""
    findings: list[Finding] = []
    first = deployment.appliances[0].settings
    name = bypass_name or f"hybridvoice.{first.common.default_domain}"
    if geo_dns is not None and isinstance(geo_dns.get("GeoDns"), Mapping):
        given = geo_dns["GeoDns"].get("ServiceName")
        name = given.lower().rstrip(".") if isinstance(given, str) and given else name
    policy = _geo_policy(deployment, geo_dns, name, findings)
    dns = [*_edge_records(deployment, findings), *_internal_records(deployment, name)]
    sizing = _sizing(deployment, findings)
    return Checklist(
        source=deployment.source,
        sites=deployment.sites,
        dns=tuple(dict.fromkeys(dns)),
        bypass_name=name,
        geo_dns=policy,
        firewall=firewall_rules(deployment),
        certificates=tuple(_certificates(deployment)),
        sizing=tuple(sizing),
        findings=_grouped(findings, (a.name for a in deployment.appliances)),
        notes=deployment.notes,
    )
