"""The SIP transaction layer, sans-IO: RFC 3261 §17 with the RFC 6026 corrections.

``TransactionLayer`` owns the client (§17.1) and server (§17.2) transactions of one
endpoint: it matches responses (§17.1.3) and requests (§17.2.3, with the RFC 2543
fallback; CANCEL per §9.2) to them, runs every timer of Table 4 on one heap, and reports
what to do as a queue of events (docs/dev/TRANSACTION_API.md). The four state machines
are transition tables in ``_txn_client`` and ``_txn_server``.

Decisions worth knowing:

* A branch is RFC 3261 style only when it is the magic cookie ``z9hG4bK`` followed by at
  least one more character. The RFC 4475 §3.2.1 request (``branch=z9hG4bK`` alone) is
  therefore matched with the RFC 2543 rules, which RFC 4475 allows ("it could fall back
  to the RFC 2543-style transaction identifier"). Branches are compared case-sensitively.
* ``send_request`` adds ``branch=z9hG4bK<random>`` to the top Via when it has none
  (§8.1.1.7); it modifies the request in place.
* ``cancel`` of an INVITE that has no provisional response yet creates the CANCEL
  transaction in state ``Init`` and sends it when the first provisional response arrives
  (§9.1); if the INVITE ends first, the CANCEL transaction terminates unsent.
* A CANCEL matching nothing is answered 481 by the layer through its own server
  transaction (so retransmissions get the same 481); the TU only sees its
  ``SendResponse`` and ``TransactionTerminated``.
* A CANCEL only matches INVITE server transactions; a CANCEL of a non-INVITE request
  gets the same 481 (there is nothing to cancel, §9.1).
* Malformed input from the network (no Via or CSeq, unparsable headers) is dropped and
  logged; misuse by our own code raises ``LocalProtocolError``.
* Timer C (§16.6, proxies) is not implemented: an INVITE client transaction in
  Proceeding has no timer (Figure 5), so the TU ends a call that rings forever with
  ``cancel`` (§13.3.1.1). Timers fire at ``now`` and are re-armed from ``now``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from ._txn_client import ClientInput, ClientState, ClientTransaction, response_input
from ._txn_server import ServerInput, ServerState, ServerTransaction, tu_response_input
from .errors import LocalProtocolError, ParseError
from .headers import CSeq, Via
from .message import Request, Response, make_cancel, make_response

__all__ = [
    "AckReceived",
    "ClientState",
    "ClientTransaction",
    "Event",
    "RequestReceived",
    "ResponseReceived",
    "SendRequest",
    "SendResponse",
    "ServerState",
    "ServerTransaction",
    "StrayResponse",
    "TimerConfig",
    "TransactionLayer",
    "TransactionTerminated",
    "TransactionTimeout",
]

_log = logging.getLogger("hybridvoice.sip.transaction")

#: §8.1.1.7: branches of RFC 3261 elements start with this.
MAGIC_COOKIE: Final = "z9hG4bK"


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """Timer values in seconds (RFC 3261 §17.1.1.1, Table 4; RFC 6026 §8.11 and §8.4).

    ``t1`` is the RTT estimate, ``t2`` the longest retransmission interval of non-INVITE
    requests and INVITE responses, ``t4`` how long a message may stay in the network.
    Timers B, F, H, J, L and M are ``<x>_multiplier * t1`` (64*T1 by default). Timer D is
    ``timer_d`` on unreliable transports ("at least 32 s") and 0 on reliable ones.
    ``trying_delay`` is when an INVITE server transaction sends 100 Trying itself if the
    TU has not responded (§17.2.1: 200 ms; 0 sends it at once, as proxies want; None never).
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    b_multiplier: float = 64.0
    f_multiplier: float = 64.0
    h_multiplier: float = 64.0
    j_multiplier: float = 64.0
    l_multiplier: float = 64.0
    m_multiplier: float = 64.0
    timer_d: float = 32.0
    trying_delay: float | None = 0.2

    def __post_init__(self) -> None:
        if not self.t1 > 0.0 or not self.t2 >= self.t1 or not self.t4 >= 0.0:
            raise ValueError(f"need 0 < t1 <= t2 and t4 >= 0, got {self}")
        multipliers = (
            self.b_multiplier,
            self.f_multiplier,
            self.h_multiplier,
            self.j_multiplier,
            self.l_multiplier,
            self.m_multiplier,
        )
        if min(multipliers) <= 0.0 or self.timer_d < 0.0:
            raise ValueError(f"timer multipliers must be positive and timer_d >= 0: {self}")
        if self.trying_delay is not None and self.trying_delay < 0.0:
            raise ValueError(f"trying_delay must be None or >= 0: {self}")

    @property
    def timer_b(self) -> float:
        """INVITE client transaction timeout (§17.1.1.2)."""
        return self.b_multiplier * self.t1

    @property
    def timer_f(self) -> float:
        """non-INVITE client transaction timeout (§17.1.2.2)."""
        return self.f_multiplier * self.t1

    @property
    def timer_h(self) -> float:
        """Wait time for an ACK to a non-2xx final response (§17.2.1)."""
        return self.h_multiplier * self.t1

    @property
    def timer_j(self) -> float:
        """Wait time for non-INVITE request retransmissions, unreliable (§17.2.2)."""
        return self.j_multiplier * self.t1

    @property
    def timer_l(self) -> float:
        """Wait time for INVITE retransmissions in Accepted (RFC 6026 §8.7)."""
        return self.l_multiplier * self.t1

    @property
    def timer_m(self) -> float:
        """Wait time for 2xx retransmissions in Accepted (RFC 6026 §8.4)."""
        return self.m_multiplier * self.t1


# --- events (docs/dev/TRANSACTION_API.md) ---------------------------------------------
# Slotted dataclasses, read-only by contract but not frozen: several are built for every
# message, and a frozen dataclass's __init__ costs 3.5 times as much (object.__setattr__
# per field; precedent 04e60d0).


@dataclass(slots=True)
class SendRequest:
    """Put ``request`` on the wire to ``context`` (the request, a retransmission, or the
    ACK of a non-2xx final response, §17.1.1.3)."""

    transaction: ClientTransaction
    request: Request
    context: object


@dataclass(slots=True)
class SendResponse:
    """Send ``response``; route it by its top Via (§18.2.2); ``context`` is where the
    request came from."""

    transaction: ServerTransaction
    response: Response
    context: object


@dataclass(slots=True)
class RequestReceived:
    """A new server transaction for the TU (§17.2). For a CANCEL,
    ``transaction.cancels`` is the INVITE server transaction it matches (§9.2)."""

    transaction: ServerTransaction
    request: Request


@dataclass(slots=True)
class AckReceived:
    """An ACK for a 2xx: not part of any transaction (§17.2.3, RFC 6026 §7.1); for the
    dialog. ``context`` is where it came from."""

    request: Request
    context: object


@dataclass(slots=True)
class ResponseReceived:
    """A response for the TU of ``transaction`` (retransmissions are absorbed, except 2xx
    to an INVITE, which the TU acknowledges itself, RFC 6026 §8.4)."""

    transaction: ClientTransaction
    response: Response


@dataclass(slots=True)
class StrayResponse:
    """A response matching no client transaction (§18.1.2): typically a 2xx
    retransmission after Timer M, for the dialog layer."""

    response: Response


@dataclass(slots=True)
class TransactionTimeout:
    """The transaction failed: ``reason`` is ``"timeout"`` (``timer`` B, F or H) or
    ``"transport"`` (§17.1.1.2, §17.1.2.2, §17.2.4). ``TransactionTerminated`` follows."""

    transaction: ClientTransaction | ServerTransaction
    reason: Literal["timeout", "transport"] = "timeout"
    timer: str | None = None
    #: what the transport said when ``reason == "transport"`` (a refused connection, a TLS
    #: certificate not accepted...), in words, as the I/O layer reported it; else None
    cause: str | None = None


@dataclass(slots=True)
class TransactionTerminated:
    """The transaction reached Terminated and left the layer's tables."""

    transaction: ClientTransaction | ServerTransaction


Event = (
    SendRequest
    | SendResponse
    | RequestReceived
    | AckReceived
    | ResponseReceived
    | StrayResponse
    | TransactionTimeout
    | TransactionTerminated
)

#: a timer on the heap: [deadline, sequence, transaction (None once dead), input]
_TimerEntry = list[Any]
_ServerKey = tuple[object, ...]


def _default_token_factory(rng: random.Random) -> Callable[[], str]:
    getrandbits = rng.getrandbits
    return lambda: f"{getrandbits(64):016x}"


class TransactionLayer:
    """All transactions of one endpoint, sans-IO. See the module docstring and
    docs/dev/TRANSACTION_API.md for the contract.

    ``rng`` makes branches and tags reproducible; ``branch_factory`` overrides how a
    branch is made (it must return ``z9hG4bK`` plus a unique token).
    """

    __slots__ = (
        "_aliases",
        "_branch_factory",
        "_clients",
        "_dead",
        "_events",
        "_heap",
        "_seq",
        "_servers",
        "_tag_factory",
        "config",
    )

    def __init__(
        self,
        config: TimerConfig | None = None,
        *,
        rng: random.Random | None = None,
        branch_factory: Callable[[], str] | None = None,
    ) -> None:
        self.config = config if config is not None else TimerConfig()
        token = _default_token_factory(rng if rng is not None else random.Random())
        self._branch_factory = branch_factory or (lambda: MAGIC_COOKIE + token())
        self._tag_factory = token
        self._clients: dict[tuple[str, str], ClientTransaction] = {}
        self._servers: dict[_ServerKey, ServerTransaction] = {}
        self._events: list[Event] = []
        self._heap: list[_TimerEntry] = []
        self._seq = itertools.count()
        self._dead = 0  # cancelled entries still on the heap
        self._aliases = 0  # extra keys of RFC 2543 INVITE server transactions

    # --- the API --------------------------------------------------------------------

    def send_request(
        self, request: Request, now: float, *, reliable: bool = False, context: object = None
    ) -> ClientTransaction:
        """Start a client transaction for ``request`` (§17.1) and send it.

        The request needs its top Via (sent-by); a missing branch is generated. ACK is
        never sent in a transaction: the TU sends the 2xx ACK itself (§13.2.2.4).
        """
        method = request.method
        if method == "ACK":
            raise LocalProtocolError("ACK is not a transaction: send the 2xx ACK directly")
        try:
            via = request.top_via
            cseq = request.cseq
        except ParseError as exc:
            raise LocalProtocolError(f"cannot send a malformed request: {exc}") from exc
        if via is None:
            raise LocalProtocolError("the request needs a top Via before it is sent (§8.1.1.7)")
        if cseq is None or cseq.method != method:
            raise LocalProtocolError("the request needs a CSeq with its method (§8.1.1.5)")
        branch = via.branch
        if not branch:
            branch = self._branch_factory()
            headers = request.headers
            headers.pop_first_value("Via")
            headers.prepend("Via", via.with_param("branch", branch))
        elif not branch.startswith(MAGIC_COOKIE) or len(branch) == len(MAGIC_COOKIE):
            raise LocalProtocolError(f"branch {branch!r} lacks the z9hG4bK cookie (§8.1.1.7)")
        if (branch, method) in self._clients:
            raise LocalProtocolError(f"a {method} transaction with branch {branch} exists")
        tx = ClientTransaction(self, request, branch, reliable=reliable, context=context)
        self._clients[tx.key] = tx
        tx._handle(ClientInput.SEND, now)
        return tx

    def cancel(self, transaction: ClientTransaction, now: float) -> ClientTransaction:
        """CANCEL the pending INVITE ``transaction`` in a transaction of its own (§9.1).

        Sent at once if the INVITE had a provisional response, else held until one comes
        (and dropped if a final response or a timeout comes first).
        """
        tx = transaction
        if tx._layer is not self or not tx.is_invite:
            raise LocalProtocolError(f"{tx!r} is not an INVITE client transaction of ours")
        if tx.cancel is not None:
            raise LocalProtocolError(f"{tx!r} is already cancelled")
        if tx.state not in (ClientState.CALLING, ClientState.PROCEEDING):
            raise LocalProtocolError(f"{tx!r} already has a final response (§9.1)")
        key = (tx.branch, "CANCEL")
        if key in self._clients:
            raise LocalProtocolError(f"a CANCEL with branch {tx.branch} exists")
        ctx = ClientTransaction(
            self, make_cancel(tx.request), tx.branch, reliable=tx.reliable, context=tx.context
        )
        ctx.cancels = tx
        tx.cancel = ctx
        self._clients[key] = ctx
        if tx.state is ClientState.PROCEEDING:
            ctx._handle(ClientInput.SEND, now)
        return ctx

    def receive_response(self, response: Response, now: float) -> None:
        """A response from the network: to its client transaction (§17.1.3), else
        ``StrayResponse``."""
        try:
            via = response.top_via
            cseq = response.cseq
        except ParseError as exc:
            _log.info("dropped a response with malformed headers: %s", exc)
            return
        if via is None or cseq is None:
            _log.info("dropped a response without Via or CSeq: %r", response)
            return
        branch = via.branch
        tx = self._clients.get((branch, cseq.method)) if branch else None
        if tx is None:
            self._events.append(StrayResponse(response))
            return
        tx._handle(response_input(response.status), now, response)

    def receive_request(
        self, request: Request, now: float, *, reliable: bool = False, context: object = None
    ) -> None:
        """A request from the network (§17.2.3): a retransmission is absorbed, an ACK goes
        to its INVITE transaction or to the TU, anything else starts a server transaction.
        ``context`` says where it came from; responses are sent with it."""
        try:
            via = request.top_via
            cseq = request.cseq
            if via is None or cseq is None:
                _log.info("dropped a request without Via or CSeq: %r", request)
                return
            method = request.method
            key, rfc2543 = self._server_key(request, via, cseq, method)
        except ParseError as exc:
            _log.info("dropped a request with malformed headers: %s", exc)
            return
        tx = self._servers.get(key)
        if method == "ACK":
            if tx is not None:
                tx._handle(ServerInput.ACK, now, request, context)
            else:  # the ACK of a 2xx is a transaction of its own, for the TU (§17.2.3)
                self._events.append(AckReceived(request, context))
            return
        if tx is not None:
            tx._handle(ServerInput.REQUEST, now, request, context)
            return
        cancels = None
        if method == "CANCEL":  # §9.2: match as if it were the INVITE
            cancels = self._servers.get((*key[:-1], "INVITE"))
        tx = ServerTransaction(
            self, request, key, rfc2543=rfc2543, reliable=reliable, context=context
        )
        self._servers[key] = tx
        tx._handle(ServerInput.REQUEST, now, request, context)
        if method == "CANCEL" and cancels is None:
            response = make_response(request, 481, to_tag=self._tag_factory())
            tx._handle(ServerInput.TU_3XX_6XX, now, response)
            return
        tx.cancels = cancels
        self._events.append(RequestReceived(tx, request))

    def send_response(self, transaction: ServerTransaction, response: Response, now: float) -> None:
        """The TU answers ``transaction`` (§17.2). Raises ``LocalProtocolError`` when the
        state does not allow it (e.g. a second final response)."""
        tx = transaction
        if tx._layer is not self:
            raise LocalProtocolError(f"{tx!r} is not a transaction of this layer")
        status = response.status
        if not 100 <= status <= 699:
            raise LocalProtocolError(f"status {status} is not a SIP status code")
        tx._handle(tu_response_input(status), now, response)
        if tx.rfc2543 and tx.is_invite and status >= 200 and tx.state is not ServerState.TERMINATED:
            self._alias_for_ack(tx, response)

    def transport_error(
        self,
        transaction: ClientTransaction | ServerTransaction,
        now: float,
        cause: str | None = None,
    ) -> None:
        """The transport could not send this transaction's last message (§17.1.1.2,
        §17.1.2.2, §17.2.4): the TU gets ``TransactionTimeout(reason="transport")`` carrying
        ``cause``, the transport's own words for it. Ignored when the transaction is past the
        point where it matters."""
        if transaction._layer is not self:
            raise LocalProtocolError(f"{transaction!r} is not a transaction of this layer")
        if isinstance(transaction, ClientTransaction):
            transaction._handle(ClientInput.TRANSPORT_ERROR, now, None, cause)
        else:
            transaction._handle(ServerInput.TRANSPORT_ERROR, now, None, cause)

    def next_deadline(self) -> float | None:
        """When ``handle_timers`` should next be called, or None when no timer runs."""
        heap = self._heap
        while heap and heap[0][2] is None:
            heapq.heappop(heap)
            self._dead -= 1
        return heap[0][0] if heap else None

    def handle_timers(self, now: float) -> None:
        """Fire every timer due at ``now``."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            tx = entry[2]
            if tx is None:
                self._dead -= 1
                continue
            inp = entry[3]
            entry[2] = None
            timers: dict[Any, _TimerEntry] = tx._timers
            if timers.get(inp) is entry:
                del timers[inp]
            tx._handle(inp, now)

    def events(self) -> list[Event]:
        """The events since the last call, in order; the queue is cleared."""
        out = self._events
        self._events = []
        return out

    @property
    def transaction_count(self) -> int:
        """How many transactions are alive (for metrics and tests)."""
        return len(self._clients) + len(self._servers) - self._aliases

    # --- matching -------------------------------------------------------------------

    @staticmethod
    def _server_key(request: Request, via: Via, cseq: CSeq, method: str) -> tuple[_ServerKey, bool]:
        """The §17.2.3 key of a request and whether it is RFC 2543 style. An ACK gets the
        key of its INVITE; a CANCEL's key differs from its INVITE's only in the method."""
        kind = "INVITE" if method == "ACK" else method
        branch = via.branch
        if branch is not None and len(branch) > 7 and branch.startswith(MAGIC_COOKIE):
            return (branch, via.host.lower(), via.port, kind), False
        # RFC 2543: Request-URI, To tag, From tag, Call-ID, CSeq number, top Via, method.
        to = request.to
        from_ = request.from_
        key = (
            request.uri,
            None if to is None else to.tag,
            None if from_ is None else from_.tag,
            request.call_id,
            cseq.seq,
            via,
            kind,
        )
        return key, True

    def _alias_for_ack(self, tx: ServerTransaction, response: Response) -> None:
        """RFC 2543 ACK matching uses the To tag of the response we sent (§17.2.3): file
        the INVITE transaction under that key as well."""
        try:
            to = response.to
        except ParseError as exc:
            raise LocalProtocolError(f"malformed To in our response: {exc}") from exc
        key = tx.key
        alias = (key[0], None if to is None else to.tag, *key[2:])
        if alias != key and alias not in self._servers:
            self._servers[alias] = tx
            tx._keys.append(alias)
            self._aliases += 1

    # --- services for the transactions (_txn_client, _txn_server) ----------------------

    def _emit_send_request(self, tx: ClientTransaction, request: Request) -> None:
        self._events.append(SendRequest(tx, request, tx.context))

    def _emit_response_received(self, tx: ClientTransaction, response: Response) -> None:
        self._events.append(ResponseReceived(tx, response))

    def _emit_send_response(self, tx: ServerTransaction, response: Response) -> None:
        self._events.append(SendResponse(tx, response, tx.context))

    def _emit_ack(self, ack: Request, context: object) -> None:
        self._events.append(AckReceived(ack, context))

    def _set_timer(
        self, tx: ClientTransaction | ServerTransaction, inp: ClientInput | ServerInput, when: float
    ) -> None:
        timers: dict[Any, _TimerEntry] = tx._timers
        old = timers.get(inp)
        if old is not None:
            old[2] = None
            self._dead += 1
        entry: _TimerEntry = [when, next(self._seq), tx, inp]
        timers[inp] = entry
        heapq.heappush(self._heap, entry)

    def _cancel_timer(
        self, tx: ClientTransaction | ServerTransaction, inp: ClientInput | ServerInput
    ) -> None:
        timers: dict[Any, _TimerEntry] = tx._timers
        entry = timers.pop(inp, None)
        if entry is not None:
            entry[2] = None
            self._dead += 1
            self._maybe_compact()

    def _maybe_compact(self) -> None:
        """Drop cancelled entries once they are most of the heap (lazy deletion keeps
        cancelling O(1); this keeps the heap from growing with dead entries)."""
        if self._dead <= 1024 or 2 * self._dead <= len(self._heap):
            return
        heap = self._heap
        heap[:] = [e for e in heap if e[2] is not None]  # in place: handle_timers holds it
        heapq.heapify(heap)
        self._dead = 0

    def _finish(
        self,
        tx: ClientTransaction | ServerTransaction,
        reason: Literal["timeout", "transport"] | None = None,
        timer: str | None = None,
        *,
        cause: str | None = None,
    ) -> None:
        """Enter Terminated: stop the timers, leave the tables, tell the TU (``cause``: the
        transport's words when ``reason`` is "transport")."""
        for entry in tx._timers.values():
            entry[2] = None
            self._dead += 1
        tx._timers.clear()
        self._maybe_compact()
        if isinstance(tx, ClientTransaction):
            if self._clients.get(tx.key) is tx:
                del self._clients[tx.key]
        else:
            servers = self._servers
            for key in tx._keys:
                if servers.get(key) is tx:
                    del servers[key]
            self._aliases -= len(tx._keys) - 1
        if reason is not None:
            self._events.append(TransactionTimeout(tx, reason, timer, cause))
        self._events.append(TransactionTerminated(tx))
