"""The geo-DNS policy (:class:`.geo_dns.GeoPolicy`) as configuration for other DNS servers.

- BIND 9: one ``acl`` per site (its client subnets), one ``view`` per site (``match-clients``
  that acl) serving the zone from a zone file of its own (RFC 1035 §5 master file: SOA, NS,
  the name server's glue, the service name's A/AAAA records of the site), and a last view for
  every other client: ``all`` serves all sites' addresses, ``nxdomain`` the zone without the
  service name, ``refuse`` no zone (BIND refuses what it has no zone for).
- Windows Server 2016+ DNS policies, as the original recommends (its "Geo-Location Based
  Traffic Management" steps): ``Add-DnsServerClientSubnet`` per site,
  ``Add-DnsServerZoneScope``, ``Add-DnsServerResourceRecord -ZoneScope`` per address and
  ``Add-DnsServerQueryResolutionPolicy`` linking subnet to scope for the service name only;
  clients of no site: records in the default scope (``all``), nothing (``nxdomain``) or a
  ``DENY`` policy (``refuse``).

Pure text, no I/O: :func:`bind_files` returns ``{file name: text}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from hybridvoice.mediation.geo_dns import GeoPolicy, GeoSite, IPAddress

__all__ = ["BIND_CONF", "bind_files", "windows_commands"]

BIND_CONF: Final = "named.conf.geo"
_OTHERS: Final = "others"  # the last view / default scope: clients of no site


def _relative(name: str, zone: str) -> str:
    """``name`` in a zone file of ``zone``: relative when inside, absolute (dot) otherwise."""
    if name == zone:
        return "@"
    if name.endswith("." + zone):
        return name[: -len(zone) - 1]
    return name + "."


def zone_file_name(policy: GeoPolicy, view: str) -> str:
    return f"db.{policy.zone}.{view}"


def _zone_text(policy: GeoPolicy, addresses: Iterable[IPAddress], view: str) -> str:
    zone, ttl = policy.zone, policy.ttl
    lines = [
        f"; {zone} as clients of {view} see it (hybridvoice dns export --format bind)",
        f"$ORIGIN {zone}.",
        f"$TTL {ttl}",
        f"@\tIN\tSOA\t{policy.ns_name}. {policy.soa_rname}. "
        f"( {policy.serial} 3600 600 86400 {ttl} )",
        f"@\tIN\tNS\t{_relative(policy.ns_name, zone)}",
    ]
    if policy.ns_name == zone or policy.ns_name.endswith("." + zone):
        ns = _relative(policy.ns_name, zone)
        lines += [f"{ns}\tIN\t{_rtype(a)}\t{a}" for a in policy.nameserver_addresses]
    label = _relative(policy.name, zone)
    lines += [f"{label}\tIN\t{_rtype(a)}\t{a}" for a in addresses]
    return "\n".join(lines) + "\n"


def _rtype(address: IPAddress) -> str:
    return "A" if address.version == 4 else "AAAA"


def _view(policy: GeoPolicy, name: str, clients: str, *, zone: bool) -> list[str]:
    lines = [f'view "{name}" {{', f"\tmatch-clients {{ {clients}; }};", "\trecursion no;"]
    if zone:
        lines += [
            f'\tzone "{policy.zone}" {{',
            "\t\ttype primary;",
            f'\t\tfile "{zone_file_name(policy, name)}";',
            "\t};",
        ]
    return [*lines, "};"]


def bind_files(policy: GeoPolicy) -> Mapping[str, str]:
    """``named.conf.geo`` (acls and views, to include from named.conf) and a zone file per view."""
    conf = [
        f"// geo-DNS for {policy.name}: each site's clients get its mediation addresses",
        "// (hybridvoice dns export --format bind). Include from named.conf; zone files are",
        "// read from the options' directory.",
    ]
    files: dict[str, str] = {}
    for site in policy.sites:
        subnets = " ".join(f"{net};" for net in site.subnets)
        conf.append(f'acl "{site.name}" {{ {subnets} }};')
    for site in policy.sites:
        conf += _view(policy, site.name, f'"{site.name}"', zone=True)
        files[zone_file_name(policy, site.name)] = _zone_text(policy, site.addresses, site.name)
    others = policy.unmatched != "refuse"
    conf += _view(policy, _OTHERS, "any", zone=others)
    if others:
        everyone = policy.all_addresses() if policy.unmatched == "all" else ()
        files[zone_file_name(policy, _OTHERS)] = _zone_text(policy, everyone, "no site")
    return {BIND_CONF: "\n".join(conf) + "\n", **files}


def _timespan(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    text = f"{hours:02}:{rest // 60:02}:{rest % 60:02}"
    return f"{days}.{text}" if days else text


def _records(policy: GeoPolicy, addresses: Iterable[IPAddress], scope: str | None) -> list[str]:
    label = _relative(policy.name, policy.zone)
    where = f' -ZoneScope "{scope}"' if scope else ""
    out = []
    for a in addresses:
        kind = "-A" if a.version == 4 else "-AAAA"
        field = "-IPv4Address" if a.version == 4 else "-IPv6Address"
        out.append(
            f'Add-DnsServerResourceRecord -ZoneName "{policy.zone}" {kind} -Name "{label}" '
            f'{field} "{a}"{where} -TimeToLive {_timespan(policy.ttl)}'
        )
    return out


def _subnet(site: GeoSite) -> str:
    v4 = ",".join(f'"{n}"' for n in site.subnets if n.version == 4)
    v6 = ",".join(f'"{n}"' for n in site.subnets if n.version == 6)
    parts = [f'Add-DnsServerClientSubnet -Name "{site.name}Subnet"']
    if v4:
        parts.append(f"-IPv4Subnet {v4}")
    if v6:
        parts.append(f"-IPv6Subnet {v6}")
    return " ".join(parts)


def windows_commands(policy: GeoPolicy) -> str:
    """The Windows DNS Server (2016+) PowerShell commands of the same policy, in order."""
    zone, fqdn, sites = policy.zone, policy.name, policy.sites
    lines = [
        f"# geo-DNS for {fqdn} (hybridvoice dns export --format windows). Run on each DNS",
        f"# server that hosts {zone}; the zone itself must exist already.",
        "",
        "# 1. The client subnets of each site",
        *(_subnet(site) for site in policy.sites),
        "",
        "# 2. A zone scope per site",
        *(f'Add-DnsServerZoneScope -ZoneName "{zone}" -Name "{s.name}ZoneScope"' for s in sites),
        "",
        "# 3. The site's mediation addresses in its zone scope",
    ]
    for site in policy.sites:
        lines += _records(policy, site.addresses, f"{site.name}ZoneScope")
    lines += ["", "# 4. Policies: a site's clients asking for the name get its zone scope"]
    for order, site in enumerate(policy.sites, start=1):
        lines.append(
            f'Add-DnsServerQueryResolutionPolicy -ZoneName "{zone}" -Name "{site.name}Policy" '
            f'-Action ALLOW -ClientSubnet "EQ,{site.name}Subnet" -Fqdn "EQ,{fqdn}" '
            f'-ZoneScope "{site.name}ZoneScope,1" -ProcessingOrder {order}'
        )
    lines += ["", "# 5. Clients of no site"]
    if policy.unmatched == "all":
        lines += _records(policy, policy.all_addresses(), None)
    elif policy.unmatched == "nxdomain":
        lines.append(f"# (nothing: the default scope has no {fqdn}, so they get NXDOMAIN)")
    else:
        lines.append(
            f'Add-DnsServerQueryResolutionPolicy -ZoneName "{zone}" -Name "{_OTHERS}Policy" '
            f'-Action DENY -Fqdn "EQ,{fqdn}" -ProcessingOrder {len(policy.sites) + 1}'
        )
    return "\n".join(lines) + "\n"
