"""The mediation call as an explicit state machine: its phases, its events, its decisions and
the one table of transitions.

RFC 7092 §3.1 (a B2BUA: two dialogs joined by call-control events), RFC 3261 §13 (an INVITE
session's set-up, early and confirmed phases), §9 (CANCEL), §15 (BYE), RFC 3264 §8 (an offer
on one leg becomes an offer on the other), RFC 3326 (a Reason on the failures we decide).

As in h11's ``_state.py``, everything that moves a call lives here: :data:`TABLE` maps
``(phase, event type)`` to the handler (in :mod:`.call_flow`) that decides what happens. The
events are the legs' :data:`~hybridvoice.net.call.CallUpdate` values (the handler is told
which leg sent it: the caller ``a``, the callee ``b``, or a leg of a transfer), timer firings
(:class:`TimerFired`), the relay's answer (:class:`RelayBound`, :class:`RelayFailed`) and the
new call itself (:class:`Start`). Handlers return decisions (:data:`Actions`): what the call
needs from the world outside (arm or cancel a timer at an absolute ``now``-based time, bind
or release relay ports). :mod:`.adapter` carries them out on the event loop and feeds the
results back as events. The call's legs are driven through their UA core calls (ring,
answer, re-INVITE, BYE), which queue messages and never wait.

The phases: ``SETUP`` (admitted; routing, relay binding, a gateway attempt under way, no
18x yet), ``EARLY`` (the callee rang or sent early media), ``CONNECTED`` (answered),
``ENDED`` (everything the call held is given back; late events of its legs are still
answered, nothing new is started). A transfer (REFER, Replaces) is a sub-machine of its own
in :mod:`.transfer`: while a call has one, each leg event goes to it first
(:func:`.transfer.intercept`), and only what it leaves comes to this table.
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
from .call_events import Actions, Phase, RelayBound, RelayFailed, Start, TimerFired

if TYPE_CHECKING:
    from hybridvoice.net.call import Call

    from .b2bua import Bridge

__all__ = ["TABLE", "Handler", "handler_for"]

#: A transition: the call, the leg the event came from (None: not a leg's), the event, now.
Handler = Callable[["Bridge", "Call | None", Any, float], Actions]

_LIVE: Final = (Phase.SETUP, Phase.EARLY, Phase.CONNECTED)

#: Every transition: (phase, event type) -> handler. A pair not listed is ignored (a timer
#: or relay answer of a call that has moved on). Leg events are handled in every phase, the
#: ended one included: a leg's late end, or a 2xx that raced our CANCEL, still needs its BYE.
TABLE: Final[dict[tuple[Phase, type], Handler]] = {
    (Phase.SETUP, Start): flow.start,
    **{(phase, TimerFired): flow.timer for phase in _LIVE},
    **{(phase, RelayBound): flow.relay_bound for phase in _LIVE},
    (Phase.ENDED, RelayBound): flow.relay_unneeded,
    **{(phase, RelayFailed): flow.relay_failed for phase in Phase},
    **{
        (phase, kind): handler
        for phase in Phase
        for kind, handler in (
            (Ringing, flow.provisional),
            (EarlyMedia, flow.provisional),
            (Answered, flow.answered),
            (Offer, flow.offer),
            (OfferAnswered, flow.offer_answered),
            (OfferRejected, flow.offer_rejected),
            (Confirmed, flow.confirmed),
            (Disconnected, flow.disconnected),
        )
    },
}


def handler_for(phase: Phase, kind: type) -> Handler | None:
    """The transition for an event of type ``kind`` in ``phase`` (None: ignored)."""
    return TABLE.get((phase, kind))
