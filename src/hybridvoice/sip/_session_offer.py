"""Offer/answer inside an INVITE session (``session``): whose re-INVITE or UPDATE is in
progress, and the glare retry, as one machine with its table.

RFC 3261 §14.1 (one INVITE transaction each way at a time; a 491 glare is retried after a
random time: 2.1-4 s by the Call-ID's owner, 0-2 s by the other side, in 10 ms units), §14.2
(the peer's re-INVITE while ours is pending gets 491, while the peer's previous one is
unanswered 500 with Retry-After); RFC 3311 §5.1/§5.2 (UPDATE, the same rules for its offer);
RFC 6337 §3.1 (the glare cases). The session keeps the dialog and the transactions; this module
only records which request carries the offer and when to retry.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping
from typing import Final

from ._session_ack import Ticket
from ._tables import TableKey, frozen_table, step
from .message import Request

__all__ = ["GlareRetry", "OfferAnswer", "OfferPhase", "glare_delay"]


class OfferPhase(TableKey):
    IDLE = "idle"
    SENT = "our offer sent"  # our re-INVITE/UPDATE awaits its final response
    RECEIVED = "the peer's offer received"  # awaiting accept_offer / reject_offer
    GLARE = "glare: our retry waits"  # a 491 came back; the retry timer runs
    GLARE_RECEIVED = "glare, and the peer's offer received"


class _O(TableKey):
    SEND = "send an offer"
    FINAL = "final response to our offer"
    GLARE = "491 to our offer"
    RECEIVE = "the peer's offer"
    REPLIED = "the peer's offer answered"
    RETRY = "glare retry sent"
    RESET = "session over"


_P = OfferPhase
#: Every transition of a session's offer/answer exchange (§14, RFC 3311), and only these.
OFFER_TABLE: Final[Mapping[OfferPhase, Mapping[_O, OfferPhase]]] = frozen_table(
    {
        _P.IDLE: {_O.SEND: _P.SENT, _O.RECEIVE: _P.RECEIVED, _O.RESET: _P.IDLE},
        _P.SENT: {_O.FINAL: _P.IDLE, _O.GLARE: _P.GLARE, _O.RESET: _P.IDLE},
        _P.RECEIVED: {_O.REPLIED: _P.IDLE, _O.RESET: _P.IDLE},
        _P.GLARE: {_O.RETRY: _P.SENT, _O.RECEIVE: _P.GLARE_RECEIVED, _O.RESET: _P.IDLE},
        _P.GLARE_RECEIVED: {_O.REPLIED: _P.GLARE, _O.RESET: _P.IDLE},
    }
)


def glare_delay(owns_call_id: bool, rng: random.Random) -> float:
    """§14.1: 2.1-4 s for the Call-ID's owner (the caller), else 0-2 s, in 10 ms units."""
    if owns_call_id:
        return rng.randint(210, 400) / 100
    return rng.randint(0, 200) / 100


class GlareRetry:
    """Our offer refused with 491, to send again: method, SDP and whether it refreshes."""

    __slots__ = ("method", "refresh", "sdp")

    def __init__(self, method: str, sdp: bytes | None, refresh: bool) -> None:
        self.method, self.sdp, self.refresh = method, sdp, refresh


class OfferAnswer:
    """The offer in progress in either direction, and the glare retry (§14.1, RFC 3311)."""

    __slots__ = (
        "_ticket", "armed", "deadline", "incoming", "local_sdp", "outgoing", "phase",
        "refreshing", "retry",
    )  # fmt: skip

    def __init__(self, local_sdp: bytes | None, ticket: Ticket | None = None) -> None:
        self._ticket = ticket or itertools.count().__next__
        self.armed = 0  # when the deadline was set (``ticket``)
        self.phase = _P.IDLE
        self.outgoing: Request | None = None  # our re-INVITE/UPDATE in progress
        self.incoming: Request | None = None  # the peer's, awaiting accept/reject_offer
        self.refreshing = False  # ``outgoing`` is our own session refresh (RFC 4028)
        self.retry: GlareRetry | None = None
        self.deadline: float | None = None  # the glare retry
        self.local_sdp = local_sdp  # our latest SDP, offered again by a refresh re-INVITE

    def _move(self, trigger: _O) -> None:
        self.phase = step(OFFER_TABLE, self.phase, trigger, "offer/answer")

    @property
    def glare_pending(self) -> bool:
        return self.retry is not None

    # --- ours ---------------------------------------------------------------------------------
    def send(self, request: Request, sdp: bytes | None, refresh: bool) -> None:
        """Our re-INVITE or UPDATE ``request`` offers ``sdp`` (None: asks for an offer)."""
        self._move(_O.RETRY if self.phase is _P.GLARE else _O.SEND)
        self.outgoing, self.refreshing = request, refresh
        self.local_sdp = sdp or self.local_sdp

    def finish(self) -> bool:
        """Our request got its final response: whether it was a session refresh."""
        self._move(_O.FINAL)
        refresh, self.refreshing, self.outgoing = self.refreshing, False, None
        return refresh

    def glare(self, request: Request, refresh: bool, due: float) -> None:
        """A 491: send the same offer again at ``due`` (§14.1)."""
        self._move(_O.GLARE)
        self.outgoing, self.refreshing = None, False
        self.retry = GlareRetry(request.method, request.body or None, refresh)
        self.deadline, self.armed = due, self._ticket()

    def postpone(self, due: float) -> None:
        """The glare timer fired while the dialog is busy: try again at ``due``."""
        assert self.retry is not None, "the timer and the retry go together"
        self.deadline, self.armed = due, self._ticket()

    def take_retry(self) -> GlareRetry:
        """The glare timer fired and the dialog is idle: the offer to send again."""
        retry = self.retry
        assert retry is not None, "the timer and the retry go together"
        self.retry = self.deadline = None
        return retry

    # --- the peer's ---------------------------------------------------------------------------
    def receive(self, request: Request) -> None:
        """The peer's re-INVITE or UPDATE ``request`` awaits our answer."""
        self._move(_O.RECEIVE)
        self.incoming = request

    def reply(self) -> Request:
        """We answer (2xx), refuse or 487 the peer's offer: its request."""
        request = self.incoming
        assert request is not None
        self._move(_O.REPLIED)
        self.incoming = None
        return request

    def reset(self) -> None:
        """The session is over: nothing is in progress any more."""
        self._move(_O.RESET)
        self.outgoing = self.incoming = self.retry = self.deadline = None
        self.refreshing = False
