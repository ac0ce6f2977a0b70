"""The mediation call's phases, events and decisions (the vocabulary of :mod:`.call_state`).

RFC 7092 §3.1 (a B2BUA's two dialogs joined by call-control events), RFC 3261 §13 (an INVITE
session's set-up, early and confirmed phases), §14.1 (the 491 retry timer), RFC 3264 §8.

Frozen, slotted dataclasses: the events a call takes besides its legs' own
:data:`~hybridvoice.net.call.CallUpdate` values, and the decisions (:data:`Actions`) its
handlers return for :mod:`.adapter` to carry out.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, Protocol

if TYPE_CHECKING:
    from hybridvoice.net.call import Call
    from hybridvoice.net.relay import RelayCall
    from hybridvoice.net.transport import Destination
    from hybridvoice.sip.headers import Address
    from hybridvoice.sip.uri import Uri

    from .b2bua import Bridge
    from .routing import Outcome
    from .trunks import GatewayState

__all__ = [
    "FAILOVER",
    "NONE",
    "REOFFER",
    "TRANSFER_FAILOVER",
    "Action",
    "Actions",
    "Adapter",
    "ArmTimer",
    "BindRelay",
    "CancelTimer",
    "Phase",
    "PlaceLeg",
    "RelayBound",
    "RelayFailed",
    "ReleaseRelay",
    "Start",
    "SwapLeg",
    "Then",
    "TimerFired",
]


class Phase(enum.Enum):
    """Where a mediation call is (see the module docstring)."""

    SETUP = "setup"
    EARLY = "early"
    CONNECTED = "connected"
    ENDED = "ended"


#: The timers of a call, by name: the fast failover of the pending gateway attempt (routing,
#: 10 s by default), our re-INVITE to the relay tried again after a 491 (RFC 3261 §14.1),
#: and the fast failover of a performed transfer's gateway attempt.
FAILOVER: Final = "failover"
REOFFER: Final = "reoffer"
TRANSFER_FAILOVER: Final = "transfer-failover"


# --- events (besides the legs' own CallUpdates) -----------------------------------------------
@dataclass(frozen=True, slots=True)
class Start:
    """A new INVITE passed the UA's checks: admit, route and decide the media."""


@dataclass(frozen=True, slots=True)
class TimerFired:
    """The call's timer ``name`` fired (armed by an :class:`ArmTimer`)."""

    name: str


@dataclass(frozen=True, slots=True)
class Then:
    """The step a call takes once its relay ports are bound: ``place`` the routing
    ``outcome``, place the ``inbound`` call's edge leg, or ``answer`` with ``leg``'s ``sdp``
    (the outbound bypass fallback, :func:`.media_plan.fallback_on_answer`)."""

    step: Literal["place", "inbound", "answer"]
    outcome: Outcome | None = None
    leg: Call | None = None
    sdp: bytes | None = None


@dataclass(frozen=True, slots=True)
class RelayBound:
    """The relay call asked for by :class:`BindRelay` is ready: anchor, then ``then``."""

    relay_call: RelayCall
    then: Then


@dataclass(frozen=True, slots=True)
class RelayFailed:
    """No relay ports could be had (the engine's own words)."""

    error: str


# --- decisions ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PlaceLeg:
    """Send a new INVITE (RFC 3261 §13.2.1) from the ``side`` UA to ``target`` (From, To,
    the SDP offer, the next hop, extra headers); its events come to the call. The new leg is
    the call's callee leg (``role`` ``b``; to ``gateway`` with the numbers as sent, for the
    record) or a performed transfer's target leg (``role`` ``transfer``)."""

    side: Literal["edge", "gateway"]
    target: Uri
    from_: str | Address
    to: str | Address
    sdp: bytes | None
    destination: Destination
    headers: Sequence[tuple[str, object]]
    role: Literal["b", "transfer"] = "b"
    gateway: GatewayState | None = None
    callee: str = ""
    caller: str = ""


@dataclass(frozen=True, slots=True)
class ArmTimer:
    """Fire :class:`TimerFired` ``name`` at ``at`` (the clock handlers get as ``now``);
    replaces a timer of that name."""

    name: str
    at: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Stop timer ``name`` if armed."""

    name: str


@dataclass(frozen=True, slots=True)
class BindRelay:
    """Allocate a relay call (ports) for this call; :class:`RelayBound` or
    :class:`RelayFailed` follows."""

    then: Then


@dataclass(frozen=True, slots=True)
class ReleaseRelay:
    """Give ``relay_call``'s ports back to the pool."""

    relay_call: RelayCall


@dataclass(frozen=True, slots=True)
class SwapLeg:
    """A transfer's decision: ``new`` takes ``old``'s place in the call (and its record)."""

    old: Call
    new: Call


Action = PlaceLeg | ArmTimer | CancelTimer | BindRelay | ReleaseRelay
Actions = tuple[Action, ...]

#: No decision.
NONE: Final[Actions] = ()


class Adapter(Protocol):
    """What carries out a call's decisions (:mod:`.adapter` on the event loop; a test's
    recorder on a fake clock). It feeds back :meth:`Bridge.timer_fired`,
    :meth:`Bridge.relay_bound`, :meth:`Bridge.relay_failed` and, for a failing task of its
    own, :meth:`Bridge.abort`."""

    def execute(self, bridge: Bridge, actions: Actions) -> None:
        """Carry out ``actions`` in order."""

    def cancel_timers(self, bridge: Bridge) -> None:
        """Stop every timer of ``bridge`` (it ended)."""

    def release_relay(self, bridge: Bridge, relay_call: RelayCall) -> None:
        """Give ``relay_call``'s ports back."""

    def release_leg(self, call: Call) -> None:
        """Let an ended leg go once its end is handled (break its handler reference)."""
