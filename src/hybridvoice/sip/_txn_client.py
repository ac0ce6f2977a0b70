"""Client transactions (RFC 3261 §17.1): the INVITE client transaction (§17.1.1, with the
RFC 6026 §7.2 "Accepted" state and Timer M) and the non-INVITE client transaction
(§17.1.2), each as one transition table at the bottom of this module.

A transaction only holds state. It acts through its ``TransactionLayer`` (events, timers,
the transaction table), which is why the layer is imported for type checking only: the
runtime import chain is one way, ``transaction`` -> ``_txn_client``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from .errors import LocalProtocolError
from .message import Request, Response, make_ack

if TYPE_CHECKING:
    from .transaction import TransactionLayer

__all__ = ["ClientInput", "ClientState", "ClientTransaction"]

_log = logging.getLogger("hybridvoice.sip.transaction")


class ClientState(StrEnum):
    """States of Figures 5 and 6 of RFC 3261, RFC 6026 Figure 5, and ``INIT``."""

    #: Created, request not sent yet. A CANCEL waits here until its INVITE has received a
    #: provisional response (§9.1: "the client MUST wait for the arrival of a provisional
    #: response before sending the request").
    INIT = "Init"
    CALLING = "Calling"  # INVITE only
    TRYING = "Trying"  # non-INVITE only
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    ACCEPTED = "Accepted"  # INVITE only, RFC 6026
    TERMINATED = "Terminated"


class ClientInput(StrEnum):
    """What drives a client transaction: the TU, the network, the timers, the transport."""

    SEND = "send"  # ours: send the request (immediately, or for a held CANCEL, later)
    ABANDON = "abandon"  # ours: a held CANCEL whose INVITE ended first is dropped unsent
    R1XX = "1xx"
    R2XX = "2xx"
    R3XX_6XX = "300-699"
    TIMER_A = "Timer A"
    TIMER_B = "Timer B"
    TIMER_D = "Timer D"
    TIMER_E = "Timer E"
    TIMER_F = "Timer F"
    TIMER_K = "Timer K"
    TIMER_M = "Timer M"
    TRANSPORT_ERROR = "transport error"


#: Inputs that come from our own code: illegal ones raise ``LocalProtocolError``.
_OURS: Final = frozenset({ClientInput.SEND, ClientInput.ABANDON})


def response_input(status: int) -> ClientInput:
    """The table input for a received status code."""
    if status < 200:
        return ClientInput.R1XX
    if status < 300:
        return ClientInput.R2XX
    return ClientInput.R3XX_6XX


class ClientTransaction:
    """One client transaction (§17.1). Created by ``TransactionLayer.send_request`` or
    ``TransactionLayer.cancel``; read its attributes, never set them (except ``tu_data``).

    ``cancel`` is the CANCEL transaction of an INVITE (§9.1), ``cancels`` the INVITE a
    CANCEL transaction cancels. ``tu_data`` is a free slot for the TU.
    """

    __slots__ = (
        "_ack",
        "_interval",
        "_layer",
        "_table",
        "_timers",
        "branch",
        "cancel",
        "cancels",
        "context",
        "is_invite",
        "key",
        "last_response",
        "method",
        "reliable",
        "request",
        "state",
        "tu_data",
    )

    def __init__(
        self,
        layer: TransactionLayer,
        request: Request,
        branch: str,
        *,
        reliable: bool,
        context: object,
    ) -> None:
        self._layer = layer
        self.request = request
        self.method = request.method
        self.branch = branch
        #: the client transaction key of §17.1.3: top Via branch and CSeq method
        self.key = (branch, request.method)
        self.reliable = reliable
        self.context = context
        self.is_invite = request.method == "INVITE"
        self.state = ClientState.INIT
        self.last_response: Response | None = None
        self.cancel: ClientTransaction | None = None
        self.cancels: ClientTransaction | None = None
        self.tu_data: object = None
        self._table = _INVITE_CLIENT if self.is_invite else _NON_INVITE_CLIENT
        self._timers: dict[ClientInput, list[Any]] = {}
        self._interval = 0.0
        self._ack: Request | None = None

    def __repr__(self) -> str:
        return f"<ClientTransaction {self.method} {self.branch} {self.state}>"

    # the single entry point of the state machine
    def _handle(
        self,
        inp: ClientInput,
        now: float,
        msg: Response | None = None,
        cause: str | None = None,
    ) -> None:
        """Move by the table; ``cause``: the transport's words for a ``TRANSPORT_ERROR``."""
        try:  # a hit is the rule: [] on the read-only table costs less than .get
            self.state, handler = self._table[self.state, inp]
        except KeyError:
            if inp in _OURS:
                text = f"{inp} is not allowed in state {self.state} of {self}"
                raise LocalProtocolError(text) from None
            _log.debug("%r: %s ignored in state %s", self, inp, self.state)
            return
        handler(self, now, msg, cause)

    # helpers used by the handlers
    def _timer(self, inp: ClientInput, now: float, delay: float) -> None:
        """Start timer ``inp``; a zero delay (reliable transports) fires it at once."""
        if delay <= 0.0:
            self._handle(inp, now)
        else:
            self._layer._set_timer(self, inp, now + delay)

    def _send(self, request: Request) -> None:
        self._layer._emit_send_request(self, request)

    def _deliver(self, response: Response) -> None:
        self.last_response = response
        self._layer._emit_response_received(self, response)

    def _stop_retransmitting(self, now: float) -> None:
        layer = self._layer
        layer._cancel_timer(self, ClientInput.TIMER_A)
        layer._cancel_timer(self, ClientInput.TIMER_B)
        layer._cancel_timer(self, ClientInput.TIMER_E)
        layer._cancel_timer(self, ClientInput.TIMER_F)

    def _drop_held_cancel(self, now: float) -> None:
        cancel = self.cancel
        if cancel is not None and cancel.state is ClientState.INIT:
            cancel._handle(ClientInput.ABANDON, now)


# --- handlers: (transaction, now, response or None, transport cause or None); the table sets
# the new state first

Handler = Callable[[ClientTransaction, float, Response | None, str | None], None]


def _absorb(tx: ClientTransaction, now: float, msg: Response | None, cause: str | None) -> None:
    """A retransmission the RFC says to absorb."""


def _deliver(tx: ClientTransaction, now: float, msg: Response | None, cause: str | None) -> None:
    assert msg is not None
    tx._deliver(msg)


def _terminate(tx: ClientTransaction, now: float, msg: Response | None, cause: str | None) -> None:
    tx._drop_held_cancel(now)
    tx._layer._finish(tx)


def _timeout(tx: ClientTransaction, now: float, msg: Response | None, cause: str | None) -> None:
    """Timer B (§17.1.1.2) or F (§17.1.2.2): inform the TU, terminate."""
    tx._drop_held_cancel(now)
    tx._layer._finish(tx, "timeout", "B" if tx.is_invite else "F")


def _transport_failed(
    tx: ClientTransaction, now: float, msg: Response | None, cause: str | None
) -> None:
    """§17.1.1.2 / §17.1.2.2: a transport failure is reported to the TU as a timeout."""
    tx._drop_held_cancel(now)
    tx._layer._finish(tx, "transport", cause=cause)


# INVITE client transaction (§17.1.1, RFC 6026 §7.2)


def _invite_start(
    tx: ClientTransaction, now: float, msg: Response | None, cause: str | None
) -> None:
    """Enter Calling: send the INVITE, Timer A = T1 on unreliable transports, Timer B."""
    cfg = tx._layer.config
    tx._send(tx.request)
    if not tx.reliable:
        tx._interval = cfg.t1
        tx._layer._set_timer(tx, ClientInput.TIMER_A, now + cfg.t1)
    tx._layer._set_timer(tx, ClientInput.TIMER_B, now + cfg.timer_b)


def _invite_retransmit(
    tx: ClientTransaction, now: float, msg: Response | None, cause: str | None
) -> None:
    """Timer A fired: retransmit and double the interval (no cap, §17.1.1.2)."""
    tx._send(tx.request)
    tx._interval *= 2.0
    tx._layer._set_timer(tx, ClientInput.TIMER_A, now + tx._interval)


def _invite_provisional(
    tx: ClientTransaction, now: float, msg: Response | None, cause: str | None
) -> None:
    """1xx: stop retransmitting, pass it up; a held CANCEL may now be sent (§9.1)."""
    assert msg is not None
    tx._stop_retransmitting(now)
    tx._deliver(msg)
    cancel = tx.cancel
    if cancel is not None and cancel.state is ClientState.INIT:
        cancel._handle(ClientInput.SEND, now)


def _invite_accepted(
    tx: ClientTransaction, now: float, msg: Response | None, cause: str | None
) -> None:
    """2xx: to the TU, which sends the ACK itself; Accepted for Timer M (RFC 6026 §8.4)."""
    assert msg is not None
    tx._stop_retransmitting(now)
    tx._drop_held_cancel(now)
    tx._deliver(msg)
    tx._timer(ClientInput.TIMER_M, now, tx._layer.config.timer_m)


def _invite_completed(
    tx: ClientTransaction, now: float, msg: Response | None, cause: str | None
) -> None:
    """300-699: the transaction sends the ACK (§17.1.1.3), passes the response up and
    waits Timer D for retransmissions (32 s unreliable, 0 reliable)."""
    assert msg is not None
    tx._stop_retransmitting(now)
    tx._drop_held_cancel(now)
    ack = tx._ack = make_ack(tx.request, msg)
    tx._send(ack)
    tx._deliver(msg)
    tx._timer(ClientInput.TIMER_D, now, 0.0 if tx.reliable else tx._layer.config.timer_d)


def _invite_resend_ack(
    tx: ClientTransaction, now: float, msg: Response | None, cause: str | None
) -> None:
    """A retransmitted final response in Completed: ACK again, not to the TU."""
    assert tx._ack is not None
    tx._send(tx._ack)


# non-INVITE client transaction (§17.1.2)


def _non_invite_start(
    tx: ClientTransaction, now: float, msg: Response | None, cause: str | None
) -> None:
    """Enter Trying: send, Timer E = T1 on unreliable transports, Timer F = 64*T1."""
    cfg = tx._layer.config
    tx._send(tx.request)
    if not tx.reliable:
        tx._interval = cfg.t1
        tx._layer._set_timer(tx, ClientInput.TIMER_E, now + cfg.t1)
    tx._layer._set_timer(tx, ClientInput.TIMER_F, now + cfg.timer_f)


def _non_invite_retransmit(
    tx: ClientTransaction, now: float, msg: Response | None, cause: str | None
) -> None:
    """Timer E in Trying: retransmit, interval MIN(2*interval, T2)."""
    tx._send(tx.request)
    tx._interval = min(2.0 * tx._interval, tx._layer.config.t2)
    tx._layer._set_timer(tx, ClientInput.TIMER_E, now + tx._interval)


def _non_invite_retransmit_t2(
    tx: ClientTransaction, now: float, msg: Response | None, cause: str | None
) -> None:
    """Timer E in Proceeding: retransmit, interval T2."""
    tx._send(tx.request)
    tx._interval = tx._layer.config.t2
    tx._layer._set_timer(tx, ClientInput.TIMER_E, now + tx._interval)


def _non_invite_completed(
    tx: ClientTransaction, now: float, msg: Response | None, cause: str | None
) -> None:
    """Final response: to the TU; Timer K = T4 (unreliable) or 0 absorbs retransmissions."""
    assert msg is not None
    tx._stop_retransmitting(now)
    tx._deliver(msg)
    tx._timer(ClientInput.TIMER_K, now, 0.0 if tx.reliable else tx._layer.config.t4)


# --- the two transition tables: (state, input) -> (new state, handler) ----------------

_S = ClientState
_I = ClientInput

Table = Mapping[tuple[ClientState, ClientInput], tuple[ClientState, Handler]]

#: INVITE client transaction, RFC 3261 Figure 5 as amended by RFC 6026 Figure 5.
_INVITE_CLIENT: Final[Table] = MappingProxyType(
    {
        (_S.INIT, _I.SEND): (_S.CALLING, _invite_start),
        (_S.CALLING, _I.TIMER_A): (_S.CALLING, _invite_retransmit),
        (_S.CALLING, _I.TIMER_B): (_S.TERMINATED, _timeout),
        (_S.CALLING, _I.R1XX): (_S.PROCEEDING, _invite_provisional),
        (_S.CALLING, _I.R2XX): (_S.ACCEPTED, _invite_accepted),
        (_S.CALLING, _I.R3XX_6XX): (_S.COMPLETED, _invite_completed),
        (_S.CALLING, _I.TRANSPORT_ERROR): (_S.TERMINATED, _transport_failed),
        (_S.PROCEEDING, _I.R1XX): (_S.PROCEEDING, _invite_provisional),
        (_S.PROCEEDING, _I.R2XX): (_S.ACCEPTED, _invite_accepted),
        (_S.PROCEEDING, _I.R3XX_6XX): (_S.COMPLETED, _invite_completed),
        (_S.PROCEEDING, _I.TRANSPORT_ERROR): (_S.TERMINATED, _transport_failed),
        (_S.COMPLETED, _I.R3XX_6XX): (_S.COMPLETED, _invite_resend_ack),
        (_S.COMPLETED, _I.TIMER_D): (_S.TERMINATED, _terminate),
        # the ACK could not be sent: the TU already has the final response (§17.1.1.2)
        (_S.COMPLETED, _I.TRANSPORT_ERROR): (_S.TERMINATED, _terminate),
        (_S.ACCEPTED, _I.R2XX): (_S.ACCEPTED, _deliver),  # RFC 6026 §8.4: 2xx go to the TU
        (_S.ACCEPTED, _I.TIMER_M): (_S.TERMINATED, _terminate),
    }
)

#: non-INVITE client transaction, RFC 3261 Figure 6; ``INIT``/``ABANDON`` for CANCEL.
_NON_INVITE_CLIENT: Final[Table] = MappingProxyType(
    {
        (_S.INIT, _I.SEND): (_S.TRYING, _non_invite_start),
        (_S.INIT, _I.ABANDON): (_S.TERMINATED, _terminate),
        (_S.TRYING, _I.TIMER_E): (_S.TRYING, _non_invite_retransmit),
        (_S.TRYING, _I.TIMER_F): (_S.TERMINATED, _timeout),
        (_S.TRYING, _I.R1XX): (_S.PROCEEDING, _deliver),
        (_S.TRYING, _I.R2XX): (_S.COMPLETED, _non_invite_completed),
        (_S.TRYING, _I.R3XX_6XX): (_S.COMPLETED, _non_invite_completed),
        (_S.TRYING, _I.TRANSPORT_ERROR): (_S.TERMINATED, _transport_failed),
        (_S.PROCEEDING, _I.TIMER_E): (_S.PROCEEDING, _non_invite_retransmit_t2),
        (_S.PROCEEDING, _I.TIMER_F): (_S.TERMINATED, _timeout),
        (_S.PROCEEDING, _I.R1XX): (_S.PROCEEDING, _deliver),
        (_S.PROCEEDING, _I.R2XX): (_S.COMPLETED, _non_invite_completed),
        (_S.PROCEEDING, _I.R3XX_6XX): (_S.COMPLETED, _non_invite_completed),
        (_S.PROCEEDING, _I.TRANSPORT_ERROR): (_S.TERMINATED, _transport_failed),
        (_S.COMPLETED, _I.R1XX): (_S.COMPLETED, _absorb),
        (_S.COMPLETED, _I.R2XX): (_S.COMPLETED, _absorb),
        (_S.COMPLETED, _I.R3XX_6XX): (_S.COMPLETED, _absorb),
        (_S.COMPLETED, _I.TIMER_K): (_S.TERMINATED, _terminate),
    }
)
