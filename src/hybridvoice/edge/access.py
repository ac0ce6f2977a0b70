"""The access edge: a dual-homed SIP proxy between the online service and the mediation role.

RFC 3261 §16 proxying (the core is :class:`hybridvoice.net.proxy.Proxy`) with the policy of
Cloud Connector Edition's Access Edge:

* Two interfaces. The *external* one takes requests only from the online service's SIP
  addresses (``[Online] SIPAddresses``); the *internal* one only from this appliance's
  mediation role. Anything else gets 403 (certificate trust replaces address trust once the
  CA role lands). Requests are forwarded to the other side, sent from that side's interface
  (``Destination.local``), and record-routed on both (RFC 5658 double Record-Route), so
  every request of the dialog crosses the edge the same way.
* When the mediation role does not answer (its OPTIONS pings fail, or an INVITE gets no
  provisional response within ``[EdgeServer] MediationTimeoutSeconds``) the edge answers
  503 with Retry-After at once, so that the online service moves on to another appliance of
  the site. (The original failed such inbound calls; docs/reference.md, "Limits".)
* OPTIONS addressed to the edge itself (no user part) are answered 200: the online
  service's keep-alive of the appliance.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final, Protocol

from hybridvoice.net.proxy import Forward, Target
from hybridvoice.net.transport import Destination, Source, Transport
from hybridvoice.sip.message import Request, Response, make_response
from hybridvoice.sip.uri import SipUri

__all__ = ["EdgePolicy", "Monitor", "Reachability", "Sides"]

_log = logging.getLogger(__name__)
_AGENT: Final = "hybridvoice-edge"
RETRY_AFTER: Final = 5


def _warned(request: Request, status: int, why: str, *extra: tuple[str, object]) -> Response:
    headers = [("Warning", f'399 {_AGENT} "{why}"'), *extra]
    return make_response(request, status, headers=headers)


@dataclass(frozen=True, slots=True)
class Sides:
    """The edge's two interfaces and who may talk to each."""

    external: Collection[Transport]
    internal: Collection[Transport]
    online_hosts: frozenset[str]  # IP addresses of the online service
    mediation_hosts: frozenset[str]  # IP addresses of this appliance's mediation role
    online: Destination  # next hop toward the online service
    mediation: Destination  # next hop toward the mediation role


class Reachability:
    """Whether the mediation role answers, from the outcomes of its OPTIONS pings (RFC 3261
    §11): ``up`` turns False after ``misses`` unanswered pings in a row and True at the next
    answer. The sans-IO half of :class:`~hybridvoice.edge.monitor.MediationMonitor`."""

    __slots__ = ("missed", "misses", "up")

    def __init__(self, misses: int = 2) -> None:
        self.misses = misses
        self.up = True  # until proven otherwise: the first call must not wait for a ping
        self.missed = 0

    def answered(self) -> bool:
        """A ping was answered; True when that brings the role back."""
        back = not self.up
        self.missed = 0
        self.up = True
        return back

    def unanswered(self) -> bool:
        """A ping timed out or could not be sent; True when that marks the role down."""
        self.missed += 1
        if self.up and self.missed >= self.misses:
            self.up = False
            return True
        return False


class Monitor(Protocol):
    """What the policy asks of the mediation monitor."""

    @property
    def up(self) -> bool: ...


class EdgePolicy:
    """Routing decisions of the access edge (see the module docstring)."""

    def __init__(
        self,
        sides: Sides,
        *,
        mediation_timeout: float = 2.0,
        monitor: Monitor | None = None,
    ) -> None:
        self.sides = sides
        self.mediation_timeout = mediation_timeout
        self.monitor = monitor
        self.refused = 0  # requests from addresses this edge does not trust

    def _external(self, source: Source) -> bool:
        return source.transport in self.sides.external

    def _trusted(self, source: Source) -> bool:
        hosts = self.sides.online_hosts if self._external(source) else self.sides.mediation_hosts
        return source.host in hosts

    # --- ProxyPolicy ----------------------------------------------------------------------------
    def route(self, request: Request, source: Source) -> Forward | Response:
        if not self._trusted(source):
            self.refused += 1
            side = "external" if self._external(source) else "internal"
            return _warned(request, 403, f"{source.host} may not send on the {side} side")
        uri = request.uri
        if request.method == "OPTIONS" and isinstance(uri, SipUri) and uri.user is None:
            return make_response(request, 200)
        if self._external(source):
            return self._to_mediation(request)
        return Forward(groups=[[Target(uri, self.sides.online)]])

    def admit(self, request: Request, source: Source) -> Response | None:
        if self._trusted(source):
            return None
        self.refused += 1
        return _warned(request, 403, f"{source.host} is not trusted on this side")

    def _to_mediation(self, request: Request) -> Forward | Response:
        if self.monitor is not None and not self.monitor.up:
            return _warned(
                request, 503, "the mediation role does not answer", ("Retry-After", RETRY_AFTER)
            )
        return Forward(
            groups=[[Target(request.uri, self.sides.mediation)]],
            provisional_timeout=self.mediation_timeout,
            exhausted=503,
        )
