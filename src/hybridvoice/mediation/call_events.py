"""The mediation call's phases, events and decisions (the vocabulary of :mod:`.call_state`).

RFC 7092 §3.1 (a B2BUA's two dialogs joined by call-control events), RFC 3261 §13 (an INVITE
session's set-up, early and confirmed phases), §14.1 (the 491 retry timer), RFC 3264 §8.

Frozen, slotted dataclasses: the events a call takes besides its legs' own
:data:`~hybridvoice.net.call.CallUpdate` values (a leg's refusal of a decision,
:class:`LegOpFailed`, included), and the decisions (:data:`Actions`) its handlers return for
:mod:`.adapter` to carry out: a new leg, every operation on a leg (:data:`LegAction`: ring,
answer, refuse, hang up, offer, answer or refuse an offer, answer or NOTIFY a REFER, pass a
REFER on), the release of an ended leg, a record write, timers and relay ports. A decision
names the leg it is for; a handler never calls one.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, Protocol

if TYPE_CHECKING:
    from hybridvoice.net.call import Call
    from hybridvoice.net.relay import RelayCall
    from hybridvoice.net.transport import Destination
    from hybridvoice.sip.headers import Address
    from hybridvoice.sip.refer import Replaces
    from hybridvoice.sip.uri import Uri

    from .b2bua import Bridge
    from .routing import Outcome
    from .trunks import GatewayState

__all__ = [
    "FAILOVER",
    "FROM_A",
    "FROM_B",
    "FROM_CALL",
    "NONE",
    "REOFFER",
    "SOURCES",
    "TRANSFER_FAILOVER",
    "Action",
    "Actions",
    "Adapter",
    "Answer",
    "AnswerOffer",
    "ArmTimer",
    "BindRelay",
    "CancelTimer",
    "GatewayDown",
    "Hangup",
    "LegAction",
    "LegOpFailed",
    "Notify",
    "PassRefer",
    "Phase",
    "PlaceLeg",
    "RecordOp",
    "ReferReply",
    "RefuseOffer",
    "Reject",
    "RelayBound",
    "RelayFailed",
    "ReleaseLeg",
    "ReleaseRelay",
    "Ring",
    "SendOffer",
    "Source",
    "Start",
    "SwapLeg",
    "Then",
    "TimerFired",
    "WriteRecord",
]


class Phase(enum.Enum):
    """Where a mediation call is (see the module docstring). Hashed by identity in C, as
    ``sip._tables.TableKey`` does: it keys :data:`.call_state.TABLE`, looked up on every event,
    and ``Enum.__hash__`` is Python code."""

    __hash__ = object.__hash__

    SETUP = "setup"
    EARLY = "early"
    CONNECTED = "connected"
    ENDED = "ended"


#: Where an event comes from: the caller leg ``a``, the callee leg ``b``, or the ``call``
#: itself (its start, its timers, the relay's answer, a leg's refusal of a decision).
#: :meth:`~.b2bua.Bridge.dispatch` sorts each event once; the table is keyed by it. (Plain
#: strings: an enum member's hash is Python code, and the key is hashed on every event.)
Source = Literal["a", "b", "call"]
FROM_A: Final[Source] = "a"
FROM_B: Final[Source] = "b"
FROM_CALL: Final[Source] = "call"
SOURCES: Final[tuple[Source, ...]] = (FROM_A, FROM_B, FROM_CALL)


#: The timers of a call, by name: the fast failover of the pending gateway attempt (routing,
#: 10 s by default), our re-INVITE to the relay tried again after a 491 (RFC 3261 §14.1),
#: and the fast failover of a performed transfer's gateway attempt.
FAILOVER: Final = "failover"
REOFFER: Final = "reoffer"
TRANSFER_FAILOVER: Final = "transfer-failover"


# Events and decisions are slotted dataclasses, read-only by contract but not frozen (as the UA's
# and the proxy's actions): several are built for every call, and a frozen dataclass's __init__
# costs about 3.5 times as much (object.__setattr__ per field).


# --- events (besides the legs' own CallUpdates) -----------------------------------------------
@dataclass(slots=True)
class Start:
    """A new INVITE passed the UA's checks: admit, route and decide the media."""


@dataclass(slots=True)
class TimerFired:
    """The call's timer ``name`` fired (armed by an :class:`ArmTimer`)."""

    name: str


@dataclass(slots=True)
class GatewayDown:
    """Gateway ``name`` was marked down (its OPTIONS pings, ``reason``): an attempt pending on
    it will get no final response and goes to the next gateway."""

    name: str
    reason: str


@dataclass(slots=True)
class Then:
    """The step a call takes once its relay ports are bound: ``place`` the routing
    ``outcome``, place the ``inbound`` call's edge leg, or ``answer`` with ``leg``'s ``sdp``
    (the outbound bypass fallback, :func:`.media_plan.fallback_on_answer`)."""

    step: Literal["place", "inbound", "answer"]
    outcome: Outcome | None = None
    leg: Call | None = None
    sdp: bytes | None = None


@dataclass(slots=True)
class RelayBound:
    """The relay call asked for by :class:`BindRelay` is ready: anchor, then ``then``."""

    relay_call: RelayCall
    then: Then


@dataclass(slots=True)
class RelayFailed:
    """No relay ports could be had (the engine's own words)."""

    error: str


# --- decisions ----------------------------------------------------------------------------------
@dataclass(slots=True)
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


@dataclass(slots=True)
class ArmTimer:
    """Fire :class:`TimerFired` ``name`` at ``at`` (the clock handlers get as ``now``);
    replaces a timer of that name."""

    name: str
    at: float


@dataclass(slots=True)
class CancelTimer:
    """Stop timer ``name`` if armed."""

    name: str


@dataclass(slots=True)
class BindRelay:
    """Allocate a relay call (ports) for this call; :class:`RelayBound` or
    :class:`RelayFailed` follows."""

    then: Then


@dataclass(slots=True)
class ReleaseRelay:
    """Give ``relay_call``'s ports back to the pool."""

    relay_call: RelayCall


@dataclass(slots=True)
class LegOpFailed:
    """The leg refused ``action`` (its session's state forbids it now: a race with the
    peer, RFC 3261 §14.1, §14.2): ``error`` in the session's words."""

    action: LegAction
    error: str


@dataclass(slots=True)
class SwapLeg:
    """A transfer's decision: ``new`` takes ``old``'s place in the call (and its record)."""

    old: Call
    new: Call


# --- decisions on a leg (its UA core call, carried out by the adapter) ----------------------------
@dataclass(slots=True)
class Ring:
    """UAS: 180 Ringing, or 183 with early-media ``sdp`` (RFC 3261 §13.3.1.1)."""

    leg: Call
    sdp: bytes | None
    status: int = 180


@dataclass(slots=True)
class Answer:
    """UAS: 200 with ``sdp`` (RFC 3261 §13.3.1.4)."""

    leg: Call
    sdp: bytes | None


@dataclass(slots=True)
class Reject:
    """UAS: a final failure ``status`` (RFC 3261 §13.3.1.3) with ``headers`` (Reason,
    Retry-After, Warning) or a reason phrase ``text``."""

    leg: Call
    status: int
    headers: Sequence[tuple[str, object]] = ()
    text: str | None = None


@dataclass(slots=True)
class Hangup:
    """End the leg in any state: CANCEL, 603 or BYE (RFC 3261 §15), ``headers`` on it."""

    leg: Call
    headers: Sequence[tuple[str, object]] = ()


@dataclass(slots=True)
class SendOffer:
    """A re-INVITE (``update``: an UPDATE, RFC 3311) offering ``sdp`` on ``leg``, ``why``:
    passing on ``origin``'s ``offer``; our own re-offer to the ``relay`` (RFC 3264 §8);
    moving a ``transfer``'s transferee to its target; the offer of an INVITE with
    ``replaces`` (``origin``). Refused at once, a :class:`LegOpFailed` follows."""

    leg: Call
    sdp: bytes | None
    update: bool = False
    origin: Call | None = None
    why: Literal["offer", "relay", "transfer", "replaces"] = "offer"


@dataclass(slots=True)
class AnswerOffer:
    """Answer the offer ``leg``'s peer made (RFC 3264 §6) with ``sdp``."""

    leg: Call
    sdp: bytes | None


@dataclass(slots=True)
class RefuseOffer:
    """Refuse the offer ``leg``'s peer made with ``status`` (491, 488; RFC 3261 §14.2)."""

    leg: Call
    status: int


@dataclass(slots=True)
class ReferReply:
    """Answer ``leg``'s REFER (RFC 3515 §2.4.2): 202 (and NOTIFY 100) or a refusal."""

    leg: Call
    status: int


@dataclass(slots=True)
class Notify:
    """A NOTIFY on ``leg``'s REFER subscription with the referenced call's ``status``
    (RFC 3515 §2.4.4, a ``message/sipfrag`` body)."""

    leg: Call
    status: int


@dataclass(slots=True)
class PassRefer:
    """Send a REFER on ``leg`` (RFC 3515 §2.4.1), passing on ``origin``'s; refused at once, a
    :class:`LegOpFailed` follows."""

    leg: Call
    refer_to: Address
    replaces: Replaces | None
    referred_by: Address | None
    subscription: bool
    origin: Call


@dataclass(slots=True)
class ReleaseLeg:
    """``leg`` ended and its end is handled: drop its handler (the leg -> call -> leg cycle)."""

    leg: Call


#: What a :class:`WriteRecord` does: the record store's method of that name.
RecordOp = Literal["start", "route", "attempt", "media", "ringing", "answered", "observed", "ended"]


@dataclass(slots=True)
class WriteRecord:
    """A change of the call record of ``call_id``: the store's ``op`` (``start``,
    ``route``, ``attempt``, ``media``, ``ringing``, ``answered``, ``ended``) with ``fields``."""

    op: RecordOp
    call_id: str
    fields: Mapping[str, object]


LegAction = (
    Ring | Answer | Reject | Hangup | SendOffer | AnswerOffer | RefuseOffer | ReferReply | Notify
    | PassRefer
)  # fmt: skip

Action = (
    PlaceLeg | ArmTimer | CancelTimer | BindRelay | ReleaseRelay | LegAction | ReleaseLeg
    | WriteRecord
)  # fmt: skip
Actions = tuple[Action, ...]

#: No decision.
NONE: Final[Actions] = ()


class Adapter(Protocol):
    """What carries out a call's decisions (:mod:`.adapter` on the event loop; a test's
    recorder on a fake clock). It feeds back :meth:`Bridge.timer_fired`,
    :meth:`Bridge.relay_bound`, :meth:`Bridge.relay_failed`, :meth:`Bridge.leg_op_failed`
    and, for a failing task of its own, :meth:`Bridge.abort`."""

    def execute(self, bridge: Bridge | None, actions: Actions) -> None:
        """Carry out ``actions`` in order (``bridge`` None: a refusal before any call)."""

    def cancel_timers(self, bridge: Bridge) -> None:
        """Stop every timer of ``bridge`` (it ended)."""

    def release_relay(self, bridge: Bridge, relay_call: RelayCall) -> None:
        """Give ``relay_call``'s ports back."""
