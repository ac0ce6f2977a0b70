"""The plan of a fleet on one host: every appliance's own settings, its ports, the online
service's settings, the lab gateways, the tenant's sites and users (pure: no I/O).

Ports are allocated without clashes: appliance ``N`` (counted from 0, site by site in the
order of the file) takes ``BasePort + PORT_STRIDE*N`` onward (:data:`SLOTS`: the edge's
external and internal SIP ports, the mediation role's edge side, its gateway-side TCP and UDP
ports, its management API, its media bypass service) and the RTP ports
``MediaPortStart + MediaPortsPerAppliance*N`` onward. Then every listener of the fleet (the
online service's, every appliance's, every lab gateway's) is checked against every other:
a clash names both keys. Each appliance's settings go through the site settings' own
validation (:func:`~.settings.parse_settings`), so an ``[Appliance]`` value that a site's
file would refuse is refused here, named ``Appliance.<key>``.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .listeners import Listener, listener_clashes, listeners
from .settings import Problem, Settings, SettingsError, parse_settings
from .settings_fleet import (
    PORT_STRIDE,
    FleetDescription,
    FleetSite,
    SiteGateway,
    is_fleet_document,
    parse_fleet,
)

__all__ = ["SLOTS", "AppliancePlan", "FleetPlan", "LabGatewayPlan", "UserPlan", "is_fleet_file",
           "load_fleet", "plan_fleet"]  # fmt: skip

#: the ports of an appliance's block, by offset from its first port
SLOTS: Final[Mapping[str, int]] = {
    "EdgeServer.ExternalSIPPort": 0,
    "EdgeServer.InternalPort": 1,
    "MediationServer.InternalPort": 2,
    "MediationServer.TCPPort": 3,
    "MediationServer.UDPPort": 4,
    "Management.Port": 5,
    "MediationServer.BypassServicePort": 6,
}


@dataclass(frozen=True, slots=True)
class AppliancePlan:
    """One appliance process: its name, site, settings (ports filled in) and index."""

    name: str
    site: str
    index: int
    settings: Settings

    @property
    def ports(self) -> dict[str, int]:
        """Its listeners by key (``MediationServer.UDPPort`` -> port), for the table."""
        own = (x for x in listeners(self.settings) if not x.key.startswith("Online."))
        return {x.key: x.port for x in own if x.port}

    @property
    def gateway_side(self) -> tuple[str, int | None, int | None]:
        """(IP, TCP port, UDP port) where this appliance's mediation role takes gateways."""
        ms = self.settings.mediation_server
        return ms.ip, ms.tcp_port, ms.udp_port


@dataclass(frozen=True, slots=True)
class LabGatewayPlan:
    """A lab gateway ``up`` runs for a site (``Lab = true``)."""

    site: str
    gateway: SiteGateway


@dataclass(frozen=True, slots=True)
class UserPlan:
    """A user to provision: ``sip:name@domain``, its site, number and password."""

    sip_uri: str
    site: str
    number: str | None
    password: str
    international: bool


@dataclass(frozen=True, slots=True)
class FleetPlan:
    """Everything ``up`` starts for a fleet description."""

    description: FleetDescription
    appliances: tuple[AppliancePlan, ...]
    #: settings for the online service's part of ``up`` (the first site's first appliance's:
    #: the [Online] section, limits and domains are the fleet's)
    online_settings: Settings
    lab_gateways: tuple[LabGatewayPlan, ...]
    users: tuple[UserPlan, ...]

    @property
    def sites(self) -> tuple[FleetSite, ...]:
        return self.description.site

    def of_site(self, site: str) -> tuple[AppliancePlan, ...]:
        return tuple(a for a in self.appliances if a.site == site)

    def listeners(self) -> list[Listener]:
        """Every address the fleet binds (the online service's, every appliance's, every lab
        gateway's), keyed as the fleet file names it (``amsterdam-2.MediationServer.UDPPort``)."""
        return _fleet_listeners(self.appliances, self.lab_gateways)

    @property
    def heartbeat_timeout(self) -> float:
        return self.description.fleet.heartbeat_timeout_seconds

    @property
    def appliance_timeout(self) -> float:
        return self.description.fleet.appliance_timeout_seconds


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra``'s tables merged in, key by key (``extra`` wins)."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _appliance_raw(
    fleet: FleetDescription, site: FleetSite, name: str, index: int, problems: list[Problem]
) -> dict[str, Any] | None:
    f = fleet.fleet
    first = f.base_port + PORT_STRIDE * index
    media = f.media_port_start + f.media_ports_per_appliance * index
    last_port = first + PORT_STRIDE - 1
    if last_port > 65535 or media + f.media_ports_per_appliance - 1 > 65535:
        key = "Fleet.BasePort" if last_port > 65535 else "Fleet.MediaPortStart"
        if not any(p.key == key for p in problems):
            problems.append(Problem(key, f"appliance {name} (number {index + 1} of the fleet) "
                                         "would need ports above 65535: lower it"))  # fmt: skip
        return None
    ports = {key: first + offset for key, offset in SLOTS.items()}
    routes = fleet.appliance.get("HybridVoiceRoutes") or {"All": ".*"}
    gateways = []
    for gw in site.gateway:
        raw = gw.model_dump(by_alias=True, mode="json", exclude_none=True, exclude={"lab"})
        if not gw.voice_routes:
            raw["VoiceRoutes"] = list(routes)
        gateways.append(raw)
    base: dict[str, Any] = {
        "Common": {"SIPDomains": list(f.sip_domains), "SiteName": site.name, "ServerName": name},
        "EdgeServer": {
            "InternalServerIPs": f.host, "InternalPort": ports["EdgeServer.InternalPort"],
            "InternalProtocol": "TCP", "ExternalSIPIPs": f.host,
            "ExternalSIPPort": ports["EdgeServer.ExternalSIPPort"], "ExternalProtocol": "TCP",
        },
        "MediationServer": {
            "IP": f.host, "TCPPort": ports["MediationServer.TCPPort"], "TLSPort": False,
            "UDPPort": ports["MediationServer.UDPPort"],
            "InternalPort": ports["MediationServer.InternalPort"], "InternalProtocol": "TCP",
            "BypassServicePort": ports["MediationServer.BypassServicePort"],
            "MediaPortStart": media, "MediaPortEnd": media + f.media_ports_per_appliance - 1,
            "InternalSubnets": "127.0.0.0/8" if f.host.startswith("127.") else f"{f.host}/32",
        },
        "Online": fleet.online.model_dump(by_alias=True, mode="json", exclude_none=True),
        "Management": {"IP": f.host, "Port": ports["Management.Port"]},
        "HybridVoiceRoutes": routes,
        "TrunkConfiguration": {"OptionsIntervalSeconds": 5},
    }  # fmt: skip
    raw = _merge(base, {k: v for k, v in fleet.appliance.items() if k != "HybridVoiceRoutes"})
    raw["Gateways"] = gateways
    return raw


def _site_key(site: FleetSite, key: str) -> str:
    """A gateway's problem from the site settings, as the fleet file names it."""
    head, _, rest = key.partition(".")
    if any(g.name == head for g in site.gateway):
        return f"Site[{site.name}].Gateway[{head}]" + (f".{rest}" if rest else "")
    return key if head == "Online" else f"Appliance.{key}"


def _users(fleet: FleetDescription, problems: list[Problem]) -> tuple[UserPlan, ...]:
    out: list[UserPlan] = []
    numbers: dict[str, str] = {}
    where: dict[str, str] = {}
    for site in fleet.site:
        for user in site.user:
            key = f"Site[{site.name}].User[{user.name}]"
            if user.name in where:
                problems.append(Problem(key, f"{user.name} is a user of site {where[user.name]} "
                                             "already: a user belongs to one site"))  # fmt: skip
                continue
            where[user.name] = site.name
            if user.number is not None:
                other = numbers.setdefault(user.number, user.name)
                if other != user.name:
                    problems.append(Problem(f"{key}.Number", f"{user.number} is {other}'s too"))
            out.append(UserPlan(
                sip_uri=f"sip:{user.name}@{fleet.domain}", site=site.name, number=user.number,
                password=user.password or fleet.fleet.user_password,
                international=user.international,
            ))  # fmt: skip
    return tuple(out)


def _fleet_listeners(
    plan: Sequence[AppliancePlan], labs: Sequence[LabGatewayPlan]
) -> list[Listener]:
    """Every listener of the fleet, keyed so that an admin finds it in the fleet file."""
    found: list[Listener] = []
    for n, appliance in enumerate(plan):
        for x in listeners(appliance.settings):
            if x.key.startswith("Online."):
                if n == 0:  # one online service
                    found.append(x)
                continue
            if x.port:
                found.append(Listener(f"{appliance.name}.{x.key}", x.transport, x.host, x.port))
    for lab in labs:
        gw = lab.gateway
        key = f"Site[{lab.site}].Gateway[{gw.name}].Port"
        found.append(Listener(key, gw.protocol, gw.ip or "127.0.0.1", gw.port))
    return found


def plan_fleet(fleet: FleetDescription) -> FleetPlan:
    """The plan, or :class:`SettingsError` naming every problem (key and reason)."""
    problems: list[Problem] = []
    names = [s.name.lower() for s in fleet.site]
    for site in fleet.site:
        if names.count(site.name.lower()) > 1:
            problems.append(Problem(f"Site[{site.name}].Name", "two sites have this name"))
    appliances: list[AppliancePlan] = []
    index = 0
    for site in fleet.site:
        for name in site.appliance_names():
            raw = _appliance_raw(fleet, site, name, index, problems)
            index += 1
            if raw is None:
                continue
            try:
                settings = parse_settings(raw)
            except SettingsError as exc:
                for p in exc.problems:
                    key = _site_key(site, p.key)
                    if not any(q.key == key for q in problems):
                        problems.append(Problem(key, f"{p.reason} (appliance {name})"))
                continue
            appliances.append(AppliancePlan(name, site.name, index - 1, settings))
    labs = [LabGatewayPlan(s.name, g) for s in fleet.site for g in s.gateway if g.lab]
    users = _users(fleet, problems)
    for first, later in listener_clashes(tuple(_fleet_listeners(appliances, labs))):
        if not any(p.key == later.key for p in problems):
            problems.append(Problem(later.key, f"{later} is also {first.key}'s ({first}): "
                                               "give one of them another port"))  # fmt: skip
    if problems:
        raise SettingsError(problems)
    return FleetPlan(
        description=fleet,
        appliances=tuple(appliances),
        online_settings=appliances[0].settings,
        lab_gateways=tuple(labs),
        users=users,
    )


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise SettingsError([Problem(str(path), f"cannot read: {exc.strerror}")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError([Problem(str(path), f"not valid TOML: {exc}")]) from None


def is_fleet_file(path: str | Path) -> bool:
    """Whether ``path`` holds a fleet description (``[Fleet]`` or ``[[Site]]``); False for
    one site's settings and for a file that cannot be read (its loader says why)."""
    try:
        return is_fleet_document(_read(Path(path)))
    except SettingsError:
        return False


def load_fleet(path: str | Path) -> FleetPlan:
    """Read, validate and plan a fleet description; :class:`SettingsError` lists every
    problem (key and reason)."""
    return plan_fleet(parse_fleet(_read(Path(path))))
