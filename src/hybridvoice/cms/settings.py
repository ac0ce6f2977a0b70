"""Appliance settings: the schema, its validation, and loading from TOML.

The keys mirror CloudConnector.ini (docs/reference.md) so that admins recognise them:
``[Common]``, ``[MediationServer]``, ``[Gateway1]`` .. ``[GatewayN]``, ``[HybridVoiceRoutes]``
and ``[TrunkConfiguration]``; gateways also carry the Teams Direct Routing gateway features
(Enabled, SendSipOptions, MaxConcurrentSessions, FailoverTimeSeconds, FailoverResponseCodes,
ForwardPAI, ForwardCallHistory, MediaBypass, translation rules).

Every model is frozen and refuses unknown keys. Problems are reported as ``Key.Path: reason``
(e.g. ``Gateway2.Port: must be 1-65535, got 70000``) and :class:`SettingsError` lists all of
them at once. Related RFCs: RFC 3261 §11 and §21 (the OPTIONS probe and the response codes
used for failover), RFC 3550 §11 (RTP on even ports).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hybridvoice.net.stream import StreamLimits

from .listeners import PRIVILEGED_PORTS, Listener, listener_clashes, listeners
from .settings_edge import MediaRelay
from .settings_health import GatewayHealthKeys, HealthMonitor, TrunkHealthKeys
from .settings_logging import Logging
from .settings_media import MediaEncryption
from .settings_needs import unmet_needs
from .settings_online_store import EtcdMembers
from .settings_segments import Segments
from .settings_tls import GatewayTls
from .settings_traces import Traces
from .settings_values import (
    HostName,
    IPAddress,
    ListenPort,
    OptionalListenPort,
    Port,
    Regex,
    Subnet,
    Words,
    _capitalised,
    _hostname,
    _Section,
    _upper,
    _words,
    ini_key,
    python_template,
)

__all__ = [
    "HARDWARE_CALL_LIMITS",
    "PRIVILEGED_PORTS",
    "Common",
    "EdgeServer",
    "Gateway",
    "Listener",
    "Management",
    "MediaRelay",
    "MediationServer",
    "Online",
    "Problem",
    "Settings",
    "SettingsError",
    "SipLimits",
    "TranslationRule",
    "TrunkConfiguration",
    "cross_check",
    "ini_key",
    "listener_clashes",
    "listeners",
    "load_settings",
    "parse_settings",
    "problems_of",
    "python_template",
]

#: Concurrent calls per appliance by ``[Common] HardwareType`` (CCE: Normal 500, Minimum 50).
HARDWARE_CALL_LIMITS: Final[Mapping[str, int]] = {"Normal": 500, "Minimum": 50}
_GATEWAY_SECTION: Final = re.compile(r"Gateway(\d+)")
_ROUTE_NAME: Final = re.compile(r"[A-Za-z0-9_.-]+")


# --- problems ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the settings: the dotted key and the reason."""

    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.key}: {self.reason}" if self.key else self.reason


class SettingsError(ValueError):
    """The settings are invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        count = len(self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the settings:\n{lines}")


# --- sections ---------------------------------------------------------------------------------


class Common(_Section):
    """``[Common]``: the appliance and its site."""

    sip_domains: Words = Field(min_length=1)
    site_name: str = Field(min_length=1)
    server_name: str | None = None
    virtual_machine_domain: HostName | None = None
    ip: IPAddress | None = None
    online_sip_federation_fqdn: HostName | None = None
    country_code: str | None = None
    city: str | None = None
    state: str | None = None
    hardware_type: Annotated[Literal["Normal", "Minimum"], BeforeValidator(_capitalised)] = "Normal"
    max_concurrent_calls_override: int | None = Field(default=None, ge=1)

    @field_validator("sip_domains")
    @classmethod
    def _domains(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_hostname(d) for d in value)

    @field_validator("country_code")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z]{2}", value):
            raise ValueError(f"must be a two-letter ISO 3166 code, got {value!r}")
        return None if value is None else value.upper()

    @property
    def default_domain(self) -> str:
        """The first SIP domain is the default one (as in CloudConnector.ini)."""
        return self.sip_domains[0]

    @property
    def max_concurrent_calls(self) -> int:
        """The appliance call limit: ``MaxConcurrentCalls`` if set, else by HardwareType."""
        if self.max_concurrent_calls_override is not None:
            return self.max_concurrent_calls_override
        return HARDWARE_CALL_LIMITS[self.hardware_type]


class MediationServer(_Section):
    """``[MediationServer]``: where the mediation role listens on the gateway side."""

    server_name: str | None = None
    pool_name: HostName | None = None
    ip: IPAddress = "127.0.0.1"
    tcp_port: OptionalListenPort = 5068
    tls_port: OptionalListenPort = 5067
    udp_port: OptionalListenPort = None
    #: the edge side: where the mediation role takes calls from its edge (CCE: MTLS 5061 on
    #: the mediation VM; 5062 here, so that the defaults of every role fit on one host)
    internal_port: ListenPort = 5062
    internal_protocol: Annotated[Literal["TCP", "TLS", "UDP"], BeforeValidator(_upper)] = "TLS"
    media_port_start: Port = 49152
    media_port_end: Port = 57500
    bypass_service_ip: IPAddress | None = None
    bypass_service_port: ListenPort = 80
    internal_subnets: Annotated[tuple[Subnet, ...], BeforeValidator(_words)] = ()
    retry_after_seconds: int = Field(default=10, ge=0, le=86400)
    client_media_encryption: MediaEncryption = "Optional"  # SRTP toward clients (settings_media)

    @field_validator("media_port_start")
    @classmethod
    def _even_start(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"must be even (RTP uses the even port, RFC 3550 §11), got {value}")
        return value

    @model_validator(mode="after")
    def _ranges(self) -> MediationServer:
        if self.media_port_end - self.media_port_start + 1 < 4:
            raise ValueError(
                f"MediaPortStart-MediaPortEnd must hold at least 4 ports (one call), got "
                f"{self.media_port_start}-{self.media_port_end}"
            )
        if self.tcp_port is None and self.tls_port is None and self.udp_port is None:
            raise ValueError("TCPPort, TLSPort and UDPPort are all off: nothing to listen on")
        return self

    @property
    def media_calls(self) -> int:
        """Calls the media port range holds at 4 ports per anchored call."""
        return (self.media_port_end - self.media_port_start + 1) // 4

    @property
    def bypass_bind(self) -> tuple[str, int]:
        """Where the media bypass web service listens (internal interface only)."""
        return (self.bypass_service_ip or self.ip, self.bypass_service_port)


class EdgeServer(_Section):
    """``[EdgeServer]``: the access edge, between the online service (external side) and this
    appliance's mediation role (internal side). CCE listens with MTLS on 5061 on both sides;
    TCP is allowed for labs. The media relay keys (``ExternalMR*``) size the TURN relay."""

    internal_server_name: str | None = None
    internal_pool_name: HostName | None = None
    internal_server_ips: Annotated[tuple[IPAddress, ...], BeforeValidator(_words)] = ("127.0.0.1",)
    internal_port: ListenPort = 5071  # CCE: 5061 on the edge VM's internal NIC; one host: 5071
    internal_protocol: Annotated[Literal["TCP", "TLS", "UDP"], BeforeValidator(_upper)] = "TLS"
    external_sip_pool_name: HostName | None = None
    external_sip_ips: Annotated[tuple[IPAddress, ...], BeforeValidator(_words)] = ("127.0.0.1",)
    external_sip_port: ListenPort = 5061
    external_protocol: Annotated[Literal["TCP", "TLS", "UDP"], BeforeValidator(_upper)] = "TLS"
    external_mr_fqdn_pool_name: HostName | None = None
    external_mr_ips: Annotated[tuple[IPAddress, ...], BeforeValidator(_words)] = ()
    external_mr_public_ips: Annotated[tuple[IPAddress, ...], BeforeValidator(_words)] = ()
    external_mr_port_range: str = "50000-59999"
    #: 503 to the cloud when the mediation role does not answer within this many seconds
    mediation_timeout_seconds: float = Field(default=2.0, gt=0, le=60)

    @field_validator("external_mr_port_range")
    @classmethod
    def _port_range(cls, value: str) -> str:
        m = re.fullmatch(r"\s*(\d+)\s*[- ]\s*(\d+)\s*", value)  # CCE writes "50000 59999"
        if m is None or not 1 <= int(m.group(1)) <= int(m.group(2)) <= 65535:
            raise ValueError(f"must be FIRST-LAST within 1-65535, got {value!r}")
        return f"{int(m.group(1))}-{int(m.group(2))}"


class Online(_Section):
    """``[Online]`` (hybridvoice): how the appliance reaches the online service. The SIP side
    is ``[Common] OnlineSipFederationFqdn``; this is the management API (registration,
    heartbeats, the replication feed) and the addresses the edge trusts SIP from."""

    service_url: str = "http://127.0.0.1:8470"
    #: the tenant's other online instances (`online serve` on one etcd cluster), tried in turn
    #: when the one in use does not answer (registration, heartbeats, the replication feed)
    other_service_urls: Annotated[tuple[str, ...], BeforeValidator(_words)] = ()
    appliance_name: str | None = None  # default: [Common] ServerName, else the site name
    sip_addresses: Annotated[tuple[IPAddress, ...], BeforeValidator(_words)] = ("127.0.0.1",)
    sip_port: Port = 5060  # the edge's own external side has 5061 when both run on one host
    sip_protocol: Annotated[Literal["TCP", "TLS", "UDP"], BeforeValidator(_upper)] = "TLS"
    heartbeat_seconds: float = Field(default=1.0, gt=0, le=3600)
    #: what the online service's registrar and proxy challenge with, strongest first
    #: (RFC 8760); "MD5" alone for clients that give up at a SHA-256 challenge
    digest_algorithms: Words = ("SHA-256", "MD5")
    #: networks whose requests the online proxy takes without a digest challenge: a peer
    #: that authenticates its own users (an SBC in the RFC 3325 sense) may act for any
    #: user of the tenant, so list only hosts you control; empty: everyone is challenged
    trusted_peers: Annotated[tuple[Subnet, ...], BeforeValidator(_words)] = ()
    #: password guessing (fail2ban-style): this many failed authentications from one source,
    #: or for one user, within AuthFailureWindowSeconds block it for AuthBlockSeconds,
    #: doubling on each repeat up to AuthBlockMaxSeconds; 0 turns the limits off
    auth_failure_limit: int = Field(default=10, ge=0, le=1_000_000)
    auth_failure_window_seconds: float = Field(default=60.0, gt=0, le=86_400)
    auth_block_seconds: float = Field(default=60.0, gt=0, le=86_400)
    auth_block_max_seconds: float = Field(default=3600.0, gt=0, le=30 * 86_400)
    #: the etcd members the tenant lives in (``.settings_online_store``); empty: SQLite
    store_etcd: EtcdMembers = ()

    @model_validator(mode="after")
    def _auth_blocks(self) -> Online:
        if self.auth_block_max_seconds < self.auth_block_seconds:
            raise ValueError(
                f"AuthBlockMaxSeconds ({self.auth_block_max_seconds:g}) must be at least "
                f"AuthBlockSeconds ({self.auth_block_seconds:g})"
            )
        return self

    @field_validator("digest_algorithms")
    @classmethod
    def _algorithms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = {"MD5": "MD5", "MD5-SESS": "MD5-sess", "SHA-256": "SHA-256",
                 "SHA-256-SESS": "SHA-256-sess"}  # fmt: skip
        out = []
        for name in value:
            if name.upper() not in known:
                raise ValueError(
                    f"unknown digest algorithm {name!r}: use {', '.join(known.values())}"
                )
            out.append(known[name.upper()])
        if not out or len(set(out)) != len(out):
            raise ValueError("name each algorithm once, at least one")
        return tuple(out)

    @field_validator("service_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
            raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
        return value.rstrip("/")

    @field_validator("other_service_urls")
    @classmethod
    def _urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(cls._url(url) for url in value)

    @property
    def service_urls(self) -> tuple[str, ...]:
        """ServiceURL, then OtherServiceURLs."""
        return (self.service_url, *self.other_service_urls)


class Management(_Section):
    """``[Management]`` (hybridvoice): the appliance's own management API (status, calls,
    maintenance) and where it keeps its state (replica, call records)."""

    ip: IPAddress = "127.0.0.1"
    port: ListenPort = 8472
    state_directory: str | None = None  # None: in memory (a lab; records are lost on exit)
    #: the largest request body the management APIs (this appliance's and, in one process,
    #: the online service's) take: a larger one is refused with 413 before it is read
    max_request_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    #: the bearer token (scope appliance) this appliance presents to the online service's
    #: API: `hybridvoice token create --scope appliance --name <appliance name>` makes one;
    #: `hybridvoice up` makes one itself
    online_token: str | None = None


class TranslationRule(_Section):
    """One number translation rule: ``Pattern`` (regex) -> ``Replacement``.

    Written as a table ``{Pattern = "...", Replacement = "..."}`` or a pair
    ``["pattern", "replacement"]``. The replacement takes ``$1``/``${name}`` (Direct Routing
    style) or ``\\1``/``\\g<name>`` (Python style).
    """

    pattern: Regex
    replacement: str

    @model_validator(mode="before")
    @classmethod
    def _pair(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            if len(value) != 2:
                raise ValueError(f"must be [pattern, replacement], got {list(value)!r}")
            return {"Pattern": value[0], "Replacement": value[1]}
        return value

    @model_validator(mode="after")
    def _template(self) -> TranslationRule:
        # (?:pattern)? always matches "" with the same groups: expanding the replacement on it
        # finds bad group references and bad escapes now rather than on a call
        try:
            probe = re.compile(f"(?:{self.pattern})?")
        except re.error:  # e.g. global inline flags, only legal at the very start
            return self
        try:
            probe.sub(self.template, "", count=1)
        except (re.error, IndexError) as exc:
            raise ValueError(
                f"Replacement {self.replacement!r} does not fit Pattern {self.pattern!r}: {exc}"
            ) from None
        return self

    @property
    def template(self) -> str:
        """The replacement in Python ``re`` syntax."""
        return python_template(self.replacement)


Rules = tuple[TranslationRule, ...]


class Gateway(GatewayTls, GatewayHealthKeys):
    """``[GatewayN]``: a PSTN gateway, SBC or IP-PBX (CCE keys + Direct Routing features; TLS
    keys ``Protocol = "MTLS"``, ``MutualTls``, ``TrustedRootsFile``: ``.settings_tls``)."""

    name: str
    fqdn: HostName | None = None
    ip: IPAddress | None = None
    port: Port = 5060
    protocol: Annotated[Literal["TCP", "TLS", "UDP"], BeforeValidator(_upper)] = "TCP"
    voice_routes: Words = ()
    enabled: bool = True
    send_sip_options: bool = True
    max_concurrent_sessions: int | None = Field(default=None, ge=1)
    failover_time_seconds: float = Field(default=10.0, gt=0, le=3600)
    failover_response_codes: Annotated[tuple[int, ...], BeforeValidator(_words)] = Field(
        default=(408, 503, 504)
    )
    forward_pai: bool | None = None
    forward_call_history: bool | None = None
    media_bypass: bool = False
    media_encryption: MediaEncryption = "RTP"  # RTP, SRTP or Optional (settings_media)
    #: pass REFER on to this gateway (None: ``[TrunkConfiguration] EnableReferSupport``)
    enable_refer_support: bool | None = None
    inbound_caller_rules: Rules = ()
    inbound_callee_rules: Rules = ()
    outbound_caller_rules: Rules = ()
    outbound_callee_rules: Rules = ()

    @model_validator(mode="before")
    @classmethod
    def _default_port(cls, value: object) -> object:
        """No Port: 5061 for TLS, else 5060 (RFC 3261 §19.1.2)."""
        if isinstance(value, dict) and "Port" not in value and "port" not in value:
            protocol = value.get("Protocol", value.get("protocol"))
            if isinstance(protocol, str) and protocol.upper() == "TLS":
                return {**value, "Port": 5061}
        return value

    @field_validator("failover_response_codes")
    @classmethod
    def _codes(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        for code in value:
            if not 300 <= code <= 699:
                raise ValueError(f"response codes must be 300-699, got {code}")
        return value

    @field_validator("voice_routes")
    @classmethod
    def _known_routes(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        routes = info.context.get("routes") if isinstance(info.context, dict) else None
        if routes is not None:
            unknown = [r for r in value if r not in routes]
            if unknown:
                raise ValueError(_unknown_routes(unknown, routes))
        return value

    @model_validator(mode="after")
    def _address(self) -> Gateway:
        if self.fqdn is None and self.ip is None:
            raise ValueError("needs FQDN or IP (or both)")
        return self

    @property
    def host(self) -> str:
        """The name the gateway is known by: its FQDN, else its IP."""
        return self.fqdn or self.ip or ""

    def forwards_pai(self, trunk: TrunkConfiguration) -> bool:
        """``ForwardPAI`` of this gateway, else of ``[TrunkConfiguration]``."""
        return trunk.forward_pai if self.forward_pai is None else self.forward_pai

    def forwards_call_history(self, trunk: TrunkConfiguration) -> bool:
        """``ForwardCallHistory`` of this gateway, else of ``[TrunkConfiguration]``."""
        if self.forward_call_history is None:
            return trunk.forward_call_history
        return self.forward_call_history

    def supports_refer(self, trunk: TrunkConfiguration) -> bool:
        """``EnableReferSupport`` of this gateway, else of ``[TrunkConfiguration]``."""
        if self.enable_refer_support is None:
            return trunk.enable_refer_support
        return self.enable_refer_support


def _unknown_routes(unknown: list[str], routes: Mapping[str, object]) -> str:
    known = ", ".join(sorted(routes)) or "none"
    names = ", ".join(unknown)
    return f"unknown route {names} (HybridVoiceRoutes has: {known})"


class TrunkConfiguration(TrunkHealthKeys):
    """``[TrunkConfiguration]``: trunk behaviour shared by every gateway (health keys:
    ``.settings_health``)."""

    enable_refer_support: bool = True
    enable_fast_failover_timer: bool = True
    forward_call_history: bool = False
    forward_pai: bool = False


class SipLimits(_Section):
    """``[SipLimits]`` (hybridvoice): what one peer may hold on the SIP TCP/TLS listeners, so
    that a slow or hostile peer cannot exhaust them (a slowloris sending one byte a second,
    thousands of idle connections). Every time a limit bites it is counted in
    ``hybridvoice_sip_dropped_total`` (reasons head_timeout, source_limit, connection_limit)."""

    head_timeout_seconds: float = Field(default=10.0, ge=0.1, le=300)
    idle_timeout_seconds: float = Field(default=300.0, ge=1, le=86400)
    max_connections_per_source: int = Field(default=64, ge=1, le=1_000_000)
    max_connections: int = Field(default=10_000, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _per_source_within_total(self) -> SipLimits:
        if self.max_connections_per_source > self.max_connections:
            raise ValueError(
                f"MaxConnectionsPerSource ({self.max_connections_per_source}) is above "
                f"MaxConnections ({self.max_connections})"
            )
        return self

    @property
    def stream_limits(self) -> StreamLimits:
        """The limits as the SIP stream transports take them."""
        return StreamLimits(
            head_timeout=self.head_timeout_seconds,
            idle_timeout=self.idle_timeout_seconds,
            max_per_source=self.max_connections_per_source,
            max_connections=self.max_connections,
        )


class Settings(_Section):
    """The whole appliance settings file."""

    common: Common
    mediation_server: MediationServer = Field(default_factory=MediationServer)
    edge_server: EdgeServer = Field(default_factory=EdgeServer)
    online: Online = Field(default_factory=Online)
    management: Management = Field(default_factory=Management)
    gateways: tuple[Gateway, ...] = ()
    hybrid_voice_routes: Mapping[str, Regex] = Field(default_factory=dict)
    trunk_configuration: TrunkConfiguration = Field(default_factory=TrunkConfiguration)
    sip_limits: SipLimits = Field(default_factory=SipLimits)
    media_relay: MediaRelay = Field(default_factory=MediaRelay)
    health_monitor: HealthMonitor = Field(default_factory=HealthMonitor)
    traces: Traces = Field(default_factory=Traces)
    segments: Segments = Field(default_factory=Segments)  # docs/planning.md
    logging: Logging = Field(default_factory=Logging)

    @model_validator(mode="before")
    @classmethod
    def _collect_gateways(cls, value: object) -> object:
        """``[Gateway1]``..``[GatewayN]`` sections become the ``Gateways`` list, in N order."""
        if not isinstance(value, dict):
            return value
        sections = _gateway_sections(value)
        if not sections:
            return value
        rest = {k: v for k, v in value.items() if k not in sections}
        listed = rest.get("Gateways", [])
        named = [{**v, "Name": k} if isinstance(v, dict) else v for k, v in sections.items()]
        rest["Gateways"] = [*(listed if isinstance(listed, list) else [listed]), *named]
        return rest

    @field_validator("hybrid_voice_routes")
    @classmethod
    def _route_names(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        for name in value:
            if not _ROUTE_NAME.fullmatch(name):
                raise ValueError(f"route name {name!r}: use letters, digits, '_', '.', '-'")
        return value

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Settings:
        if isinstance(info.context, dict) and info.context.get("cross_check_later"):
            return self  # parse_settings reports these one by one, with their keys
        problems = cross_check(self)
        if problems:
            raise ValueError("; ".join(str(p) for p in problems))
        return self

    def gateway(self, name: str) -> Gateway:
        """The gateway called ``name`` (``KeyError`` if none)."""
        for gw in self.gateways:
            if gw.name == name:
                return gw
        raise KeyError(name)


def _gateway_sections(raw: Mapping[str, Any]) -> dict[str, Any]:
    found = [(int(m.group(1)), k) for k in raw if (m := _GATEWAY_SECTION.fullmatch(k))]
    return {k: raw[k] for _, k in sorted(found)}


def cross_check(settings: Settings) -> list[Problem]:
    """Problems between sections: unknown routes, two gateways with one name or address,
    two listeners on one address (both keys named), a gateway whose listener is off
    (:mod:`.settings_needs`)."""
    problems: list[Problem] = []
    for first, later in listener_clashes(listeners(settings)):
        if not any(p.key == later.key for p in problems):  # one problem per listener
            reason = f"{later} is also {first.setting}'s ({first}): give one of them another port"
            problems.append(Problem(later.key, reason))
    seen_names: set[str] = set()
    seen_addr: dict[tuple[str, int], str] = {}
    routes = settings.hybrid_voice_routes
    for gw in settings.gateways:
        if gw.name in seen_names:
            problems.append(Problem(gw.name, "two gateways have this name"))
        seen_names.add(gw.name)
        unknown = [r for r in gw.voice_routes if r not in routes]
        if unknown:
            problems.append(Problem(f"{gw.name}.VoiceRoutes", _unknown_routes(unknown, routes)))
        for key, host in (("IP", gw.ip), ("FQDN", gw.fqdn)):
            if host is None:
                continue
            other = seen_addr.setdefault((host, gw.port), gw.name)
            if other != gw.name:
                problems.append(Problem(f"{gw.name}.{key}", f"{host}:{gw.port} is {other}'s too"))
    problems += [Problem(key, reason) for key, reason in unmet_needs(settings)]
    return problems


# --- errors -> problems -----------------------------------------------------------------------

_PREFIXES: Final = ("Value error, ", "Assertion failed, ")


def _key(loc: tuple[int | str, ...], gateway_names: list[str]) -> str:
    parts: list[str] = []
    items = list(loc)
    if len(items) >= 2 and items[0] == "Gateways" and isinstance(items[1], int):
        index = items[1]
        name = gateway_names[index] if index < len(gateway_names) else f"Gateways[{index}]"
        parts.append(name)
        items = items[2:]
    for item in items:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]" if parts else f"[{item}]"]
        else:
            parts.append(item)
    return ".".join(parts)


def _reason(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required"
    message = str(error["msg"])
    for prefix in _PREFIXES:
        message = message.removeprefix(prefix)
    if kind != "value_error" and "input" in error and not isinstance(error["input"], dict):
        message = f"{message[:1].lower()}{message[1:]}, got {error['input']!r}"
    return message


def problems_of(exc: ValidationError, gateway_names: list[str] | None = None) -> list[Problem]:
    """Each pydantic error as a :class:`Problem` named by its CloudConnector.ini-style key."""
    names = gateway_names or []
    return [Problem(_key(tuple(e["loc"]), names), _reason(e)) for e in exc.errors()]


def parse_settings(raw: Mapping[str, Any], *, cross_checked: bool = True) -> Settings:
    """Validate a parsed settings document; raise :class:`SettingsError` with every problem.

    ``cross_checked=False`` leaves out :func:`cross_check` (the ini import separates clashing
    listeners itself, then validates again with it)."""
    data = dict(raw)
    sections = _gateway_sections(data)
    listed = data.get("Gateways", [])
    names = [
        str(g.get("Name", f"Gateways[{i}]")) if isinstance(g, dict) else f"Gateways[{i}]"
        for i, g in enumerate(listed if isinstance(listed, list) else [])
    ]
    names += list(sections)
    routes = data.get("HybridVoiceRoutes")
    context = {"routes": routes if isinstance(routes, dict) else {}, "cross_check_later": True}
    try:
        settings = Settings.model_validate(data, context=context)
    except ValidationError as exc:
        raise SettingsError(problems_of(exc, names)) from None
    problems = cross_check(settings) if cross_checked else []
    if problems:
        raise SettingsError(problems)
    return settings


def load_settings(path: str | Path) -> Settings:
    """Read and validate a TOML settings file (stdlib ``tomllib``).

    Raises :class:`SettingsError` for a file that cannot be read, is not TOML, or holds
    invalid settings (every problem listed).
    """
    source = Path(path)
    try:
        with source.open("rb") as f:
            raw = tomllib.load(f)
    except OSError as exc:
        raise SettingsError([Problem(str(source), f"cannot read: {exc.strerror}")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError([Problem(str(source), f"not valid TOML: {exc}")]) from None
    return parse_settings(raw)
