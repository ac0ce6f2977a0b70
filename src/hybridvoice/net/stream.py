"""SIP over TCP and TLS (RFC 3261 §18, §18.3 stream framing, §26.2 TLS; RFC 5626 §3.5.1
CRLF keep-alives).

A :class:`StreamTransport` listens on one address and keeps a table of its connections keyed
by the remote (address, port), so that requests and responses to the same place reuse one
connection (§18.1.1, §18.2.2; the transport itself is the third part of the key). A send to a
place without a connection opens one, queueing what is sent meanwhile. Every connection frames
messages with :class:`~hybridvoice.sip.parser.StreamParser`, answers a keep-alive ping
(CRLFCRLF) with a pong (CRLF), is closed after ``idle_timeout`` seconds without traffic, and on
a framing or parse error gets the 400 (or 513...) when one can be built and is then closed.

A hostile peer cannot hold connections for free (:class:`StreamLimits`): a message must be
complete ``head_timeout`` seconds after its first byte (a peer sending one byte a second is
closed), and accepted connections are capped per source address and in total. Every time a limit
bites it is counted in the drop counter (``head_timeout``, ``source_limit``, ``connection_limit``).

TLS (RFC 5630 §3, RFC 5922): a TLS listener accepts TCP and runs the handshake itself
(``loop.start_tls``), so that a client refused by it (no certificate when one is required, an
untrusted chain, TLS below 1.2) is logged and counted with its reason
(``counters.tls_refused``, :func:`~hybridvoice.net.identity.refusal_reason`) instead of
vanishing in asyncio's debug log; connections it opens are refused and counted the same way
when the server's chain or name does not verify. ``peer_ssl`` gives the client context per
peer name (a gateway's own trust, with or without our certificate); every connection keeps
its peer's :class:`~hybridvoice.net.identity.PeerIdentity` (``peer_identity``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, cast

from hybridvoice.sip.errors import ParseError
from hybridvoice.sip.message import Request, Response
from hybridvoice.sip.parser import KeepAlive, StreamParser
from hybridvoice.sip.value_cache import ValueCache

from .identity import PeerIdentity, RefusalReason, count_refusal, refusal_reason
from .pipe import LocalExchange, PipeEnd
from .stream_source import outgoing_source
from .stream_tls import sip_accept
from .tls import identity_of
from .trace_tap import MessageTap
from .transport import (
    DEFAULT_MAX_SIZE,
    BoundTransport,
    MessageSink,
    SendErrorCallback,
    Source,
    TransportCounters,
    TransportError,
    bare_host,
    check_cseq,
    drop_reason,
    error_response,
    family_of,
    response_address,
    stamp_via,
    via_host,
    via_is_ours,
)

__all__ = [
    "StreamConnection",
    "StreamLimits",
    "StreamTransport",
]

log = logging.getLogger(__name__)

_PONG: Final = b"\r\n"
_PING: Final = b"\r\n\r\n"
#: A connection whose peer does not read this much is given up (write buffer, bytes).
_WRITE_LIMIT: Final = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """What one peer may hold on a TCP/TLS listener (defaults an SBC operator would pick).

    ``head_timeout``: seconds from the first byte of a message until the message is complete
    (head and body; a slowloris peer is closed); also the TLS handshake timeout.
    ``idle_timeout``: seconds without any traffic before a connection is closed.
    ``max_per_source``: accepted connections from one IP address at a time.
    ``max_connections``: accepted connections of one listener at a time.
    """

    head_timeout: float = 10.0
    idle_timeout: float = 300.0
    max_per_source: int = 64
    max_connections: int = 10_000


class StreamConnection(asyncio.Protocol):
    """One TCP/TLS connection: framing, keep-alives, error answers (an asyncio Protocol)."""

    __slots__ = (
        "_bad",
        "_counted",
        "_owner",
        "_parser",
        "_transport",
        "host",
        "incoming",
        "last_active",
        "local",
        "partial_since",
        "peer_identity",
        "port",
    )

    def __init__(self, owner: StreamTransport, *, incoming: bool = False) -> None:
        self._owner = owner
        self.local: tuple[str, int] = owner.local  # the socket's own address once connected
        #: accepted by our listener (counted against the caps), not opened by us
        self.incoming = incoming
        #: when the first byte of the message being received came; 0.0: between messages
        self.partial_since = 0.0
        self._parser = StreamParser(owner.max_size, owner.values)
        # A copy of the bytes the parser holds, for the 400 when parsing fails (see _feed).
        self._bad = bytearray()
        #: the bytes the parser holds were counted as dropped (parse error, head timeout)
        self._counted = False
        self._transport: asyncio.Transport | None = None
        self.host = ""
        self.port = 0
        self.last_active = 0.0
        #: what the peer's verified certificate says (TLS), None without one
        self.peer_identity: PeerIdentity | None = None

    # --- Connection protocol ---------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        t = self._transport
        return t is not None and not t.is_closing()

    def write(self, data: bytes) -> None:
        """Queue ``data`` on the connection; raises ``TransportError`` when it is closed."""
        t = self._transport
        if t is None or t.is_closing():
            raise TransportError(f"connection to {self.host}:{self.port} is closed")
        t.write(data)
        if (tap := self._owner.tap) is not None:
            tap(self._owner.kind, self.local, (self.host, self.port), data, True, None)
        counters = self._owner.counters
        counters.messages_out += 1
        counters.bytes_out += len(data)
        self.last_active = self._owner.loop.time()
        if t.get_write_buffer_size() > _WRITE_LIMIT:
            counters.drop("write_buffer_full")
            t.abort()

    def ping(self) -> None:
        """Send a keep-alive ping (RFC 5626 §3.5.1); the peer answers with a pong."""
        t = self._transport
        if t is not None and not t.is_closing():
            t.write(_PING)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def close_timed_out(self) -> None:
        """Close for the head deadline: what the parser holds is counted as that drop."""
        self._owner.counters.drop("head_timeout")
        self._counted = True
        self.close()

    def __repr__(self) -> str:
        return f"<StreamConnection {self._owner.kind} {self.host}:{self.port}>"

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but have its methods
        self._transport = transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.host, self.port = peer[0], peer[1]
        self.local = (transport.get_extra_info("sockname") or self._owner.local)[:2]
        self.last_active = self._owner.loop.time()
        tls = transport.get_extra_info("ssl_object")
        if tls is not None:
            self.peer_identity = PeerIdentity.from_peercert(tls.getpeercert())
        if self.incoming and not self._owner._admit(self.host):
            self.incoming = False  # never counted: nothing to release
            self._transport = None
            transport.abort()
            return
        self._owner._register(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._owner._unregister(self)
            if self._parser.mid_message and not self._counted:  # closed in the middle of one
                self._owner.counters.drop("truncated")
        self._transport = None

    def data_received(self, data: bytes) -> None:
        """Frame and deliver; never raises (asyncio would only log and drop the connection)."""
        now = self.last_active = self._owner.loop.time()
        try:
            self._feed(data)
        except Exception:
            self._owner.counters.drop("internal_error")
            log.exception("error while handling data from %r", self)
        # the head deadline runs from the first byte of a message to its end
        if not self._parser:
            self.partial_since = 0.0
        elif not self.partial_since:
            self.partial_since = now

    def eof_received(self) -> bool | None:
        return None  # close our side too

    # --- receiving --------------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        owner = self._owner
        counters = owner.counters
        counters.bytes_in += len(data)
        parser = self._parser
        try:
            items = parser.feed(data)
        except ParseError as exc:
            # The parser stops at the bad message: its buffer ends with the bytes it holds.
            held = len(parser)
            self._bad += data
            self._on_parse_error(bytes(self._bad[len(self._bad) - held :]), exc)
            return
        # Keep a copy of only what the parser still holds (usually nothing).
        held = len(parser)
        if held:
            self._bad += data
            del self._bad[: len(self._bad) - held]
        elif self._bad:
            self._bad.clear()
        deliver = owner._deliver
        for item in items:
            if type(item) is KeepAlive:
                if item.ping:
                    counters.keepalive_pings += 1
                    if self._transport is not None:
                        self._transport.write(_PONG)
                else:
                    counters.keepalive_pongs += 1
                continue
            deliver(item, self)  # type: ignore[arg-type]

    def _on_parse_error(self, held: bytes, exc: ParseError) -> None:
        """§18.3: the stream cannot be resynchronised; answer when possible, then close."""
        is_response = held.lstrip(b"\r\n").startswith((b"SIP/", b"sip/"))
        answered = not is_response and _answer(self, self._owner, held, exc)
        self._owner.counters.drop(drop_reason(exc), answered=answered)
        self._counted = True
        self.close()

    def write_message(self, message: Request | Response) -> None:
        """Serialise ``message`` onto the connection (a pipe hands over a copy instead)."""
        self.write(bytes(message))


def _answer(
    conn: StreamConnection | PipeEnd, owner: StreamTransport, data: bytes, exc: ParseError
) -> bool:
    """The 400 (or 513...) to a request that cannot be used (§21.4.1), on its connection;
    whether one was sent."""
    response = error_response(data, exc)
    if response is None or not conn.is_open:
        return False
    owner.counters.error_responses += 1
    conn.write(bytes(response))
    return True


class _PendingConnect:
    """What was sent to a place while its connection is being opened."""

    __slots__ = ("queue", "task")

    def __init__(self) -> None:
        self.queue: list[tuple[bytes, SendErrorCallback | None]] = []
        self.task: asyncio.Task[None] | None = None


class StreamTransport(BoundTransport):
    """A TCP or TLS listener with the table of its connections (incoming and outgoing).

    Create with :meth:`listen`. ``server_ssl`` makes it TLS; ``client_ssl`` is used for the
    connections it opens (default: :func:`ssl.create_default_context` for TLS).
    """

    __slots__ = (
        "_all",
        "_closed",
        "_connections",
        "_idle_handle",
        "_incoming",
        "_pending",
        "_per_source",
        "_server",
        "client_ssl",
        "connect_timeout",
        "counters",
        "exchange",
        "identity",
        "idle_timeout",
        "kind",
        "limits",
        "loop",
        "max_size",
        "peer_label",
        "peer_ssl",
        "sent_by",
        "sink",
        "tap",
        "values",
    )

    reliable: Final = True

    def __init__(
        self,
        kind: str,
        sink: MessageSink,
        *,
        client_ssl: ssl.SSLContext | None,
        max_size: int,
        idle_timeout: float,
        connect_timeout: float,
        limits: StreamLimits,
    ) -> None:
        self.kind = kind
        self.limits = limits
        self.sink = sink
        self.client_ssl = client_ssl
        self.max_size = max_size
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.loop = asyncio.get_running_loop()
        self.counters = TransportCounters()
        #: the parsed-value cache of its connections' parsers (:meth:`share` may replace it)
        self.values = ValueCache()
        self._connections: dict[tuple[str, int], StreamConnection | PipeEnd] = {}
        #: every open connection, also those no longer the newest to their place
        self._all: set[StreamConnection | PipeEnd] = set()
        self.exchange: LocalExchange | None = None
        self._pending: dict[tuple[str, int], _PendingConnect] = {}
        self._server: asyncio.Server | None = None
        self._family = socket.AF_INET
        self._local = ("", 0)
        self._advertised = ("", 0)
        self.sent_by = ""
        self._idle_handle: asyncio.TimerHandle | None = None
        self._closed = False
        #: accepted connections in total and by source IP (the caps of ``limits``)
        self._incoming = 0
        self._per_source: dict[str, int] = {}
        #: the client context toward a peer by the name it is checked for (a gateway's own
        #: trust, with or without our certificate); None or None returned: ``client_ssl``
        self.peer_ssl: Callable[[str], ssl.SSLContext | None] | None = None
        #: the ``peer`` label of a refused incoming TLS connection from an address (a
        #: gateway's name); default: the address
        self.peer_label: Callable[[str], str] | None = None
        #: the identity of the certificate this transport presents (TLS; pipes carry it)
        self.identity: PeerIdentity | None = None
        self.tap: MessageTap | None = None  # the SIP capture's hook (.trace_tap)

    @classmethod
    async def listen(
        cls,
        host: str,
        port: int,
        sink: MessageSink,
        *,
        kind: str = "TCP",
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        advertised_host: str | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
        idle_timeout: float | None = None,
        connect_timeout: float = 10.0,
        exchange: LocalExchange | None = None,
        limits: StreamLimits | None = None,
    ) -> StreamTransport:
        """Listen on ``host:port`` (IP literal; port 0 picks one) for ``kind`` (TCP or TLS).

        ``limits`` default to :class:`StreamLimits`'s; ``idle_timeout``, when given,
        overrides theirs.

        TLS without ``server_ssl`` is a client-only transport: it accepts no connections, its
        sent-by has no port and responses come back on the connections it opens (§18.2.2).
        """
        kind = kind.upper()
        if kind not in ("TCP", "TLS"):
            raise ValueError(f"not a stream transport: {kind!r}")
        if kind == "TCP" and server_ssl is not None:
            raise ValueError("server_ssl given for TCP")
        if kind == "TLS" and client_ssl is None:
            client_ssl = ssl.create_default_context()
        if limits is None:
            limits = StreamLimits()
        self = cls(
            kind,
            sink,
            client_ssl=client_ssl,
            max_size=max_size,
            idle_timeout=limits.idle_timeout if idle_timeout is None else idle_timeout,
            connect_timeout=connect_timeout,
            limits=limits,
        )
        host = bare_host(host)
        self._family = family_of(host)
        advertised = bare_host(advertised_host or host)
        if kind == "TLS" and server_ssl is None:
            self._local = (host, 0)
            self._advertised = (advertised, 0)
            self.sent_by = via_host(advertised)
        else:
            tls_context = server_ssl
            self._server = await self.loop.create_server(
                (lambda: StreamConnection(self, incoming=True))
                if tls_context is None
                else (lambda: sip_accept(self, StreamConnection(self, incoming=True), tls_context)),
                host,
                port,
                family=self._family,
                reuse_address=True,
                backlog=1024,
            )
            bound = self._server.sockets[0].getsockname()[1]
            self._local = (host, bound)
            self._advertised = (advertised, bound)
            self.sent_by = f"{via_host(advertised)}:{bound}"
        self.identity = identity_of(server_ssl) or identity_of(client_ssl)
        self._arm_idle()
        if exchange is not None:
            self.exchange = exchange
            exchange.add(self)
        return self

    # --- Transport protocol ----------------------------------------------------------------

    @property
    def connections(self) -> int:
        return len(self._all)

    def connection_to(self, host: str, port: int) -> StreamConnection | PipeEnd | None:
        """The open connection to (host, port), if any (§18.1.1 reuse)."""
        conn = self._connections.get((host, port))
        return conn if conn is not None and conn.is_open else None

    def send(
        self,
        data: bytes,
        host: str,
        port: int,
        *,
        server_name: str | None = None,
        on_error: SendErrorCallback | None = None,
    ) -> None:
        """Write on the connection to (host, port), opening one first when there is none."""
        key = (host, port)
        conn = self._connections.get(key)
        if conn is not None and conn.is_open:
            try:
                conn.write(data)
            except TransportError as exc:
                self._failed(exc, on_error)
            return
        if self._closed:
            self._failed(TransportError("transport closed"), on_error)
            return
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _PendingConnect()
            pending.task = self.loop.create_task(self._connect(key, server_name, pending))
        pending.queue.append((data, on_error))

    def send_message(
        self,
        message: Request | Response,
        host: str,
        port: int,
        *,
        server_name: str | None = None,
        on_error: SendErrorCallback | None = None,
    ) -> None:
        """``send(bytes(message), ...)``, except toward a listener of this process (a
        :class:`~hybridvoice.net.pipe.LocalExchange` given at :meth:`listen`): a pipe then
        carries a copy of the message, with no serialising, socket or parse."""
        key = (host, port)
        conn = self._connections.get(key)
        if conn is None or not conn.is_open:
            exchange = self.exchange
            server = None if exchange is None else exchange.find(self.kind, host, port)
            if server is None or self._closed or server._closed:
                self.send(bytes(message), host, port, server_name=server_name, on_error=on_error)
                return
            assert exchange is not None
            refused = exchange.refusal(self, server, server_name or host)
            if refused is not None:
                self.tls_refused(server_name or host, "name-mismatch", refused)
                self._failed(TransportError(refused), on_error)
                return
            conn = exchange.connect(self, server)
            self._connections[key] = conn
        try:
            conn.write_message(message)
        except TransportError as exc:
            self._failed(exc, on_error)

    def _deliver(self, item: Request | Response, conn: StreamConnection | PipeEnd) -> None:
        """A message framed off ``conn`` (or handed over a pipe): §18.2.1 and §18.1.2, then
        to the sink with its :class:`Source`."""
        counters = self.counters
        if (tap := self.tap) is not None and type(conn) is StreamConnection:  # pipes: at write
            tap(self.kind, (conn.host, conn.port), conn.local, bytes(item), False, item.call_id)
        if type(item) is Request:
            try:
                via = stamp_via(item, conn.host, conn.port)
                if via is None:
                    raise ParseError("no Via header", kind="missing_header")
                check_cseq(item)
            except ParseError as exc:
                counters.drop(drop_reason(exc), answered=_answer(conn, self, bytes(item), exc))
                return
            counters.messages_in += 1
            reply = response_address(via, reliable=True)
            self.sink.on_request(item, Source(self, conn.host, conn.port, conn, reply))
            return
        assert isinstance(item, Response)
        try:
            ours = via_is_ours(item.top_via, self)
        except ParseError:
            ours = False
        if not ours:
            counters.drop("via_mismatch")
            return
        if item.cseq is None:
            counters.drop("missing_header")
            return
        counters.messages_in += 1
        self.sink.on_response(item, Source(self, conn.host, conn.port, conn))

    def share(self, *, values: ValueCache | None = None, batch: object = None) -> None:
        """Use ``values`` (shared with the other transports the assembly wires it to) for its
        connections, those open and those to come; a stream transport has no send batch."""
        if values is not None:
            self.values = values
            for conn in self._all:
                if type(conn) is StreamConnection:
                    conn._parser.values = values

    def close(self) -> None:
        """Stop listening, close every connection and cancel pending connects."""
        if self._closed:
            return
        self._closed = True
        if self.exchange is not None:
            self.exchange.remove(self)
        if self._server is not None:
            self._server.close()
        if self._idle_handle is not None:
            self._idle_handle.cancel()
        for pending in list(self._pending.values()):
            if pending.task is not None:
                pending.task.cancel()
        for conn in list(self._all):
            conn.close()

    async def wait_closed(self) -> None:
        if self._server is not None:
            await self._server.wait_closed()

    def __repr__(self) -> str:
        return f"<StreamTransport {self.kind} {self.sent_by}>"

    # --- connections -----------------------------------------------------------------------

    def tls_refused(self, peer: str, reason: RefusalReason, detail: str) -> None:
        """Count and log a TLS peer refused (``peer``: an address or a name, labelled by
        ``peer_label``)."""
        label = peer if self.peer_label is None else self.peer_label(peer)
        count_refusal(self.counters.tls_refused, label, reason, detail)

    def _admit(self, host: str) -> bool:
        """Whether a connection just accepted from ``host`` may stay (the caps of
        ``limits``); counted as a drop when it may not. Admitted ones are counted until
        :meth:`_unregister`."""
        limits = self.limits
        if self._incoming >= limits.max_connections:
            self.counters.drop("connection_limit")
            return False
        per_source = self._per_source
        held = per_source.get(host, 0)
        if held >= limits.max_per_source:
            self.counters.drop("source_limit")
            return False
        per_source[host] = held + 1
        self._incoming += 1
        return True

    def _register(self, conn: StreamConnection | PipeEnd) -> None:
        self.counters.connections_opened += 1
        # the newest connection to a place wins; the older one stays usable by its Source
        self._connections[(conn.host, conn.port)] = conn
        self._all.add(conn)

    def _unregister(self, conn: StreamConnection | PipeEnd) -> None:
        self.counters.connections_closed += 1
        key = (conn.host, conn.port)
        if self._connections.get(key) is conn:
            del self._connections[key]
        self._all.discard(conn)
        if type(conn) is StreamConnection and conn.incoming:
            conn.incoming = False
            self._incoming -= 1
            left = self._per_source.get(conn.host, 1) - 1
            if left:
                self._per_source[conn.host] = left
            else:
                self._per_source.pop(conn.host, None)

    def _failed(self, exc: Exception, on_error: SendErrorCallback | None) -> None:
        self.counters.send_errors += 1
        if on_error is not None:
            on_error(exc)

    async def _connect(
        self, key: tuple[str, int], server_name: str | None, pending: _PendingConnect
    ) -> None:
        host, port = key
        tls = self.kind == "TLS"
        name = server_name or host
        context = self.client_ssl
        if tls and self.peer_ssl is not None:
            context = self.peer_ssl(name) or context
        try:
            try:
                _, proto = await asyncio.wait_for(
                    self.loop.create_connection(
                        lambda: StreamConnection(self),
                        host,
                        port,
                        local_addr=outgoing_source(self._local[0], host),
                        ssl=context if tls else None,
                        server_hostname=name if tls else None,
                        ssl_handshake_timeout=self.limits.head_timeout if tls else None,
                    ),
                    self.connect_timeout,
                )
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                log.info("%s connect to %s:%d failed: %s", self.kind, host, port, exc)
                if tls and isinstance(exc, ssl.SSLError):
                    self.tls_refused(name, refusal_reason(exc), f"{host}:{port}: {exc}")
                failure = TransportError(f"connect to {host}:{port}: {exc}")
                failure.__cause__ = exc  # the TLS verdict, for whoever reports the failure
                for _, on_error in pending.queue:
                    self._failed(failure, on_error)
                return
            # the table is keyed by the address we asked for, so that the next send finds it
            self._connections[key] = proto
            for data, on_error in pending.queue:
                try:
                    proto.write(data)
                except TransportError as exc:
                    self._failed(exc, on_error)
        finally:
            if self._pending.get(key) is pending:
                del self._pending[key]

    def _arm_idle(self) -> None:
        interval = max(0.05, min(self.idle_timeout, self.limits.head_timeout) / 4)
        self._idle_handle = self.loop.call_later(interval, self._on_sweep)

    def _on_sweep(self) -> None:
        self.sweep(self.loop.time())
        if not self._closed:
            self._arm_idle()

    def sweep(self, now: float) -> None:
        """Close the connections idle for ``idle_timeout`` seconds and those whose message
        is not complete ``limits.head_timeout`` seconds after its first byte (one timer for
        all of them; a quarter of the shorter timeout late at most)."""
        idle_limit = now - self.idle_timeout
        head_limit = now - self.limits.head_timeout
        for conn in list(self._all):
            if conn.partial_since and conn.partial_since < head_limit:
                log.info(
                    "%r: no complete message in %.1f s, closed", conn, now - conn.partial_since
                )
                conn.close_timed_out()
            elif conn.last_active < idle_limit:
                self.counters.idle_closed += 1
                conn.close()
