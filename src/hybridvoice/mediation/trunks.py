"""Gateways at run time: health from OPTIONS, call counters, inbound source matching (sans-IO).

:class:`TrunkTable` holds one :class:`GatewayState` per configured ``[GatewayN]``. Health is fed
by the OPTIONS pinger (``hybridvoice.mediation.health``): any final response to OPTIONS means
the gateway is alive (RFC 3261 §11.2: a UAS answers OPTIONS as it would an INVITE, so 404 or
405 count too); ``UnhealthyAfterMissed`` consecutive probes without one (no answer, a transport
error) mark it down; the first answer marks it up again. A gateway that is not probed
(``SendSipOptions = false``) stays ``unknown``, which routing treats as healthy.

Inbound requests are accepted only from a configured gateway's address (its ``IP`` and the
addresses its ``FQDN`` resolved to at start); certificate-based trust replaces this with MTLS.
Time is a parameter (``now``, monotonic seconds); nothing here does I/O.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from hybridvoice.cms.settings import Gateway, Settings

__all__ = [
    "GatewayState",
    "GatewayStatus",
    "Health",
    "HealthChange",
    "TrunkTable",
    "normalise_ip",
]


class Health(enum.Enum):
    """A gateway's health as its OPTIONS probes see it."""

    UNKNOWN = "unknown"  # not probed yet, or never (SendSipOptions = false): treated as up
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class HealthChange:
    """A gateway went up or down at ``at``; ``reason`` says why (for logs and events)."""

    gateway: str
    health: Health
    at: float
    reason: str


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    """A snapshot of one gateway for ``appliance status`` and the management API."""

    name: str
    host: str
    port: int
    protocol: str
    enabled: bool
    health: Health
    since: float | None
    last_options_status: int | None
    last_options_rtt_ms: float | None
    last_options_error: str | None
    consecutive_failures: int
    active_calls: int
    max_sessions: int | None
    calls_total: int
    calls_failed: int


def normalise_ip(address: str) -> str:
    """An IP literal in one canonical form (``::ffff:10.0.0.1`` -> ``10.0.0.1``, brackets off).

    Non-IP strings come back unchanged.
    """
    text = address[1:-1] if address.startswith("[") and address.endswith("]") else address
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


class GatewayState:
    """One gateway's configuration and mutable run-time state."""

    __slots__ = (
        "active_calls",
        "addresses",
        "calls_failed",
        "calls_total",
        "config",
        "consecutive_failures",
        "health",
        "last_options_error",
        "last_options_rtt_ms",
        "last_options_status",
        "since",
    )

    def __init__(self, config: Gateway, addresses: Iterable[str] = ()) -> None:
        self.config = config
        #: Where the gateway is reached and whence it may send: IP first, then the FQDN's.
        self.addresses = _addresses(config, addresses)
        self.health = Health.UNKNOWN
        self.since: float | None = None
        self.consecutive_failures = 0
        self.last_options_status: int | None = None
        self.last_options_rtt_ms: float | None = None
        self.last_options_error: str | None = None
        self.active_calls = 0
        self.calls_total = 0
        self.calls_failed = 0

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def healthy(self) -> bool:
        """Up, or not known to be down."""
        return self.health is not Health.DOWN

    @property
    def has_capacity(self) -> bool:
        """Below ``MaxConcurrentSessions`` (always, when that is unset)."""
        limit = self.config.max_concurrent_sessions
        return limit is None or self.active_calls < limit

    @property
    def target(self) -> str | None:
        """The IP to send to: ``IP`` if set, else the first address ``FQDN`` resolved to."""
        return self.addresses[0] if self.addresses else None

    def status(self) -> GatewayStatus:
        cfg = self.config
        return GatewayStatus(
            name=cfg.name,
            host=cfg.host,
            port=cfg.port,
            protocol=cfg.protocol,
            enabled=cfg.enabled,
            health=self.health,
            since=self.since,
            last_options_status=self.last_options_status,
            last_options_rtt_ms=self.last_options_rtt_ms,
            last_options_error=self.last_options_error,
            consecutive_failures=self.consecutive_failures,
            active_calls=self.active_calls,
            max_sessions=cfg.max_concurrent_sessions,
            calls_total=self.calls_total,
            calls_failed=self.calls_failed,
        )

    def __repr__(self) -> str:
        return f"<GatewayState {self.name} {self.health.value} active={self.active_calls}>"


def _addresses(config: Gateway, resolved: Iterable[str]) -> tuple[str, ...]:
    ips = [normalise_ip(a) for a in resolved]
    if config.ip is not None:
        ips.insert(0, normalise_ip(config.ip))
    return tuple(dict.fromkeys(ips))


class TrunkTable:
    """Every gateway of the appliance, by name and by source address.

    ``resolved`` maps a gateway FQDN to the addresses it resolved to at start (the caller
    resolves; see ``hybridvoice.mediation.health.resolve_gateways``).
    """

    __slots__ = ("_by_address", "_by_name", "unhealthy_after")

    def __init__(
        self,
        gateways: Iterable[Gateway],
        *,
        unhealthy_after: int = 3,
        resolved: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        if unhealthy_after < 1:
            raise ValueError(f"unhealthy_after must be >= 1, got {unhealthy_after}")
        self.unhealthy_after = unhealthy_after
        names = resolved or {}
        self._by_name: dict[str, GatewayState] = {}
        self._by_address: dict[str, GatewayState] = {}
        for gw in gateways:
            state = GatewayState(gw, names.get(gw.fqdn, ()) if gw.fqdn else ())
            self._by_name[gw.name] = state
        self._index_addresses()

    def _index_addresses(self) -> None:
        self._by_address = {}
        for state in self._by_name.values():
            for address in state.addresses:
                self._by_address.setdefault(address, state)  # the first gateway keeps an IP

    @classmethod
    def from_settings(
        cls, settings: Settings, resolved: Mapping[str, Iterable[str]] | None = None
    ) -> TrunkTable:
        return cls(
            settings.gateways,
            unhealthy_after=settings.trunk_configuration.unhealthy_after_missed,
            resolved=resolved,
        )

    def __iter__(self) -> Iterator[GatewayState]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def __getitem__(self, name: str) -> GatewayState:
        return self._by_name[name]

    def put(self, config: Gateway, resolved: Iterable[str] = ()) -> GatewayState:
        """Add a gateway, or give the one of that name a new configuration, at run time
        (``hybridvoice gateway add/set``); ``resolved``: the addresses its FQDN resolved to.

        A changed gateway keeps its call counters, so calls in progress end on it correctly;
        its health starts again from ``unknown`` when where it is reached changed.
        """
        state = self._by_name.get(config.name)
        if state is None:
            state = self._by_name[config.name] = GatewayState(config, resolved)
        else:
            old = state.config
            state.config = config
            state.addresses = _addresses(config, resolved)
            if (old.host, old.port, old.protocol) != (config.host, config.port, config.protocol):
                state.health, state.since, state.consecutive_failures = Health.UNKNOWN, None, 0
                state.last_options_status = state.last_options_rtt_ms = None
                state.last_options_error = None
        self._index_addresses()
        return state

    # --- inbound -------------------------------------------------------------------------------

    def gateway_for_source(self, address: str) -> GatewayState | None:
        """The gateway a request from ``address`` comes from, or None (refuse it)."""
        state = self._by_address.get(normalise_ip(address))
        if state is None or not state.config.enabled:
            return None
        return state

    # --- health (fed by the OPTIONS pinger) ---------------------------------------------------

    def options_answered(
        self, name: str, now: float, status: int, rtt_ms: float
    ) -> HealthChange | None:
        """A final response to OPTIONS came: the gateway is up (RFC 3261 §11.2)."""
        state = self._by_name[name]
        state.consecutive_failures = 0
        state.last_options_status = status
        state.last_options_rtt_ms = rtt_ms
        state.last_options_error = None
        if state.health is Health.UP:
            return None
        state.health = Health.UP
        state.since = now
        return HealthChange(name, Health.UP, now, f"OPTIONS answered {status}")

    def options_failed(self, name: str, now: float, reason: str) -> HealthChange | None:
        """An OPTIONS probe got no final response (timeout, transport error)."""
        state = self._by_name[name]
        state.consecutive_failures += 1
        state.last_options_status = None
        state.last_options_rtt_ms = None
        state.last_options_error = reason
        if state.health is Health.DOWN or state.consecutive_failures < self.unhealthy_after:
            return None
        state.health = Health.DOWN
        state.since = now
        why = f"{state.consecutive_failures} OPTIONS without an answer (last: {reason})"
        return HealthChange(name, Health.DOWN, now, why)

    # --- calls ----------------------------------------------------------------------------------

    def call_started(self, name: str) -> None:
        """A call (attempt) to or from ``name`` began: it holds one session."""
        state = self._by_name[name]
        state.active_calls += 1
        state.calls_total += 1

    def call_ended(self, name: str, *, failed: bool = False) -> None:
        """A call (attempt) on ``name`` ended; ``failed`` counts it as failed."""
        state = self._by_name[name]
        state.active_calls = max(0, state.active_calls - 1)
        if failed:
            state.calls_failed += 1

    def status(self) -> tuple[GatewayStatus, ...]:
        """Every gateway's status, in configuration order."""
        return tuple(state.status() for state in self._by_name.values())
