"""``[GeoDns]``: the geo-DNS policy of the media bypass service name (docs/geo-dns.md).

The bypass web service has one name for every site (the original's example:
``hybridvoice.adatum.biz``); a client must get the mediation addresses of its own site. The
sites and their mediation addresses are already in each appliance's settings (``[Common]
SiteName``, ``[MediationServer] BypassServiceIP`` or ``IP``): :func:`parse_geo_dns` derives
them from the appliance settings it is given. What is new is which client subnets belong to
which site::

    [GeoDns]
    ServiceName = "hybridvoice.adatum.biz"
    TTL = 60                  # seconds; short so that a down appliance leaves answers soon
    Unmatched = "all"         # clients of no site: "all" sites' addresses, "nxdomain", "refuse"

    [GeoDns.Sites.Amsterdam]
    ClientSubnets = ["192.168.1.0/24", "2001:db8:1::/48"]
    MediationIPs = ["192.168.1.45"]   # optional: added to what the appliance settings give

Refused, naming the key and the reason: subnets that overlap between (or within) sites,
anything that is not an IP address or subnet, a site with no mediation address, an appliance
whose site has no ``[GeoDns.Sites]`` entry, a name outside its zone.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AliasGenerator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from hybridvoice.cms.settings import Problem, Settings, SettingsError, problems_of
from hybridvoice.cms.settings_values import HostName, IPAddress, Subnet, ini_key

__all__ = ["GeoDnsSettings", "GeoDnsSite", "load_geo_dns", "parse_geo_dns"]

_SITE_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
_KEYS: Final[Mapping[str, str]] = {
    "ttl": "TTL",
    "mediation_ips": "MediationIPs",
    "name_server_ips": "NameServerIPs",
}


def _key(field_name: str) -> str:
    return _KEYS.get(field_name) or ini_key(field_name)


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _listed(value: object) -> object:
    return [value] if isinstance(value, str) else value


class _GeoSection(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        alias_generator=AliasGenerator(validation_alias=_key, serialization_alias=_key),
    )


class GeoDnsSite(_GeoSection):
    """``[GeoDns.Sites.<site>]``: the site's client subnets and (optionally) mediation IPs."""

    client_subnets: Annotated[tuple[Subnet, ...], BeforeValidator(_listed)] = Field(min_length=1)
    mediation_ips: Annotated[tuple[IPAddress, ...], BeforeValidator(_listed)] = ()


class GeoDnsSettings(_GeoSection):
    """``[GeoDns]``: the service name, its zone, the answers' TTL and the sites."""

    service_name: HostName
    zone: HostName | None = None  # default: the service name's parent
    ttl: int = Field(default=60, ge=1, le=86400)
    unmatched: Annotated[Literal["all", "nxdomain", "refuse"], BeforeValidator(_lower)] = "all"
    name_server: HostName | None = None  # default: ns1.<zone>
    name_server_ips: Annotated[tuple[IPAddress, ...], BeforeValidator(_listed)] = ()
    hostmaster: HostName | None = None  # the SOA mailbox, default hostmaster.<zone>
    serial: int = Field(default=1, ge=0, le=2**32 - 1)
    sites: Mapping[str, GeoDnsSite] = Field(min_length=1)

    @field_validator("sites")
    @classmethod
    def _site_names(cls, value: Mapping[str, GeoDnsSite]) -> Mapping[str, GeoDnsSite]:
        for name in value:
            if not _SITE_NAME.fullmatch(name):
                raise ValueError(
                    f"site name {name!r}: 1-63 letters, digits, '-' or '_', starting with a "
                    "letter or digit (it names BIND views and Windows DNS zone scopes)"
                )
        return value

    @property
    def zone_name(self) -> str:
        return self.zone or self.service_name.partition(".")[2]


def _checks(settings: GeoDnsSettings) -> list[Problem]:
    problems: list[Problem] = []
    zone = settings.zone_name
    if not zone or not settings.service_name.endswith("." + zone):
        problems.append(
            Problem(
                "GeoDns.Zone",
                f"{settings.service_name!r} must be a name below the zone {zone!r}",
            )
        )
    ns = settings.name_server or f"ns1.{zone}"
    if ns == settings.service_name:
        problems.append(Problem("GeoDns.NameServer", "must not be the service name"))
    elif (ns == zone or ns.endswith("." + zone)) and not settings.name_server_ips:
        problems.append(
            Problem(
                "GeoDns.NameServerIPs",
                f"required: the name server {ns} is inside the zone {zone}, so it needs "
                "its addresses (glue)",
            )
        )
    seen: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]] = []
    for name, site in settings.sites.items():
        for i, net in enumerate(site.client_subnets):
            for other, where in seen:
                if other.version == net.version and net.overlaps(other):
                    problems.append(
                        Problem(
                            f"GeoDns.Sites.{name}.ClientSubnets[{i}]",
                            f"{net} overlaps {other} of {where}: a client must belong to one site",
                        )
                    )
            seen.append((net, f"site {name}"))
        if not site.mediation_ips:
            problems.append(
                Problem(
                    f"GeoDns.Sites.{name}.MediationIPs",
                    "required: no mediation address for this site (list MediationIPs or give "
                    "the settings of its appliances)",
                )
            )
    return problems


def parse_geo_dns(raw: Mapping[str, Any], appliances: Sequence[Settings] = ()) -> GeoDnsSettings:
    """Validate the ``[GeoDns]`` section of ``raw`` and add each appliance's mediation address
    (``BypassServiceIP``, else ``IP``) to its site; :class:`SettingsError` lists every problem."""
    section = raw.get("GeoDns")
    if not isinstance(section, Mapping):
        raise SettingsError([Problem("GeoDns", "required: a [GeoDns] table")])
    try:
        settings = GeoDnsSettings.model_validate(section)
    except ValidationError as exc:
        raise SettingsError(
            [Problem(f"GeoDns.{p.key}", p.reason) for p in problems_of(exc)]
        ) from None
    sites = dict(settings.sites)
    problems: list[Problem] = []
    for appliance in appliances:
        site_name = appliance.common.site_name
        address = appliance.mediation_server.bypass_service_ip or appliance.mediation_server.ip
        site = sites.get(site_name)
        if site is None:
            who = appliance.common.server_name or site_name
            problems.append(
                Problem(
                    f"GeoDns.Sites.{site_name}",
                    f"required: appliance {who!r} ({address}) is in site {site_name!r}, which "
                    "has no client subnets",
                )
            )
            continue
        if address not in site.mediation_ips:
            sites[site_name] = site.model_copy(
                update={"mediation_ips": (*site.mediation_ips, address)}
            )
    settings = settings.model_copy(update={"sites": sites})
    problems += _checks(settings)
    if problems:
        raise SettingsError(problems)
    return settings


def load_geo_dns(path: str | Path, appliances: Sequence[str | Path] = ()) -> GeoDnsSettings:
    """Read the policy file (TOML) and the appliance settings files it draws addresses from."""
    from hybridvoice.cms.settings import load_settings  # noqa: PLC0415

    source = Path(path)
    try:
        with source.open("rb") as f:
            raw = tomllib.load(f)
    except OSError as exc:
        raise SettingsError([Problem(str(source), f"cannot read: {exc.strerror}")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError([Problem(str(source), f"not TOML: {exc}")]) from None
    return parse_geo_dns(raw, [load_settings(p) for p in appliances])
