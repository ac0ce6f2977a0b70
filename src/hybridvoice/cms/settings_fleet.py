"""The fleet description: one tenant, several sites, each with several appliances, its
gateways and its users, in one TOML file (``hybridvoice up --config FLEET.toml``).

A file is a fleet description when it has a ``[Fleet]`` section or ``[[Site]]`` tables
(:func:`is_fleet_document`); any other file is one site's settings (:mod:`.settings`), and
``up`` runs it as before. The sections:

* ``[Fleet]``: the tenant's SIP domains, the host every listener binds, where the port blocks
  of the appliances start (each appliance gets :data:`PORT_STRIDE` ports from ``BasePort``
  and ``MediaPortsPerAppliance`` RTP ports from ``MediaPortStart``, site by site, in order),
  the users' default password, and the online service's detection window
  (``HeartbeatTimeoutSeconds``: an appliance silent this long is offline and gets no new
  calls; ``ApplianceTimeoutSeconds``: an appliance that sends no provisional response within
  this is skipped for the next one of its site).
* ``[Online]``: the online service, as in a site's settings file (a fleet's defaults: http
  on 127.0.0.1:8470, TCP toward the edges, MD5 digest; https and TLS are refused for now).
* ``[Appliance]``: settings every appliance shares (any section of a site's settings file but
  the ones the fleet decides: ``[Common]`` names, ports, gateways).
* ``[[Site]]``: ``Name``, ``Appliances`` (1-16, the original's limit per PSTN site),
  ``CountryCode`` (the dialling code), ``[[Site.Gateway]]`` (the keys of a ``[GatewayN]``,
  plus ``Lab = true`` to have ``up`` run a lab gateway there) and ``[[Site.User]]``
  (``Name``, ``Number``, optional ``Password``, ``International``).

Every problem names its key (``Site[Seattle].User[bob].Number``) and the reason; all of them
are reported at once as a :class:`~.settings.SettingsError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from pydantic import Field, ValidationError, field_validator, model_validator

from .settings import Gateway, Online, Problem, SettingsError, _reason
from .settings_values import IPAddress, Port, Words, _hostname, _Section

__all__ = [
    "MAX_APPLIANCES_PER_SITE",
    "MAX_SITES",
    "PORT_STRIDE",
    "FleetDescription",
    "FleetSection",
    "FleetSite",
    "FleetUser",
    "SiteGateway",
    "is_fleet_document",
    "parse_fleet",
]

#: the original: up to 16 appliances per PSTN site, 200 sites per tenant
MAX_APPLIANCES_PER_SITE: Final = 16
MAX_SITES: Final = 200
#: ports each appliance takes from ``[Fleet] BasePort`` (the plan uses the first seven)
PORT_STRIDE: Final = 10
_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,39}")
_USER: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_E164: Final = re.compile(r"\+[1-9][0-9]{3,14}")
#: ``[Online]`` keys a fleet takes unless its file says otherwise (a lab on loopback: TCP toward
#: the edges, MD5 digest for SIPp and baresip 1.0)
ONLINE_DEFAULTS: Final[Mapping[str, Any]] = MappingProxyType(
    {"ServiceURL": "http://127.0.0.1:8470", "SIPProtocol": "TCP", "DigestAlgorithms": "MD5"}
)
#: keys of ``[Appliance]`` the fleet decides itself, and why
_FLEET_DECIDES: Final[Mapping[str, str]] = {
    "Common.SiteName": "each appliance takes its site's Name",
    "Common.ServerName": "appliances are named SITE-N",
    "Common.SIPDomains": "the tenant's domains are [Fleet] SIPDomains",
    "EdgeServer.ExternalSIPPort": "ports come from [Fleet] BasePort",
    "EdgeServer.InternalPort": "ports come from [Fleet] BasePort",
    "MediationServer.TCPPort": "ports come from [Fleet] BasePort",
    "MediationServer.UDPPort": "ports come from [Fleet] BasePort",
    "MediationServer.InternalPort": "ports come from [Fleet] BasePort",
    "MediationServer.BypassServicePort": "ports come from [Fleet] BasePort",
    "MediationServer.MediaPortStart": "RTP ports come from [Fleet] MediaPortStart",
    "MediationServer.MediaPortEnd": "RTP ports come from [Fleet] MediaPortStart",
    "Management.Port": "ports come from [Fleet] BasePort",
    "Management.StateDirectory": "up gives each appliance its own state directory",
    "Online": "the online service is the fleet's [Online] section",
    "Gateways": "gateways belong to a site: [[Site.Gateway]]",
}


class FleetSection(_Section):
    """``[Fleet]``: the tenant and how the fleet is laid out on this host."""

    sip_domains: Words = Field(min_length=1)
    host: IPAddress = "127.0.0.1"
    base_port: Port = 21000
    media_port_start: Port = 40000
    media_ports_per_appliance: int = Field(default=400, ge=4, le=20000)
    user_password: str = Field(default="hybridvoice", min_length=1)
    heartbeat_timeout_seconds: float = Field(default=5.0, gt=0, le=3600)
    appliance_timeout_seconds: float = Field(default=2.0, gt=0, le=60)

    @field_validator("sip_domains")
    @classmethod
    def _domains(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_hostname(d) for d in value)

    @field_validator("media_port_start")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"must be even (RTP uses the even port, RFC 3550 §11), got {value}")
        return value

    @field_validator("media_ports_per_appliance")
    @classmethod
    def _even_count(cls, value: int) -> int:
        if value % 4:
            raise ValueError(f"must be a multiple of 4 (4 ports per anchored call), got {value}")
        return value


class SiteGateway(Gateway):
    """``[[Site.Gateway]]``: a ``[GatewayN]`` of the site; ``Lab``: ``up`` runs the built-in
    lab gateway (answers every call, echoes media) on its address."""

    lab: bool = False


class FleetUser(_Section):
    """``[[Site.User]]``: a user of the site (its calls break out at this site)."""

    name: str
    number: str | None = None
    password: str | None = Field(default=None, min_length=1)
    international: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _USER.fullmatch(value):
            raise ValueError(
                f"must be a user part (letters, digits, '.', '_', '-', up to 64), got {value!r}"
            )
        return value.lower()

    @field_validator("number")
    @classmethod
    def _number(cls, value: str | None) -> str | None:
        if value is not None and not _E164.fullmatch(value):
            raise ValueError(f"must be an E.164 number (+ and 4-15 digits), got {value!r}")
        return value


class FleetSite(_Section):
    """``[[Site]]``: a PSTN site, its appliances, gateways and users."""

    name: str
    appliances: int = Field(default=1, ge=1, le=MAX_APPLIANCES_PER_SITE)
    country_code: str = "1"
    gateway: tuple[SiteGateway, ...] = Field(default=(), min_length=1)
    user: tuple[FleetUser, ...] = ()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError(
                f"must start with a letter, then letters, digits, '_' or '-' (up to 40), "
                f"got {value!r}"
            )
        return value

    @field_validator("country_code")
    @classmethod
    def _country(cls, value: str) -> str:
        if not re.fullmatch(r"[1-9][0-9]{0,2}", value):
            raise ValueError(f"must be a dialling code of 1-3 digits, got {value!r}")
        return value

    @model_validator(mode="after")
    def _unique(self) -> FleetSite:
        for what, names in (("gateways", [g.name for g in self.gateway]),
                            ("users", [u.name for u in self.user])):  # fmt: skip
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"two {what} are named {', '.join(twice)}")
        return self

    def appliance_names(self) -> tuple[str, ...]:
        """``amsterdam-1`` .. ``amsterdam-N``."""
        return tuple(f"{self.name.lower()}-{n}" for n in range(1, self.appliances + 1))


class FleetDescription(_Section):
    """The whole file."""

    fleet: FleetSection
    online: Online = Field(default_factory=lambda: Online.model_validate(ONLINE_DEFAULTS))
    appliance: dict[str, Any] = Field(default_factory=dict)
    site: tuple[FleetSite, ...] = Field(min_length=1, max_length=MAX_SITES)

    @field_validator("online", mode="before")
    @classmethod
    def _online_defaults(cls, value: object) -> object:
        return {**ONLINE_DEFAULTS, **value} if isinstance(value, dict) else value

    @field_validator("online")
    @classmethod
    def _online_plain(cls, value: Online) -> Online:
        if value.service_url.startswith("https:"):
            raise ValueError(
                "ServiceURL: https is not supported in a fleet yet (appliances would need "
                "their sites' certificates); use http:// on loopback or a private network"
            )
        if value.sip_protocol == "TLS":
            raise ValueError("SIPProtocol: TLS is not supported in a fleet yet; use TCP or UDP")
        return value

    @field_validator("appliance")
    @classmethod
    def _template(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, why in _FLEET_DECIDES.items():
            section, _, name = key.partition(".")
            table = value.get(section)
            if table is not None and (not name or (isinstance(table, dict) and name in table)):
                raise ValueError(f"{key} is not yours to set in a fleet: {why}")
        if any(re.fullmatch(r"Gateway\d+", k) for k in value):
            why = _FLEET_DECIDES["Gateways"]
            raise ValueError(f"GatewayN is not yours to set in a fleet: {why}")
        return value

    @property
    def domain(self) -> str:
        return self.fleet.sip_domains[0]


def is_fleet_document(raw: Mapping[str, Any]) -> bool:
    """Whether a parsed TOML document describes a fleet (else: one site's settings)."""
    return "Fleet" in raw or "Site" in raw


def _named(raw: Any, index: int) -> str:
    """``Amsterdam`` for a table with that Name, else its 1-based position."""
    if isinstance(raw, dict) and isinstance(raw.get("Name"), str) and raw["Name"]:
        return str(raw["Name"])
    return str(index + 1)


def _key(loc: tuple[int | str, ...], raw: Mapping[str, Any]) -> str:
    """``('Site', 0, 'User', 1, 'Number')`` -> ``Site[Amsterdam].User[bob].Number``."""
    parts: list[str] = []
    node: Any = raw
    for item in loc:
        if isinstance(item, int):
            name = _named(node[item] if isinstance(node, list) and item < len(node) else None, item)
            parts[-1:] = [f"{parts[-1]}[{name}]" if parts else f"[{name}]"]
            node = node[item] if isinstance(node, list) and item < len(node) else None
        else:
            parts.append(item)
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts)


def parse_fleet(raw: Mapping[str, Any]) -> FleetDescription:
    """Validate a parsed fleet document; :class:`SettingsError` lists every problem. The
    checks between sites and appliances (names, numbers, ports) are the plan's
    (:func:`hybridvoice.cms.fleet_plan.plan_fleet`)."""
    data = dict(raw)
    if "Fleet" not in data:
        raise SettingsError([Problem("Fleet", "required: a fleet description needs [Fleet]")])
    try:
        return FleetDescription.model_validate(data)
    except ValidationError as exc:
        problems = [Problem(_key(tuple(e["loc"]), data), _reason(e)) for e in exc.errors()]
        raise SettingsError(problems) from None
