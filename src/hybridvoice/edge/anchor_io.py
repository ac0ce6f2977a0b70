"""The edge's media anchoring on the loop: relay ports per call, the proxy's SDP hook, the
idle sweep's timer.

The adapter of :mod:`.anchor` and :mod:`.anchor_calls`. :class:`EdgeAnchoring` wraps the
edge's proxy policy: when an initial INVITE is to be anchored (:func:`.anchor.offer_from_outside`
from the external side, always from the internal side, always when the INVITE has no offer:
the client's address is known only from its answer in the ACK, RFC 3261 §13.2.1) the routing
step takes a relay call from the edge's :class:`~hybridvoice.net.relay.RelayEngine` (leg A:
the external side, leg B: the mediation side; latching on each, RFC 4961).
:meth:`EdgeAnchoring.hook` is the proxy's forward hook: it carries out what
:func:`.anchor_calls.cross` decides for each message of an anchored call (SDP rewritten,
remote address set, ports released). A call whose relay carried nothing for an hour (its BYE
never crossed the edge) is released by :class:`.anchor_calls.IdleSweep` on its own loop timer;
:meth:`EdgeAnchoring.close` releases the rest. Each call's external side has an ICE-lite agent
(:class:`~hybridvoice.media.ice_lite.IceLite`, fresh ``ice-ufrag``/``ice-pwd`` per call) that
answers the client's connectivity checks on the relay's ports.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Final, Protocol

from hybridvoice.media import Leg
from hybridvoice.media.ice_lite import IceCounters, IceCredentials, IceLite
from hybridvoice.net.proxy import Decision, Forward, ProxyPolicy
from hybridvoice.net.relay import RelayCall, RelayEngine
from hybridvoice.net.transport import Source, Transport
from hybridvoice.sip.message import Request, Response

from .anchor import IPNetwork, MediaAddress, offer_from_outside
from .anchor_calls import AnchoredCall, IdleSweep, cross, sdp_bodies

__all__ = ["AnchorCounters", "EdgeAnchoring"]

_log = logging.getLogger(__name__)

#: A call whose relay carried nothing for an hour is over (its BYE never crossed the edge).
IDLE_TIMEOUT: Final = 3600.0
#: How often the idle sweep looks while calls are anchored.
SWEEP_INTERVAL: Final = 60.0


@dataclass(slots=True)
class AnchorCounters:
    """Calls anchored by the side they came from, released (idle: by the sweep), left
    unanchored (no ports), SDPs rewritten."""

    from_external: int = 0
    from_internal: int = 0
    released: int = 0
    idle_released: int = 0
    no_ports: int = 0
    rewritten: int = 0


class _Handle(Protocol):
    def cancel(self) -> None: ...


#: ``call_later(delay, callback)``: arms one loop timer (default: the running loop's)
CallLater = Callable[[float, Callable[[], None]], _Handle]


class EdgeAnchoring:
    """Relay calls by Call-ID; :meth:`policy` wraps the routing, :meth:`hook` the SDP."""

    def __init__(
        self,
        engine: RelayEngine,
        external: Collection[Transport],
        internal_subnets: tuple[IPNetwork, ...],
        public_host: str,
        *,
        idle_timeout: float = IDLE_TIMEOUT,
        sweep_interval: float = SWEEP_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        call_later: CallLater | None = None,
        token: Callable[[int], str] = secrets.token_hex,
    ) -> None:
        self.engine = engine
        self.external = external
        self.internal_subnets = internal_subnets
        self.public_host = public_host
        self.calls: dict[str, RelayCall] = {}
        self._state: dict[str, AnchoredCall] = {}
        self._agents: dict[str, IceLite] = {}
        self.counters = AnchorCounters()
        #: the ICE-lite agents' checks answered, refused, nominations (every call's)
        self.ice_counters = IceCounters()
        self._token = token  # ICE credentials: token(4) the ufrag, token(12) the pwd (hex)
        #: a call whose relay carried no packet for ``idle_timeout`` seconds is released
        #: (its BYE never crossed the edge), looked at every ``sweep_interval`` seconds
        self.idle = IdleSweep(idle_timeout, sweep_interval)
        self._clock = clock
        self._call_later = call_later
        self._timer: _Handle | None = None
        self._timer_at: float | None = None

    def policy(self, inner: ProxyPolicy) -> ProxyPolicy:
        return _AnchoringPolicy(self, inner)

    def wants(self, request: Request, source: Source) -> bool:
        """Whether this initial request's media is anchored at the edge."""
        if request.method != "INVITE":
            return False
        found = sdp_bodies(request) if source.transport in self.external else None
        if found is not None:
            return any(offer_from_outside(b, self.internal_subnets) for b in found.bodies)
        # toward a user (the client may be anywhere), or an offer-less INVITE (the client's
        # address comes in its answer, in the ACK: too late to choose)
        return True

    def sweep(self) -> int:
        """Release the calls the idle sweep finds silent (when it is due); how many."""
        packets = {call_id: _packets(call) for call_id, call in self.calls.items()}
        gone = self.idle.due(self._clock(), packets)
        for call_id in gone:
            self.release(call_id)
        self.counters.idle_released += len(gone)
        self._arm()
        return len(gone)

    def _arm(self) -> None:
        """Keep one loop timer at the idle sweep's deadline (none without anchored calls)."""
        deadline = self.idle.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._timer_at = None
        if deadline is None:
            return
        call_later = self._call_later
        if call_later is None:
            call_later = asyncio.get_running_loop().call_later
        self._timer = call_later(max(0.0, deadline - self._clock()), self._on_timer)
        self._timer_at = deadline

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        try:
            self.sweep()
        except Exception:  # a bug here must not stop the loop; the next call re-arms
            _log.exception("edge anchoring: idle sweep failed")

    async def prepare(self, request: Request, source: Source) -> None:
        call_id = request.call_id
        if call_id is None or call_id in self.calls:
            return
        try:
            call = await self.engine.create_call(call_id)
        except Exception as exc:  # no ports: the call goes on unanchored, counted
            self.counters.no_ports += 1
            _log.warning("no edge relay ports for call %s: %s", call_id, exc)
            return
        self.calls[call_id] = call
        _, a_rtp, a_rtcp = call.local(Leg.A)
        host, b_rtp, b_rtcp = call.local(Leg.B)
        ice = IceCredentials(self._token(4), self._token(12))
        agent = self._agents[call_id] = IceLite(ice, self.ice_counters)
        call.set_ice(Leg.A, agent)  # the client's checks reach the external side
        self._state[call_id] = AnchoredCall(
            call_id,
            external=MediaAddress(self.public_host, a_rtp, a_rtcp),
            internal=MediaAddress(host, b_rtp, b_rtcp),
            ice=ice,
        )
        self.idle.add(call_id, self._clock())
        self._arm()
        if source.transport in self.external:
            self.counters.from_external += 1
        else:
            self.counters.from_internal += 1

    def hook(self, message: Request | Response, out: Transport | None) -> None:
        """The proxy's forward hook (:attr:`hybridvoice.net.proxy.Proxy.forward_hook`)."""
        call_id = message.call_id
        state = self._state.get(call_id) if call_id is not None else None
        if state is None:
            return
        decision = cross(state, message, out in self.external)
        if decision.release:
            self.release(state.call_id)
            return
        call = self.calls[state.call_id]
        remote = decision.remote
        if decision.remote_ice is not None:
            self._agents[state.call_id].set_remote(decision.remote_ice.ufrag)
        if decision.came_from is not None and remote is not None:
            call.set_remote(decision.came_from, remote.address, remote.port, remote.rtcp_port)
        if decision.body is not None:
            message.body = decision.body
            self.counters.rewritten += 1

    def release(self, call_id: str) -> None:
        call = self.calls.pop(call_id, None)
        self._state.pop(call_id, None)
        self._agents.pop(call_id, None)
        self.idle.remove(call_id)
        if call is not None:
            self.engine.drop(call)
            self.counters.released += 1
        self._arm()

    async def close(self) -> None:
        for call_id in list(self.calls):
            self.release(call_id)
        await self.engine.close()


def _packets(call: RelayCall) -> int:
    a, b = call.session.a, call.session.b
    return a.packets + b.packets + a.rtcp_packets + b.rtcp_packets


class _AnchoringPolicy:
    """The edge's policy with relay ports taken for the INVITEs to anchor."""

    def __init__(self, anchoring: EdgeAnchoring, inner: ProxyPolicy) -> None:
        self._anchoring = anchoring
        self._inner = inner

    def route(self, request: Request, source: Source) -> Decision | Awaitable[Decision]:
        decision = self._inner.route(request, source)
        if isinstance(decision, Forward) and self._anchoring.wants(request, source):
            return self._prepared(request, source, decision)
        return decision

    async def _prepared(self, request: Request, source: Source, decision: Decision) -> Decision:
        await self._anchoring.prepare(request, source)
        return decision

    def admit(self, request: Request, source: Source) -> Response | None:
        return self._inner.admit(request, source)
