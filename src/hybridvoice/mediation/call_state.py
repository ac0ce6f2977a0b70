"""The mediation call as an explicit state machine: its phases, its events, its decisions and
the one table of transitions.

RFC 7092 §3.1 (a B2BUA: two dialogs joined by call-control events), RFC 3261 §13 (an INVITE
session's set-up, early and confirmed phases), §9 (CANCEL), §15 (BYE), RFC 3264 §8 (an offer
on one leg becomes an offer on the other), RFC 3326 (a Reason on the failures we decide).

As in h11's ``_state.py``, everything that moves a call lives here: :data:`TABLE` maps
``(phase, event type, source)`` to the handler (in :mod:`.call_flow`) that decides what
happens. The events are the legs' :data:`~hybridvoice.net.call.CallUpdate` values, sorted once
by :meth:`~.b2bua.Bridge.dispatch` into those of the caller leg (``"a"``, :data:`Source`) and of the
callee leg (``"b"``), and the call's own (``"call"``): the new call
(:class:`Start`), timer firings (:class:`TimerFired`), the relay's answer
(:class:`RelayBound`, :class:`RelayFailed`) and a leg's refusal of a decision
(:class:`LegOpFailed`). Handlers return, or queue on the call, decisions only: what the call
needs from the world outside, the legs included (place a leg; ring, answer, refuse or hang up
one; pass an offer, its answer or refusal; answer or NOTIFY a REFER; arm or cancel a timer at
an absolute ``now``-based time; bind or release relay ports; write the call record). Nothing
here or in :mod:`.call_flow` calls a leg: :mod:`.adapter` carries the decisions out on the
event loop and feeds the results back as events.

The phases: ``SETUP`` (admitted; routing, relay binding, a gateway attempt under way, no
18x yet), ``EARLY`` (the callee rang or sent early media), ``CONNECTED`` (answered),
``ENDED`` (everything the call held is given back; late events of its legs are still
answered, nothing new is started). A transfer (REFER, Replaces) is a sub-machine of its own
in :mod:`.transfer`: while a call has one, each leg event goes to it first
(:func:`.transfer.intercept`), and only what it leaves comes to this table. A leg that is
neither ``a`` nor ``b`` (a gateway attempt given up, a transfer's leg) has no transitions here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from hybridvoice.sip.session import (
    Answered,
    Confirmed,
    Disconnected,
    EarlyMedia,
    Offer,
    OfferAnswered,
    OfferRejected,
    Ringing,
)

from . import call_flow as flow
from .call_events import (
    FROM_A,
    FROM_B,
    FROM_CALL,
    Actions,
    GatewayDown,
    LegOpFailed,
    Phase,
    RelayBound,
    RelayFailed,
    Source,
    Start,
    TimerFired,
)

if TYPE_CHECKING:
    from .b2bua import Bridge

__all__ = ["TABLE", "Handler", "handler_for"]

#: A transition: the call, the event, now (the leg it came from is ``bridge.a`` or
#: ``bridge.b`` as the key's :class:`Source` says).
Handler = Callable[["Bridge", Any, float], Actions]

A, B, CALL = FROM_A, FROM_B, FROM_CALL

_LIVE: Final = (Phase.SETUP, Phase.EARLY, Phase.CONNECTED)

#: Every transition: (phase, event type, source) -> handler. A key not listed is ignored (a
#: timer or relay answer of a call that has moved on, a 180 from the caller). Leg events are
#: handled in every phase, the ended one included: a leg's late end, or a 2xx that raced our
#: CANCEL, still needs its BYE.
TABLE: Final[dict[tuple[Phase, type, Source], Handler]] = {
    (Phase.SETUP, Start, CALL): flow.start,
    **{(phase, TimerFired, CALL): flow.timer for phase in _LIVE},
    (Phase.SETUP, GatewayDown, CALL): flow.gateway_down,
    (Phase.EARLY, GatewayDown, CALL): flow.gateway_down,
    **{(phase, RelayBound, CALL): flow.relay_bound for phase in _LIVE},
    (Phase.ENDED, RelayBound, CALL): flow.relay_unneeded,
    **{(phase, RelayFailed, CALL): flow.relay_failed for phase in Phase},
    **{(phase, LegOpFailed, CALL): flow.leg_op_failed for phase in Phase},
    **{
        (phase, kind, source): handler
        for phase in Phase
        for kind, source, handler in (
            (Ringing, B, flow.provisional),
            (EarlyMedia, B, flow.provisional),
            (Answered, B, flow.answered),
            (Offer, A, flow.offer_from_a),
            (Offer, B, flow.offer_from_b),
            (OfferAnswered, A, flow.offer_answered_by_a),
            (OfferAnswered, B, flow.offer_answered_by_b),
            (OfferRejected, A, flow.offer_rejected_by_a),
            (OfferRejected, B, flow.offer_rejected_by_b),
            (Confirmed, A, flow.confirmed),
            (Disconnected, A, flow.a_ended),
            (Disconnected, B, flow.b_ended),
        )
    },
}


def handler_for(phase: Phase, kind: type, source: Source) -> Handler | None:
    """The transition for an event of type ``kind`` from ``source`` in ``phase`` (None:
    ignored)."""
    return TABLE.get((phase, kind, source))
