"""Gateway health: an OPTIONS pinger per gateway (RFC 3261 §11) feeding the trunk table.

:class:`HealthMonitor` runs one asyncio task per enabled gateway, the adapter of the health
core (``.gateway_health``): when the core says a probe is due (every
``OptionsIntervalSeconds`` with ``SendSipOptions``; else only while the gateway is down; and
at once after a call to it failed) the task sends OPTIONS through the mediation role's own
:class:`~hybridvoice.net.endpoint.Endpoint` (so the gateway sees the same address and
transport as for calls) and waits up to ``OptionsTimeoutSeconds`` (default: the interval) for
the final response. Any final response, even 404 or 405, shows the gateway is alive (§11.2);
no answer or a transport error (§18.4) is a miss. ``UnhealthyAfterMissed`` consecutive misses
mark the gateway down, ``HealthyAfterAnswered`` answers up again. The detection window by
probes alone is at most ``UnhealthyAfterMissed x interval`` plus one timeout; an INVITE that
times out or cannot be sent counts as a miss at once.

The request is the one ``hybridvoice sip options`` sends, built by
``net.options.options_request``.

:func:`resolve_gateways` resolves gateway FQDNs once at start (A/AAAA through the system
resolver), for sending and for accepting inbound requests by source address.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import time
from collections.abc import Callable, Iterable

from hybridvoice.cms.settings import Gateway, Settings
from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.options import options_request
from hybridvoice.net.transport import Destination, NetError, TransportError, via_host
from hybridvoice.sip.message import Request
from hybridvoice.sip.uri import SipUri

from .trunks import GatewayState, HealthChange, TrunkTable

__all__ = ["ChangeCallback", "HealthMonitor", "build_options", "destination_of", "resolve_gateways"]

_log = logging.getLogger(__name__)

#: Called for every change of a gateway's health (up <-> down).
ChangeCallback = Callable[[HealthChange], None]


async def resolve_gateways(gateways: Iterable[Gateway]) -> dict[str, tuple[str, ...]]:
    """FQDN -> the IP addresses it resolves to (an FQDN that does not resolve maps to ``()``,
    so the gateway gets no calls until the next start, and its probes report the problem)."""
    loop = asyncio.get_running_loop()
    out: dict[str, tuple[str, ...]] = {}
    for gw in gateways:
        if gw.fqdn is None or gw.fqdn in out:
            continue
        kind = socket.SOCK_DGRAM if gw.protocol == "UDP" else socket.SOCK_STREAM
        try:
            infos = await loop.getaddrinfo(gw.fqdn, gw.port, type=kind)
        except OSError:
            out[gw.fqdn] = ()
            continue
        out[gw.fqdn] = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    return out


def destination_of(gateway: GatewayState) -> Destination:
    """Where requests to ``gateway`` go; ``TransportError`` when it has no address."""
    cfg = gateway.config
    target = gateway.target
    if target is None:
        raise TransportError(f"{cfg.name}: {cfg.fqdn} did not resolve")
    return Destination(cfg.protocol, target, cfg.port, cfg.fqdn)


def build_options(endpoint: Endpoint, gateway: GatewayState, destination: Destination) -> Request:
    """An OPTIONS request for ``gateway`` (§11.1) from the transport it will go out on."""
    cfg = gateway.config
    params = () if cfg.protocol == "UDP" else (("transport", cfg.protocol.lower()),)
    uri = SipUri(host=cfg.fqdn or via_host(destination.host), port=cfg.port, params=params)
    transport = endpoint.transport_for(destination)
    return options_request(uri, transport.advertised[0], transport.sent_by, cfg.protocol)


class HealthMonitor:
    """OPTIONS pingers for every enabled gateway; start, then stop.

    Each gateway is probed when its health core (``.gateway_health``) says a probe is due:
    every ``OptionsIntervalSeconds`` with ``SendSipOptions``, else only while it is down;
    and at once when a call to it timed out or could not be sent (the trunk table's
    ``on_probe_due`` wakes its pinger). ``interval`` and ``timeout`` given here override every
    gateway's own (tests, ``RoleOptions.options_interval``). ``on_change`` hears every up/down
    change, taken from the trunk table once (``TrunkTable.take_changes``): a probe's at the
    probe's end; one a call caused (passive: the table's ``on_change``) on the next loop
    turn, after the step of that call, not only at the end of the probe it wakes (which can
    take ``OptionsTimeoutSeconds``). ``clock`` is the monotonic clock handed to the cores as
    ``now`` (default: the event loop's).
    """

    __slots__ = (
        "_by_name", "_clock", "_wakes", "endpoint", "interval", "on_change", "timeout", "trunks",
    )  # fmt: skip

    def __init__(
        self,
        endpoint: Endpoint,
        trunks: TrunkTable,
        *,
        interval: float | None = None,
        timeout: float | None = None,
        on_change: ChangeCallback | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if interval is not None and interval <= 0:
            raise ValueError(f"interval must be > 0, got {interval}")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        self.endpoint = endpoint
        self.trunks = trunks
        self.interval = interval
        self.timeout = interval if timeout is None else timeout
        self.on_change = on_change
        self._clock = clock or asyncio.get_running_loop().time
        self._by_name: dict[str, asyncio.Task[None]] = {}
        self._wakes: dict[str, asyncio.Event] = {}
        trunks.on_probe_due = self._wake
        trunks.on_change = self._seen_by_a_call

    @classmethod
    def from_settings(
        cls,
        endpoint: Endpoint,
        trunks: TrunkTable,
        settings: Settings,
        on_change: ChangeCallback | None = None,
    ) -> HealthMonitor:
        """Every gateway on its own keys (``OptionsIntervalSeconds`` ... ``[GatewayN]``)."""
        del settings  # the table holds each gateway's policy
        return cls(endpoint, trunks, on_change=on_change)

    @property
    def _tasks(self) -> list[asyncio.Task[None]]:
        """The pingers now."""
        return list(self._by_name.values())

    @property
    def running(self) -> bool:
        return any(not t.done() for t in self._tasks)

    def start(self) -> None:
        """Start one pinger per enabled gateway (idempotent)."""
        if self._by_name:
            return
        for gateway in self.trunks:
            self._spawn(gateway)

    def _spawn(self, gateway: GatewayState) -> None:
        if not gateway.config.enabled:
            return
        policy = gateway.monitor.policy  # our overrides over the gateway's own keys
        if self.interval is not None:
            policy = dataclasses.replace(policy, interval=self.interval)
        if self.timeout is not None:
            policy = dataclasses.replace(policy, timeout=self.timeout)
        gateway.monitor.policy = policy
        name = gateway.name
        self._wakes[name] = asyncio.Event()
        self._by_name[name] = asyncio.create_task(self._run(gateway), name=f"options-{name}")

    def _seen_by_a_call(self, change: HealthChange) -> None:
        """A call marked a gateway up or down (its INVITE timed out, could not be sent, or
        was answered): reported like a probe's change, on the next loop turn, since the call
        that saw it is still in its own step (its attempt is not given up yet). The changes
        are taken from the table, so each is reported once, here or at a probe's end."""
        del change  # it waits in the table with any other not yet reported
        asyncio.get_running_loop().call_soon(self._report_taken)

    def _report_taken(self) -> None:
        """Every change waiting in the trunk table, to :attr:`on_change`, oldest first. A
        failing listener is logged and the other changes are still reported: the health of
        the gateways must not stop at one bad reaction to it."""
        if self.on_change is None:
            return
        for taken in self.trunks.take_changes():
            try:
                self.on_change(taken)
            except Exception:
                _log.exception("gateway %s %s: reporting the change failed", taken.gateway,
                               taken.health.value)  # fmt: skip

    def _wake(self, name: str) -> None:
        event = self._wakes.get(name)
        if event is not None:
            event.set()

    async def watch(self, gateway: GatewayState) -> None:
        """(Re)start the pinger of ``gateway`` after a change at run time (``hybridvoice
        gateway add/set/enable/disable``): its old pinger stops, a new one starts when the
        gateway is enabled."""
        task = self._by_name.pop(gateway.name, None)
        self._wakes.pop(gateway.name, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._spawn(gateway)

    async def stop(self) -> None:
        """Stop every pinger and wait until they have ended."""
        tasks = self._tasks
        self._by_name, self._wakes = {}, {}
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def probe(self, gateway: GatewayState) -> HealthChange | None:
        """Send one OPTIONS to ``gateway`` and record the outcome; the change, if any."""
        name = gateway.name
        gateway.monitor.probing(self._clock())
        try:
            destination = destination_of(gateway)
            request = build_options(self.endpoint, gateway, destination)
            start = time.perf_counter()  # loop.time() is ms-grained on uvloop
            timeout = self.timeout or gateway.monitor.policy.timeout
            response = await self.endpoint.request(request, destination, timeout=timeout)
            rtt_ms = (time.perf_counter() - start) * 1000.0
        except (NetError, OSError) as exc:
            change = self.trunks.options_failed(name, self._clock(), _reason(exc))
        else:
            change = self.trunks.options_answered(name, self._clock(), response.status, rtt_ms)
        self._report_taken()  # this probe's change, and any a call caused since
        return change

    async def _run(self, gateway: GatewayState) -> None:
        """Probe when the core says so; a slow probe delays the next one, never doubles it."""
        wake = self._wakes[gateway.name]
        while True:
            due = gateway.monitor.next_probe()
            now = self._clock()
            if due is not None and now >= due:
                await self.probe(gateway)
                continue
            wait = None if due is None else due - now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), wait)
            wake.clear()


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    if reason == "timeout":
        return "no answer"
    if reason == "transport":  # the transaction layer's word: the send failed (§18.4)
        return "transport error: refused or unreachable"
    if isinstance(exc, TransportError | OSError):
        return f"transport error: {exc}" if str(exc) else "transport error"
    return str(exc) or type(exc).__name__
