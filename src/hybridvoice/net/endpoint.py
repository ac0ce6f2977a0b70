"""The SIP endpoint: transports -> transaction layer -> transaction user (RFC 3261 §17, §18).

:class:`Endpoint` owns the transports it listens on, one sans-IO
:class:`~hybridvoice.sip.transaction.TransactionLayer` and one event-loop timer armed for the
layer's next deadline. Received messages go to the layer with the time from ``loop.time()``;
the layer's events are then drained in order: messages to send are serialised and put on the
wire (requests to their :class:`~hybridvoice.net.transport.Destination`, responses back the way
the request came, §18.2.2 and RFC 3581 §4), everything else goes to the transaction user (TU).

Outgoing requests get their top Via here (§8.1.1.7, §18.1.1): the transport's sent-by, a
fresh ``z9hG4bK`` branch and, on UDP, an empty ``rport`` (RFC 3581 §3).
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Final, Protocol

from hybridvoice.sip.errors import ParseError
from hybridvoice.sip.headers import Via
from hybridvoice.sip.message import Request, Response
from hybridvoice.sip.transaction import (
    AckReceived,
    ClientTransaction,
    RequestReceived,
    ResponseReceived,
    SendRequest,
    SendResponse,
    ServerTransaction,
    StrayResponse,
    TimerConfig,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
)

from .failures import describe_failure
from .log_context import LEG_CALL_ID
from .pipe import LocalExchange
from .stream import StreamLimits, StreamTransport
from .transport import (
    DEFAULT_BUFFER_SIZE,
    DEFAULT_MAX_SIZE,
    Destination,
    NetError,
    Source,
    Transport,
    TransportError,
    family_of,
    response_address,
    via_host,
)
from .udp import UdpTransport

_log = logging.getLogger(__name__)
_BRANCH: Final = "branch"
_RPORT: Final = ("rport", None)

__all__ = [
    "ClientCallback",
    "Endpoint",
    "EndpointCounters",
    "RequestTimeoutError",
    "TransactionUser",
]

#: Called for every response to a client transaction and for its timeout (Timer B/F or a
#: transport error); set per request with :meth:`Endpoint.send_request`.
ClientCallback = Callable[[ClientTransaction, "Response | TransactionTimeout"], None]


class RequestTimeoutError(NetError):
    """No final response came for a request (Timer B/F, §17.1) or it could not be sent."""

    def __init__(self, request: Request, reason: str) -> None:
        super().__init__(f"{request.method} {request.uri}: {reason}")
        self.reason = reason


class TransactionUser(Protocol):
    """What the endpoint calls (the UA core, a proxy core or a B2BUA; §8, §16)."""

    def on_request(
        self, endpoint: Endpoint, transaction: ServerTransaction, request: Request
    ) -> None:
        """A new request; answer with :meth:`Endpoint.send_response` (now or later)."""

    def on_ack(self, endpoint: Endpoint, request: Request, source: Source) -> None:
        """An ACK for a 2xx (§13.2.2.4, §17.2.1): not part of any transaction; ``source``
        is where it came from (the transport, the peer's address, the connection)."""

    def on_response(
        self, endpoint: Endpoint, transaction: ClientTransaction, response: Response
    ) -> None:
        """A response to a request sent without a callback."""

    def on_stray_response(self, endpoint: Endpoint, response: Response) -> None:
        """A response matching no transaction: a retransmitted 2xx to an INVITE (§13.2.2.4)."""

    def on_timeout(
        self,
        endpoint: Endpoint,
        transaction: ClientTransaction | ServerTransaction,
        reason: str,
    ) -> None:
        """Timer B/F/H fired, or a transport error (``reason == "transport"``)."""


@dataclass(slots=True)
class EndpointCounters:
    """Plain counters for the management layer (per-transport ones are on each transport)."""

    requests_in: dict[str, int] = field(default_factory=dict)
    requests_out: dict[str, int] = field(default_factory=dict)
    responses_in: dict[int, int] = field(default_factory=dict)
    responses_out: dict[int, int] = field(default_factory=dict)
    retransmissions: int = 0
    stray_responses: int = 0
    timeouts: int = 0
    transport_errors: int = 0


#: Methods counted by name (RFC 3261 and the extensions in use); any other token is counted
#: as "other", so that a peer cannot make up metric label values.
KNOWN_METHODS: Final = frozenset(
    {
        "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE",
        "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
    }
)  # fmt: skip


class BranchFactory:
    """Via branches (§8.1.1.7: the magic cookie and 64 random bits) from the kernel's CSPRNG,
    read 2 KiB at a time: one ``os.urandom`` call per 128 branches instead of one each."""

    __slots__ = ("_hex", "_pos")

    def __init__(self) -> None:
        self._hex = ""
        self._pos = 0

    def __call__(self) -> str:
        pos = self._pos
        if pos + 16 > len(self._hex):
            self._hex = os.urandom(1024).hex()
            pos = 0
        self._pos = pos + 16
        return "z9hG4bK" + self._hex[pos : pos + 16]


class Endpoint:
    """Transports, the transaction layer, the timer and the routing between them.

    ``tu`` receives requests, ACKs for 2xx, stray responses and the responses/timeouts of
    requests sent without a callback. ``branch_factory`` makes Via branches (must start with
    the magic cookie ``z9hG4bK``, §8.1.1.7); the layer built here gets the same one.

    The ``tu_data`` slot of client transactions started by :meth:`send_request` holds the
    callback; that of server transactions is free for the TU.
    """

    def __init__(
        self,
        tu: TransactionUser | None = None,
        *,
        timers: TimerConfig | None = None,
        layer: TransactionLayer | None = None,
        branch_factory: Callable[[], str] | None = None,
        exchange: LocalExchange | None = None,
        limits: StreamLimits | None = None,
    ) -> None:
        self.tu = tu
        #: what a peer may hold on our TCP/TLS listeners (the roles pass [SipLimits])
        self.limits = limits if limits is not None else StreamLimits()
        #: the stream listeners of this process: requests to them go through pipes
        #: (:mod:`hybridvoice.net.pipe`); None: every hop on sockets
        self.exchange = exchange
        if branch_factory is None:
            branch_factory = BranchFactory()
        self.layer = (
            layer if layer is not None else TransactionLayer(timers, branch_factory=branch_factory)
        )
        self.counters = EndpointCounters()
        #: called with ("in" | "out", message) for every message received or sent, first
        #: sends and retransmissions alike (a SIP ladder for diagnostics); None: off
        self.trace: Callable[[str, Request | Response], None] | None = None
        self.transports: list[Transport] = []
        self._branch = branch_factory
        self._loop = asyncio.get_running_loop()
        self._by_kind: dict[tuple[str, int], Transport] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0
        self._draining = False
        self._closed = False
        # retransmission counting: what each live transaction has sent so far
        self._sent_requests: set[ClientTransaction] = set()
        self._last_response: dict[ServerTransaction, Response] = {}

    # --- transports ------------------------------------------------------------------------

    async def listen(
        self,
        kind: str,
        host: str,
        port: int = 0,
        *,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        advertised_host: str | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        idle_timeout: float | None = None,
    ) -> Transport:
        """Listen on ``kind`` (UDP, TCP or TLS) at ``host:port``; the first transport of a
        kind and address family is the one requests of that kind and family go out on.

        TLS without ``server_ssl`` only opens connections (a client, e.g. an OPTIONS ping).
        """
        kind = kind.upper()
        transport: Transport
        if kind == "UDP":
            transport = UdpTransport(
                host,
                port,
                self,
                advertised_host=advertised_host,
                buffer_size=buffer_size,
                max_size=max_size,
            )
        elif kind in ("TCP", "TLS"):
            transport = await StreamTransport.listen(
                host,
                port,
                self,
                kind=kind,
                server_ssl=server_ssl,
                client_ssl=client_ssl,
                advertised_host=advertised_host,
                max_size=max_size,
                idle_timeout=idle_timeout,
                exchange=self.exchange,
                limits=self.limits,
            )
        else:
            raise ValueError(f"unknown transport {kind!r}")
        self.add_transport(transport)
        return transport

    def add_transport(self, transport: Transport) -> None:
        self.transports.append(transport)
        self._by_kind.setdefault((transport.kind, transport.family), transport)

    def transport_for(self, destination: Destination) -> Transport:
        """The transport requests to ``destination`` go out on (§18.1.1): the one bound to
        ``destination.local`` when given, else the first of its kind and address family."""
        if destination.local is not None:
            kind = destination.transport.upper()
            for candidate in self.transports:
                if candidate.kind == kind and candidate.local == destination.local:
                    return candidate
        key = (destination.transport.upper(), family_of(destination.host))
        transport = self._by_kind.get(key)
        if transport is None:
            raise TransportError(f"no {key[0]} transport for {destination.host}")
        return transport

    async def close(self) -> None:
        """Close every transport and stop the timer."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for transport in self.transports:
            transport.close()
        for transport in self.transports:
            if isinstance(transport, StreamTransport):
                await transport.wait_closed()

    @property
    def parse_errors(self) -> int:
        """Messages dropped by every transport, for any reason."""
        return sum(sum(t.counters.drops.values()) for t in self.transports)

    # --- client side -----------------------------------------------------------------------

    def add_via(self, request: Request, transport: Transport) -> str:
        """Put our top Via on ``request`` (§8.1.1.7); return its branch.

        On UDP the Via asks for ``rport`` (RFC 3581 §3), so responses find their way back
        through a NAT. On TCP and TLS it does not: a response goes back on the connection, or
        to ``received`` and the sent-by port (§18.2.2), never to ``rport``; so a proxy that
        receives the request over a stream has no Via to rewrite when the sent-by is the
        source address.
        """
        branch = self._branch()
        host, port = transport.advertised
        params = ((_BRANCH, branch),) if transport.reliable else ((_BRANCH, branch), _RPORT)
        via = Via(transport.kind, via_host(host), port or None, params)
        request.headers.prepend("Via", via)
        return branch

    def send_request(
        self,
        request: Request,
        destination: Destination,
        callback: ClientCallback | None = None,
    ) -> ClientTransaction:
        """Send ``request`` in a new client transaction (§17.1).

        Responses and the timeout go to ``callback`` when given, else to the TU. Raises
        ``TransportError`` when no transport can reach ``destination``.
        """
        transport = self.transport_for(destination)
        self.add_via(request, transport)
        tx = self.layer.send_request(
            request, self._loop.time(), reliable=destination.reliable, context=destination
        )
        tx.tu_data = callback
        self._drain()
        return tx

    def cancel(self, transaction: ClientTransaction) -> ClientTransaction:
        """CANCEL a pending INVITE (§9.1); the CANCEL has its own transaction."""
        tx = self.layer.cancel(transaction, self._loop.time())
        tx.tu_data = transaction.tu_data
        self._drain()
        return tx

    def send_stateless(self, request: Request, destination: Destination) -> None:
        """Send a request outside any transaction: the ACK for a 2xx (§13.2.2.4, §17.1.1.1)."""
        transport = self.transport_for(destination)
        self.add_via(request, transport)
        if self.trace is not None:
            self.trace("out", request)
        self._count_out(request)
        transport.send_message(
            request, destination.host, destination.port, server_name=destination.server_name
        )

    async def request(
        self, request: Request, destination: Destination, *, timeout: float | None = None
    ) -> Response:
        """Send a non-INVITE ``request`` and return its final response (§17.1.2).

        Raises :class:`RequestTimeoutError` on Timer F, a transport error or ``timeout``.
        """
        future: asyncio.Future[Response] = self._loop.create_future()

        def done(_: ClientTransaction, outcome: Response | TransactionTimeout) -> None:
            if future.done():
                return
            if isinstance(outcome, Response):
                if outcome.status >= 200:
                    future.set_result(outcome)
            else:
                future.set_exception(RequestTimeoutError(request, outcome.reason))

        self.send_request(request, destination, done)
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError as exc:
            raise RequestTimeoutError(request, "timeout") from exc

    # --- server side -----------------------------------------------------------------------

    def send_response(self, transaction: ServerTransaction, response: Response) -> None:
        """Answer a server transaction (§17.2); the layer retransmits as needed."""
        self.layer.send_response(transaction, response, self._loop.time())
        self._drain()

    # --- MessageSink: called by the transports ------------------------------------------------

    def on_request(self, request: Request, source: Source) -> None:
        if self.trace is not None:
            self.trace("in", request)
        counts = self.counters.requests_in
        method = request.method if request.method in KNOWN_METHODS else "other"
        counts[method] = counts.get(method, 0) + 1
        token = LEG_CALL_ID.set(request)  # log lines name its call
        try:
            self.layer.receive_request(
                request, self._loop.time(), reliable=source.transport.reliable, context=source
            )
            self._drain()
        finally:
            LEG_CALL_ID.reset(token)

    def on_response(self, response: Response, source: Source) -> None:
        if self.trace is not None:
            self.trace("in", response)
        counts = self.counters.responses_in
        counts[response.status] = counts.get(response.status, 0) + 1
        token = LEG_CALL_ID.set(response)
        try:
            self.layer.receive_response(response, self._loop.time())
            self._drain()
        finally:
            LEG_CALL_ID.reset(token)

    # --- the layer's events ------------------------------------------------------------------

    def _drain(self) -> None:
        """Handle the layer's events in order, then re-arm the timer. Not re-entrant: events
        produced while handling (the TU answering at once) are picked up by the same loop."""
        if self._draining:
            return
        self._draining = True
        layer = self.layer
        try:
            while events := layer.events():
                for event in events:
                    self._handle(event)
        finally:
            self._draining = False
        self._arm_timer()

    def _handle(self, event: object) -> None:
        tu = self.tu
        # exact types, the usual first: no chain of isinstance checks (nor a match's)
        if type(event) is SendRequest:
            self._send_request(event.transaction, event.request, event.context)
        elif type(event) is SendResponse:
            self._send_response(event.transaction, event.response, event.context)
        elif type(event) is RequestReceived:
            if tu is not None:
                tu.on_request(self, event.transaction, event.request)
        elif type(event) is ResponseReceived:
            tx, response = event.transaction, event.response
            callback = tx.tu_data
            if callable(callback):
                callback(tx, response)
            elif tu is not None:
                tu.on_response(self, tx, response)
        elif type(event) is TransactionTerminated:
            done = event.transaction
            if isinstance(done, ClientTransaction):
                self._sent_requests.discard(done)
            else:
                self._last_response.pop(done, None)
        elif type(event) is AckReceived:
            source = event.context
            if tu is not None:
                assert isinstance(source, Source)
                tu.on_ack(self, event.request, source)
        elif type(event) is StrayResponse:
            self.counters.stray_responses += 1
            if tu is not None:
                tu.on_stray_response(self, event.response)
        elif type(event) is TransactionTimeout:
            self.counters.timeouts += 1
            failed = event.transaction
            callback = failed.tu_data if isinstance(failed, ClientTransaction) else None
            if callable(callback):
                callback(failed, event)
            elif tu is not None:
                tu.on_timeout(self, failed, event.reason)

    def _send_request(self, tx: ClientTransaction, request: Request, destination: object) -> None:
        assert isinstance(destination, Destination)
        if self.trace is not None:
            self.trace("out", request)
        if tx in self._sent_requests:
            self.counters.retransmissions += 1
        else:
            self._sent_requests.add(tx)
            self._count_out(request)
        try:
            transport = self.transport_for(destination)
        except TransportError:
            self._transport_error(tx, None)
            return
        transport.send_message(
            request,
            destination.host,
            destination.port,
            server_name=destination.server_name,
            on_error=partial(self._transport_error, tx),
        )

    def _send_response(self, tx: ServerTransaction, response: Response, context: object) -> None:
        assert isinstance(context, Source)
        if self.trace is not None:
            self.trace("out", response)
        if self._last_response.get(tx) is response:
            self.counters.retransmissions += 1
        else:
            self._last_response[tx] = response
            counts = self.counters.responses_out
            counts[response.status] = counts.get(response.status, 0) + 1
        self._reply(context, response, partial(self._transport_error, tx))

    def send_direct(self, source: Source, response: Response) -> None:
        """Send ``response`` back the way a request came from ``source``, outside any
        transaction: a 2xx to an INVITE once its server transaction has left the Accepted
        state (RFC 6026 §7.1, §13.3.1.4), or a proxy's relay of one (§16.7 step 5). A failure
        is logged and counted as a transport error; there is no transaction to tell."""
        if self.trace is not None:
            self.trace("out", response)

        def failed(exc: Exception | None) -> None:
            self.counters.transport_errors += 1
            _log.info("%s not sent to %s:%s: %s", response.status, source.host, source.port, exc)

        try:
            if not self._reply(source, response, failed):
                return
        except (TransportError, ParseError) as exc:
            failed(exc)
            return
        counts = self.counters.responses_out
        counts[response.status] = counts.get(response.status, 0) + 1

    @staticmethod
    def _reply(
        source: Source, response: Response, on_error: Callable[[Exception | None], None]
    ) -> bool:
        """§18.2.2: reliable -> the request's connection, else a new one to received and the
        sent-by port; unreliable -> maddr, else received + rport or sent-by port. False: no
        address to send to (no Via)."""
        transport = source.transport
        conn = source.connection
        if conn is not None and conn.is_open:
            try:
                conn.write_message(response)
            except TransportError as exc:
                on_error(exc)
            return True
        address = source.reply
        if address is None:
            via = response.top_via
            if via is None:
                return False
            address = response_address(via, transport.reliable)
        transport.send_message(response, address[0], address[1], on_error=on_error)
        return True

    def _transport_error(
        self, tx: ClientTransaction | ServerTransaction, exc: Exception | None
    ) -> None:
        self.counters.transport_errors += 1
        destination = tx.context
        cause = None
        if exc is not None and isinstance(destination, Destination):
            cause = describe_failure(destination, exc)
        self.layer.transport_error(tx, self._loop.time(), cause)
        self._drain()

    def _count_out(self, request: Request) -> None:
        counts = self.counters.requests_out
        method = request.method if request.method in KNOWN_METHODS else "other"
        counts[method] = counts.get(method, 0) + 1

    # --- the one timer -----------------------------------------------------------------------

    def _arm_timer(self) -> None:
        """Keep one ``call_at`` handle for the layer's next deadline; move it only earlier
        (a handle firing before anything is due costs one empty ``handle_timers``)."""
        if self._closed:
            return
        deadline = self.layer.next_deadline()
        if deadline is None:
            return
        if self._timer is not None:
            if self._timer_when <= deadline:
                return
            self._timer.cancel()
        self._timer_when = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        # call_at may fire up to one clock tick early: never pass a time before the deadline
        now = max(self._loop.time(), self._timer_when)
        self.layer.handle_timers(now)
        self._drain()
