"""Gateways at run time: health from OPTIONS and calls, call counters, inbound source matching
(sans-IO).

:class:`TrunkTable` holds one :class:`GatewayState` per configured ``[GatewayN]``. Health is fed
by the OPTIONS pinger (``hybridvoice.mediation.health``) and by outbound calls (passive:
``invite_answered``, ``invite_failed``); the state machine and its thresholds are in
``.gateway_health`` (RFC 3261 §11.2: any final response to OPTIONS means alive). A gateway
that is not probed (``SendSipOptions = false``) stays ``unknown``, which routing treats as
healthy, until a call to it fails; it is then probed until it answers.

Inbound requests are accepted only from a configured gateway's address (its ``IP`` and the
addresses its ``FQDN`` resolved to at start); certificate-based trust replaces this with MTLS.
Time is a parameter (``now``, monotonic seconds); nothing here does I/O.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from hybridvoice.cms.settings import Gateway, Settings, TrunkConfiguration

from .gateway_health import GatewayHealth, Health, HealthChange, HealthPolicy

_log = logging.getLogger(__name__)

__all__ = [
    "GatewayState",
    "GatewayStatus",
    "Health",
    "HealthChange",
    "HealthPolicy",
    "TrunkTable",
    "normalise_ip",
]


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
        "last_options_error",
        "last_options_rtt_ms",
        "last_options_status",
        "monitor",
    )

    def __init__(
        self, config: Gateway, addresses: Iterable[str] = (), policy: HealthPolicy | None = None
    ) -> None:
        self.config = config
        #: Where the gateway is reached and whence it may send: IP first, then the FQDN's.
        self.addresses = _addresses(config, addresses)
        #: the health state machine (``.gateway_health``)
        self.monitor = GatewayHealth(config.name, policy or HealthPolicy.of(config))
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
    def health(self) -> Health:
        return self.monitor.state

    @property
    def since(self) -> float | None:
        """When the health last changed."""
        return self.monitor.since

    @property
    def consecutive_failures(self) -> int:
        return self.monitor.misses

    @property
    def healthy(self) -> bool:
        """Up, or not known to be down."""
        return self.monitor.healthy

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

    __slots__ = (
        "_by_address", "_by_name", "on_change", "on_probe_due", "trunk", "unhealthy_after",
    )  # fmt: skip

    def __init__(
        self,
        gateways: Iterable[Gateway],
        *,
        unhealthy_after: int | None = None,
        resolved: Mapping[str, Iterable[str]] | None = None,
        trunk: TrunkConfiguration | None = None,
    ) -> None:
        if unhealthy_after is not None and unhealthy_after < 1:
            raise ValueError(f"unhealthy_after must be >= 1, got {unhealthy_after}")
        if trunk is None:
            trunk = TrunkConfiguration()
        if unhealthy_after is not None:  # the table's own word over [TrunkConfiguration]'s
            trunk = trunk.model_copy(update={"unhealthy_after_missed": unhealthy_after})
        self.trunk = trunk
        self.unhealthy_after = trunk.unhealthy_after_missed
        #: called with a gateway's name when a call's failure asks for a probe at once (the
        #: OPTIONS pinger sets it; the table only calls it)
        self.on_probe_due: Callable[[str], None] | None = None
        #: called with every up/down change that a call saw (an INVITE answered, timed out
        #: or not sent), like the pinger's own: the OPTIONS pinger sets it, and reports the
        #: change once the call's own step is over, so that calls pending on a gateway that a
        #: call marked down move on too (the table only calls it)
        self.on_change: Callable[[HealthChange], None] | None = None
        names = resolved or {}
        self._by_name: dict[str, GatewayState] = {}
        self._by_address: dict[str, GatewayState] = {}
        for gw in gateways:
            addresses = names.get(gw.fqdn, ()) if gw.fqdn else ()
            self._by_name[gw.name] = GatewayState(gw, addresses, self.policy(gw))
        self._index_addresses()

    def policy(self, gateway: Gateway) -> HealthPolicy:
        """How ``gateway`` is watched: its own health keys, else the trunk's."""
        return HealthPolicy.of(gateway, self.trunk)

    def _index_addresses(self) -> None:
        self._by_address = {}
        for state in self._by_name.values():
            for address in state.addresses:
                self._by_address.setdefault(address, state)  # the first gateway keeps an IP

    @classmethod
    def from_settings(
        cls, settings: Settings, resolved: Mapping[str, Iterable[str]] | None = None
    ) -> TrunkTable:
        return cls(settings.gateways, resolved=resolved, trunk=settings.trunk_configuration)

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
        policy = self.policy(config)
        if state is None:
            state = self._by_name[config.name] = GatewayState(config, resolved, policy)
        else:
            old = state.config
            state.config = config
            state.addresses = _addresses(config, resolved)
            if (old.host, old.port, old.protocol) != (config.host, config.port, config.protocol):
                state.monitor = GatewayHealth(config.name, policy)
                state.last_options_status = state.last_options_rtt_ms = None
                state.last_options_error = None
            else:
                state.monitor.policy = policy
        self._index_addresses()
        return state

    # --- inbound -------------------------------------------------------------------------------

    def gateway_for_source(self, address: str) -> GatewayState | None:
        """The gateway a request from ``address`` comes from, or None (refuse it)."""
        state = self._by_address.get(normalise_ip(address))
        if state is None or not state.config.enabled:
            return None
        return state

    # --- health (fed by the OPTIONS pinger and by calls) --------------------------------------

    def options_answered(
        self, name: str, now: float, status: int, rtt_ms: float
    ) -> HealthChange | None:
        """A final response to OPTIONS came: the gateway is alive (RFC 3261 §11.2)."""
        state = self._by_name[name]
        state.last_options_status = status
        state.last_options_rtt_ms = rtt_ms
        state.last_options_error = None
        return state.monitor.answered(now, f"OPTIONS answered {status}")

    def options_failed(self, name: str, now: float, reason: str) -> HealthChange | None:
        """An OPTIONS probe got no final response (timeout, transport error)."""
        state = self._by_name[name]
        state.last_options_status = None
        state.last_options_rtt_ms = None
        state.last_options_error = reason
        return state.monitor.missed(now, reason)

    def invite_answered(self, name: str, now: float, status: int) -> HealthChange | None:
        """The gateway responded to an INVITE (a 18x or a final response of its own)."""
        state = self._by_name.get(name)
        if state is None:
            return None
        return self._seen(state.monitor.answered(now, f"INVITE answered {status}"))

    def invite_failed(self, name: str, now: float, reason: str) -> HealthChange | None:
        """An INVITE to the gateway timed out (Timer B) or could not be sent: a miss at once,
        and a probe is asked for at once (:attr:`on_probe_due`)."""
        state = self._by_name.get(name)
        if state is None:
            return None
        change = state.monitor.missed(now, f"INVITE: {reason}", passive=True)
        if self.on_probe_due is not None:
            self.on_probe_due(name)
        return self._seen(change)

    def _seen(self, change: HealthChange | None) -> HealthChange | None:
        """A change a call saw: logged, and passed to :attr:`on_change`."""
        _logged(change)
        if change is not None and self.on_change is not None:
            self.on_change(change)
        return change

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

    def take_changes(self) -> list[HealthChange]:
        """Every gateway's health changes since the last call (OPTIONS or calls caused them)."""
        return [c for state in self._by_name.values() for c in state.monitor.take_changes()]

    def status(self) -> tuple[GatewayStatus, ...]:
        """Every gateway's status, in configuration order."""
        return tuple(state.status() for state in self._by_name.values())


def _logged(change: HealthChange | None) -> HealthChange | None:
    """A change seen by a call (the pinger logs its own): said in the log."""
    if change is not None:
        _log.warning("gateway %s is %s: %s", change.gateway, change.health.value, change.reason)
    return change
