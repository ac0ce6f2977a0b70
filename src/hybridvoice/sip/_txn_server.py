"""Server transactions (RFC 3261 §17.2): the INVITE server transaction (§17.2.1, with the
RFC 6026 §7.1 "Accepted" state and Timer L, and the 200 ms 100 Trying of §17.2.1) and the
non-INVITE server transaction (§17.2.2), each as one transition table at the bottom.

Like the client side, a transaction holds state and acts through its ``TransactionLayer``
(imported for type checking only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from .errors import LocalProtocolError
from .message import Request, Response, make_response

if TYPE_CHECKING:
    from .transaction import TransactionLayer

__all__ = ["ServerInput", "ServerState", "ServerTransaction"]

_log = logging.getLogger("hybridvoice.sip.transaction")


class ServerState(StrEnum):
    """States of Figures 7 and 8 of RFC 3261 and RFC 6026 Figure 7, and ``INIT``."""

    INIT = "Init"  # created, the request not processed yet
    TRYING = "Trying"  # non-INVITE only
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"  # INVITE only
    ACCEPTED = "Accepted"  # INVITE only, RFC 6026
    TERMINATED = "Terminated"


class ServerInput(StrEnum):
    """What drives a server transaction: the network, the TU, the timers, the transport."""

    REQUEST = "request"  # the request, then its retransmissions
    ACK = "ACK"  # an ACK matching an INVITE server transaction (§17.2.3)
    TU_1XX = "TU 1xx"
    TU_2XX = "TU 2xx"
    TU_3XX_6XX = "TU 300-699"
    TIMER_TRYING = "Timer 100 Trying"  # §17.2.1: 100 Trying if the TU is silent 200 ms
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_J = "Timer J"
    TIMER_L = "Timer L"
    TRANSPORT_ERROR = "transport error"


#: Inputs that come from our own code (the TU): illegal ones raise ``LocalProtocolError``.
_OURS: Final = frozenset({ServerInput.TU_1XX, ServerInput.TU_2XX, ServerInput.TU_3XX_6XX})


def tu_response_input(status: int) -> ServerInput:
    """The table input for a response the TU sends."""
    if status < 200:
        return ServerInput.TU_1XX
    if status < 300:
        return ServerInput.TU_2XX
    return ServerInput.TU_3XX_6XX


class ServerTransaction:
    """One server transaction (§17.2), created by the layer for a new request and given to
    the TU as ``RequestReceived``. Read its attributes, never set them (except
    ``tu_data``, a free slot for the TU).

    ``cancels`` is set on a CANCEL's transaction: the INVITE server transaction it matches
    (§9.2). ``last_response`` is the response re-sent on request retransmissions.
    """

    __slots__ = (
        "_interval",
        "_keys",
        "_layer",
        "_table",
        "_timers",
        "cancels",
        "context",
        "is_invite",
        "last_response",
        "method",
        "reliable",
        "request",
        "rfc2543",
        "state",
        "tu_data",
    )

    def __init__(
        self,
        layer: TransactionLayer,
        request: Request,
        key: tuple[object, ...],
        *,
        rfc2543: bool,
        reliable: bool,
        context: object,
    ) -> None:
        self._layer = layer
        self.request = request
        self.method = request.method
        #: True when matched by the RFC 2543 rules (no magic cookie, §17.2.3)
        self.rfc2543 = rfc2543
        self.reliable = reliable
        self.context = context
        self.is_invite = request.method == "INVITE"
        self.state = ServerState.INIT
        self.cancels: ServerTransaction | None = None
        self.last_response: Response | None = None
        self.tu_data: object = None
        self._keys: list[tuple[object, ...]] = [key]
        self._table = _INVITE_SERVER if self.is_invite else _NON_INVITE_SERVER
        self._timers: dict[ServerInput, list[Any]] = {}
        self._interval = 0.0

    @property
    def key(self) -> tuple[object, ...]:
        """The key of §17.2.3 the request is matched by."""
        return self._keys[0]

    def __repr__(self) -> str:
        return f"<ServerTransaction {self.method} {self.key[0]} {self.state}>"

    # the single entry point of the state machine
    def _handle(
        self,
        inp: ServerInput,
        now: float,
        msg: Request | Response | None = None,
        context: object = None,
    ) -> None:
        try:  # a hit is the rule: [] on the read-only table costs less than .get
            self.state, handler = self._table[self.state, inp]
        except KeyError:
            if inp in _OURS:
                text = f"{inp} is not allowed in state {self.state} of {self}"
                raise LocalProtocolError(text) from None
            _log.debug("%r: %s ignored in state %s", self, inp, self.state)
            return
        handler(self, now, msg, context)

    # helpers used by the handlers
    def _timer(self, inp: ServerInput, now: float, delay: float) -> None:
        """Start timer ``inp``; a zero delay (reliable transports) fires it at once."""
        if delay <= 0.0:
            self._handle(inp, now)
        else:
            self._layer._set_timer(self, inp, now + delay)

    def _send(self, response: Response) -> None:
        self.last_response = response
        self._layer._emit_send_response(self, response)


# --- handlers: (transaction, now, message, context); the table sets the new state first --

Handler = Callable[[ServerTransaction, float, Request | Response | None, object], None]


def _absorb(tx: ServerTransaction, now: float, msg: Request | Response | None, ctx: object) -> None:
    """A retransmission the RFC says to absorb."""


def _resend_last(
    tx: ServerTransaction, now: float, msg: Request | Response | None, ctx: object
) -> None:
    """A request retransmission: re-send the last response (§17.2.1, §17.2.2)."""
    if tx.last_response is not None:
        tx._layer._emit_send_response(tx, tx.last_response)


def _send(tx: ServerTransaction, now: float, msg: Request | Response | None, ctx: object) -> None:
    assert isinstance(msg, Response)
    tx._send(msg)


def _terminate(
    tx: ServerTransaction, now: float, msg: Request | Response | None, ctx: object
) -> None:
    tx._layer._finish(tx)


def _transport_failed(
    tx: ServerTransaction, now: float, msg: Request | Response | None, ctx: object
) -> None:
    """§17.2.4: the response could not be sent (after §18.2.2 failover): inform the TU; the
    input's context is the transport's words for it (``TransactionLayer.transport_error``)."""
    tx._layer._finish(tx, "transport", cause=ctx if isinstance(ctx, str) else None)


# INVITE server transaction (§17.2.1, RFC 6026 §7.1)


def _invite_start(
    tx: ServerTransaction, now: float, msg: Request | Response | None, ctx: object
) -> None:
    """Enter Proceeding; 100 Trying now, after ``trying_delay``, or never (None)."""
    delay = tx._layer.config.trying_delay
    if delay is not None:
        tx._timer(ServerInput.TIMER_TRYING, now, delay)


def _invite_trying(
    tx: ServerTransaction, now: float, msg: Request | Response | None, ctx: object
) -> None:
    """The TU has not answered: the transaction sends 100 Trying itself (§17.2.1)."""
    tx._layer._cancel_timer(tx, ServerInput.TIMER_TRYING)
    if tx.last_response is None:
        tx._send(make_response(tx.request, 100))


def _invite_retransmission(
    tx: ServerTransaction, now: float, msg: Request | Response | None, ctx: object
) -> None:
    """INVITE retransmission in Proceeding: re-send the last provisional response, or the
    100 Trying now if the TU has not answered yet (and automatic 100 is enabled)."""
    if tx.last_response is not None:
        tx._layer._emit_send_response(tx, tx.last_response)
    elif tx._layer.config.trying_delay is not None:
        _invite_trying(tx, now, msg, ctx)


def _invite_provisional(
    tx: ServerTransaction, now: float, msg: Request | Response | None, ctx: object
) -> None:
    assert isinstance(msg, Response)
    tx._layer._cancel_timer(tx, ServerInput.TIMER_TRYING)
    tx._send(msg)


def _invite_accepted(
    tx: ServerTransaction, now: float, msg: Request | Response | None, ctx: object
) -> None:
    """2xx from the TU: send it, enter Accepted for Timer L = 64*T1 (RFC 6026 §7.1); the TU
    retransmits the 2xx through this transaction until the ACK (§13.3.1.4)."""
    assert isinstance(msg, Response)
    tx._layer._cancel_timer(tx, ServerInput.TIMER_TRYING)
    tx._send(msg)
    tx._timer(ServerInput.TIMER_L, now, tx._layer.config.timer_l)


def _invite_completed(
    tx: ServerTransaction, now: float, msg: Request | Response | None, ctx: object
) -> None:
    """300-699 from the TU: send it; Timer G = T1 (unreliable) and Timer H = 64*T1."""
    assert isinstance(msg, Response)
    cfg = tx._layer.config
    tx._layer._cancel_timer(tx, ServerInput.TIMER_TRYING)
    tx._send(msg)
    if not tx.reliable:
        tx._interval = cfg.t1
        tx._layer._set_timer(tx, ServerInput.TIMER_G, now + cfg.t1)
    tx._layer._set_timer(tx, ServerInput.TIMER_H, now + cfg.timer_h)


def _invite_retransmit_final(
    tx: ServerTransaction, now: float, msg: Request | Response | None, ctx: object
) -> None:
    """Timer G: re-send the final response, interval MIN(2*interval, T2)."""
    _resend_last(tx, now, msg, ctx)
    tx._interval = min(2.0 * tx._interval, tx._layer.config.t2)
    tx._layer._set_timer(tx, ServerInput.TIMER_G, now + tx._interval)


def _invite_timeout(
    tx: ServerTransaction, now: float, msg: Request | Response | None, ctx: object
) -> None:
    """Timer H: no ACK came (§17.2.1); inform the TU."""
    tx._layer._finish(tx, "timeout", "H")


def _invite_confirmed(
    tx: ServerTransaction, now: float, msg: Request | Response | None, ctx: object
) -> None:
    """ACK in Completed: stop G and H; Timer I = T4 (unreliable) or 0 absorbs ACKs."""
    tx._layer._cancel_timer(tx, ServerInput.TIMER_G)
    tx._layer._cancel_timer(tx, ServerInput.TIMER_H)
    tx._timer(ServerInput.TIMER_I, now, 0.0 if tx.reliable else tx._layer.config.t4)


def _invite_ack_to_tu(
    tx: ServerTransaction, now: float, msg: Request | Response | None, ctx: object
) -> None:
    """ACK in Accepted: it acknowledges the 2xx, so it is the TU's (RFC 6026 §7.1)."""
    assert isinstance(msg, Request)
    tx._layer._emit_ack(msg, ctx)


# non-INVITE server transaction (§17.2.2)


def _non_invite_completed(
    tx: ServerTransaction, now: float, msg: Request | Response | None, ctx: object
) -> None:
    """Final response from the TU: send; Timer J = 64*T1 (unreliable) or 0."""
    assert isinstance(msg, Response)
    tx._send(msg)
    tx._timer(ServerInput.TIMER_J, now, 0.0 if tx.reliable else tx._layer.config.timer_j)


# --- the two transition tables: (state, input) -> (new state, handler) ----------------

_S = ServerState
_I = ServerInput

Table = Mapping[tuple[ServerState, ServerInput], tuple[ServerState, Handler]]

#: INVITE server transaction, RFC 3261 Figure 7 as amended by RFC 6026 Figure 7.
_INVITE_SERVER: Final[Table] = MappingProxyType(
    {
        (_S.INIT, _I.REQUEST): (_S.PROCEEDING, _invite_start),
        (_S.PROCEEDING, _I.TIMER_TRYING): (_S.PROCEEDING, _invite_trying),
        (_S.PROCEEDING, _I.REQUEST): (_S.PROCEEDING, _invite_retransmission),
        (_S.PROCEEDING, _I.TU_1XX): (_S.PROCEEDING, _invite_provisional),
        (_S.PROCEEDING, _I.TU_2XX): (_S.ACCEPTED, _invite_accepted),
        (_S.PROCEEDING, _I.TU_3XX_6XX): (_S.COMPLETED, _invite_completed),
        (_S.PROCEEDING, _I.TRANSPORT_ERROR): (_S.TERMINATED, _transport_failed),
        (_S.COMPLETED, _I.REQUEST): (_S.COMPLETED, _resend_last),
        (_S.COMPLETED, _I.TIMER_G): (_S.COMPLETED, _invite_retransmit_final),
        (_S.COMPLETED, _I.TIMER_H): (_S.TERMINATED, _invite_timeout),
        (_S.COMPLETED, _I.ACK): (_S.CONFIRMED, _invite_confirmed),
        (_S.COMPLETED, _I.TRANSPORT_ERROR): (_S.TERMINATED, _transport_failed),
        (_S.CONFIRMED, _I.REQUEST): (_S.CONFIRMED, _absorb),
        (_S.CONFIRMED, _I.ACK): (_S.CONFIRMED, _absorb),
        (_S.CONFIRMED, _I.TIMER_I): (_S.TERMINATED, _terminate),
        (_S.ACCEPTED, _I.REQUEST): (_S.ACCEPTED, _absorb),
        (_S.ACCEPTED, _I.ACK): (_S.ACCEPTED, _invite_ack_to_tu),
        (_S.ACCEPTED, _I.TU_2XX): (_S.ACCEPTED, _send),  # 2xx retransmissions by the TU
        (_S.ACCEPTED, _I.TIMER_L): (_S.TERMINATED, _terminate),
        (_S.ACCEPTED, _I.TRANSPORT_ERROR): (_S.TERMINATED, _transport_failed),
    }
)

#: non-INVITE server transaction, RFC 3261 Figure 8.
_NON_INVITE_SERVER: Final[Table] = MappingProxyType(
    {
        (_S.INIT, _I.REQUEST): (_S.TRYING, _absorb),
        (_S.TRYING, _I.REQUEST): (_S.TRYING, _absorb),
        (_S.TRYING, _I.TU_1XX): (_S.PROCEEDING, _send),
        (_S.TRYING, _I.TU_2XX): (_S.COMPLETED, _non_invite_completed),
        (_S.TRYING, _I.TU_3XX_6XX): (_S.COMPLETED, _non_invite_completed),
        (_S.PROCEEDING, _I.REQUEST): (_S.PROCEEDING, _resend_last),
        (_S.PROCEEDING, _I.TU_1XX): (_S.PROCEEDING, _send),
        (_S.PROCEEDING, _I.TU_2XX): (_S.COMPLETED, _non_invite_completed),
        (_S.PROCEEDING, _I.TU_3XX_6XX): (_S.COMPLETED, _non_invite_completed),
        (_S.PROCEEDING, _I.TRANSPORT_ERROR): (_S.TERMINATED, _transport_failed),
        (_S.COMPLETED, _I.REQUEST): (_S.COMPLETED, _resend_last),
        (_S.COMPLETED, _I.TIMER_J): (_S.TERMINATED, _terminate),
        (_S.COMPLETED, _I.TRANSPORT_ERROR): (_S.TERMINATED, _transport_failed),
    }
)
