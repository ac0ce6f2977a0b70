"""The edge's media anchoring on the loop: relay ports per call and the proxy's SDP hook.

The adapter of :mod:`.anchor`. :class:`EdgeAnchoring` wraps the edge's proxy policy: when an
initial INVITE is to be anchored (:func:`.anchor.offer_from_outside` from the external side,
always from the internal side) the routing step takes a relay call from the edge's
:class:`~hybridvoice.net.relay.RelayEngine` (leg A: the external side, leg B: the mediation
side; latching on each, RFC 4961). :meth:`EdgeAnchoring.hook` is the proxy's forward hook:
each SDP of an anchored call that crosses the edge names the relay ports of the side it
leaves on (the external side's as ``ExternalMRPublicIPs``), and the SDP's own address
becomes the remote of the side it came from. A BYE, or a failure answer to the INVITE
before any 2xx, releases the ports; a call whose relay carried nothing for an hour is
released by the sweep each new anchored call runs; :meth:`EdgeAnchoring.close` releases
the rest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Final

from hybridvoice.media import Leg
from hybridvoice.net.proxy import Decision, Forward, ProxyPolicy
from hybridvoice.net.relay import RelayCall, RelayEngine
from hybridvoice.net.transport import Source, Transport
from hybridvoice.sip.message import Request, Response

from .anchor import IPNetwork, offer_from_outside, rewrite_sdp, sdp_media

__all__ = ["AnchorCounters", "EdgeAnchoring"]

_log = logging.getLogger(__name__)

#: A call whose relay carried nothing for an hour is over (its BYE never crossed the edge).
IDLE_TIMEOUT: Final = 3600.0


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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.external = external
        self.internal_subnets = internal_subnets
        self.public_host = public_host
        self.calls: dict[str, RelayCall] = {}
        self._answered: set[str] = set()
        self.counters = AnchorCounters()
        #: a call whose relay carried no packet for this long is released at the next sweep
        #: (its BYE never crossed the edge); sweeps run when a new call is anchored
        self.idle_timeout = idle_timeout
        self._clock = clock
        #: Call-ID -> (packets at the last sweep that saw them move, when)
        self._seen: dict[str, tuple[int, float]] = {}

    def policy(self, inner: ProxyPolicy) -> ProxyPolicy:
        return _AnchoringPolicy(self, inner)

    def wants(self, request: Request, source: Source) -> bool:
        """Whether this initial request's media is anchored at the edge."""
        if request.method != "INVITE" or not request.body:
            return False
        if source.transport in self.external:
            return offer_from_outside(request.body, self.internal_subnets)
        return True  # toward a user: the client may be anywhere

    def sweep(self) -> int:
        """Release the calls whose relay carried nothing for :attr:`idle_timeout` seconds;
        how many were released."""
        now, gone = self._clock(), []
        for call_id, call in self.calls.items():
            a, b = call.session.a, call.session.b
            total = a.packets + b.packets + a.rtcp_packets + b.rtcp_packets
            seen = self._seen.get(call_id)
            if seen is None or seen[0] != total:
                self._seen[call_id] = (total, now)
            elif now - seen[1] >= self.idle_timeout:
                gone.append(call_id)
        for call_id in gone:
            self.release(call_id)
        self.counters.idle_released += len(gone)
        return len(gone)

    async def prepare(self, request: Request, source: Source) -> None:
        call_id = request.call_id
        if call_id is None or call_id in self.calls:
            return
        self.sweep()
        try:
            call = await self.engine.create_call(call_id)
        except Exception as exc:  # no ports: the call goes on unanchored, counted
            self.counters.no_ports += 1
            _log.warning("no edge relay ports for call %s: %s", call_id, exc)
            return
        self.calls[call_id] = call
        if source.transport in self.external:
            self.counters.from_external += 1
        else:
            self.counters.from_internal += 1

    def hook(self, message: Request | Response, out: Transport | None) -> None:
        """The proxy's forward hook (:attr:`hybridvoice.net.proxy.Proxy.forward_hook`)."""
        call_id = message.call_id
        call = self.calls.get(call_id) if call_id is not None else None
        if call is None or call_id is None:
            return
        if isinstance(message, Request):
            if message.method == "BYE":
                self.release(call_id)
                return
        else:
            cseq = message.headers.get("CSeq") or ""
            if cseq.rstrip().upper().endswith("INVITE"):
                if 200 <= message.status < 300:
                    self._answered.add(call_id)
                elif message.status >= 300 and call_id not in self._answered:
                    self.release(call_id)
                    return
        body = message.body
        content_type = (message.headers.get("Content-Type") or "").lower()
        if not body or not content_type.startswith("application/sdp"):
            return
        toward_external = out in self.external
        came_from, goes_to = (Leg.B, Leg.A) if toward_external else (Leg.A, Leg.B)
        found = sdp_media(body)
        if found is not None:
            call.set_remote(came_from, found.address, found.port, found.rtcp_port)
        host, rtp, rtcp = call.local(goes_to)
        new = rewrite_sdp(body, self.public_host if toward_external else host, rtp, rtcp)
        if new is not None:
            message.body = new
            self.counters.rewritten += 1

    def release(self, call_id: str) -> None:
        call = self.calls.pop(call_id, None)
        self._answered.discard(call_id)
        self._seen.pop(call_id, None)
        if call is not None:
            self.engine.drop(call)
            self.counters.released += 1

    async def close(self) -> None:
        for call_id in list(self.calls):
            self.release(call_id)
        await self.engine.close()


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
