"""SIP over UDP (RFC 3261 §18.1.1, §18.2.1, §18.3 datagram framing; RFC 3581 rport).

One non-blocking socket per listen address with large kernel buffers. Reading is a drain loop
on ``loop.add_reader`` that reads until EAGAIN (bounded per wake-up so a flood cannot starve the
loop), and sending is ``sock.sendto`` straight away; asyncio's ``DatagramProtocol`` costs several
times more per packet (PERFORMANCE.md). A datagram that does not parse is counted and dropped,
and answered 400/505/513 when its request line and top Via can be read; nothing raised while
handling a datagram leaves the reader.

No state is shared through the module: each transport parses with its own (or the given)
:class:`~hybridvoice.sip.value_cache.ValueCache`, and holds its sends in its own (or the
given) :class:`SendBatch`; transports that share a batch go out together.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from hybridvoice.sip.errors import ParseError
from hybridvoice.sip.message import Request, Response
from hybridvoice.sip.parser import parse_message
from hybridvoice.sip.value_cache import ValueCache

from .transport import (
    DEFAULT_BUFFER_SIZE,
    DEFAULT_MAX_SIZE,
    BoundTransport,
    MessageSink,
    SendErrorCallback,
    Source,
    TransportCounters,
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

if TYPE_CHECKING:
    from .trace_tap import MessageTap

__all__ = ["SendBatch", "UdpTransport", "share_between"]

log = logging.getLogger(__name__)

#: Datagrams read per wake-up before yielding to the loop.
_BATCH: Final = 256
#: The largest UDP payload (IPv4: 65,507; IPv6 without jumbograms: 65,527).
_RECV_SIZE: Final = 65536
#: First bytes of a datagram that may be a keep-alive (CRLFs, or NULs some phones send).
_KEEPALIVE_START: Final = frozenset((b"\r", b"\n", b"\x00", b""))
#: Datagrams kept while the kernel send buffer is full, before dropping.
_SEND_QUEUE_LIMIT: Final = 4096


class SendBatch:
    """Datagrams sent while a UDP transport sharing this batch handles a readable event:
    they go out together when its drain loop ends, in order. A burst of ``sendto`` wakes the
    peer once instead of once per datagram (on loopback the waking costs the sender several
    times the ``sendto`` itself); the messages leave within the same loop iteration. One per
    transport unless whoever builds the transports gives them one to share (all run on the
    same loop)."""

    __slots__ = ("active", "items")

    def __init__(self) -> None:
        self.active = False
        self.items: list[tuple[UdpTransport, bytes, tuple[str, int], SendErrorCallback | None]] = []

    def flush(self) -> None:
        while items := self.items:
            self.items = []
            for transport, data, address, on_error in items:
                try:
                    transport._send_now(data, address, on_error)
                except Exception:  # an error callback's bug must not lose the others
                    transport.counters.drop("internal_error")
                    log.exception("error while sending to %s", address)


def _set_buffers(sock: socket.socket, size: int) -> None:
    """Ask for ``size``-byte kernel buffers; as root, past ``net.core.[rw]mem_max``."""
    for force, plain in ((33, socket.SO_RCVBUF), (32, socket.SO_SNDBUF)):  # SO_*BUFFORCE
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, size)
        except OSError:
            try:
                sock.setsockopt(socket.SOL_SOCKET, plain, size)
            except OSError:
                log.warning("cannot set socket buffer option %d to %d", plain, size)


class UdpTransport(BoundTransport):
    """One UDP socket bound to ``host:port`` (an IP literal; port 0 picks a free port)."""

    __slots__ = (
        "_batch",
        "_closed",
        "_loop",
        "_max_size",
        "_queue",
        "_sink",
        "_sock",
        "counters",
        "sent_by",
        "tap",
        "values",
    )

    kind: Final = "UDP"
    reliable: Final = False

    def __init__(
        self,
        host: str,
        port: int,
        sink: MessageSink,
        *,
        advertised_host: str | None = None,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        max_size: int = DEFAULT_MAX_SIZE,
        values: ValueCache | None = None,
        batch: SendBatch | None = None,
    ) -> None:
        """Bind and start reading; must be called with the event loop running. ``values``:
        the memo of parsed header values (default: its own); ``batch``: the send batch it
        shares with other transports of the loop (default: its own)."""
        host = bare_host(host)
        self._family = family_of(host)
        sock = socket.socket(self._family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if self._family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            _set_buffers(sock, buffer_size)
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._local: tuple[str, int] = (host, sock.getsockname()[1])
        self._advertised = (bare_host(advertised_host or host), self._local[1])
        self.sent_by = f"{via_host(self._advertised[0])}:{self._advertised[1]}"
        self._sink = sink
        self._max_size = max_size
        self._queue: collections.deque[tuple[bytes, tuple[str, int]]] = collections.deque()
        self._closed = False
        self.counters = TransportCounters()
        self.values = values if values is not None else ValueCache()
        self._batch = batch if batch is not None else SendBatch()
        #: the SIP capture's hook (:mod:`.trace_tap`); None: no capture
        self.tap: MessageTap | None = None
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._on_readable)

    # --- Transport protocol ----------------------------------------------------------------

    def send_message(
        self,
        message: Request | Response,
        host: str,
        port: int,
        *,
        server_name: str | None = None,
        on_error: SendErrorCallback | None = None,
    ) -> None:
        """Serialise ``message`` and :meth:`send` it (a datagram never crosses a pipe)."""
        self.send(bytes(message), host, port, server_name=server_name, on_error=on_error)

    def send(
        self,
        data: bytes,
        host: str,
        port: int,
        *,
        server_name: str | None = None,
        on_error: SendErrorCallback | None = None,
    ) -> None:
        """``sendto`` now, or at the end of the current drain loop (see :class:`SendBatch`);
        when the kernel buffer is full, queue and send when writable."""
        tap = self.tap
        if tap is not None:
            tap("UDP", self._local, (host, port), data, True, None)
        held = self._batch
        if held.active:
            held.items.append((self, data, (host, port), on_error))
            return
        self._send_now(data, (host, port), on_error)

    def _send_now(
        self, data: bytes, address: tuple[str, int], on_error: SendErrorCallback | None
    ) -> None:
        counters = self.counters
        if self._queue:
            self._enqueue(data, address, on_error)
            return
        try:
            self._sock.sendto(data, address)
        except (BlockingIOError, InterruptedError):
            self._enqueue(data, address, on_error)
            self._loop.add_writer(self._sock.fileno(), self._on_writable)
            return
        except OSError as exc:
            counters.send_errors += 1
            if on_error is not None:
                on_error(exc)
            return
        counters.messages_out += 1
        counters.bytes_out += len(data)

    def share(self, *, values: ValueCache | None = None, batch: SendBatch | None = None) -> None:
        """Use ``values`` and ``batch``, shared with the other transports the assembly wires
        them to (a B2BUA's two sides: the sends its reading side causes on the other go out
        together); between events only."""
        if self._batch.active:
            raise RuntimeError("a UDP transport changes its send batch only between events")
        if values is not None:
            self.values = values
        if batch is not None:
            self._batch = batch

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._sock.fileno())
        if self._queue:
            self._loop.remove_writer(self._sock.fileno())
            self._queue.clear()
        self._sock.close()

    def __repr__(self) -> str:
        return f"<UdpTransport {self.sent_by}>"

    # --- sending when the kernel buffer was full ----------------------------------------------

    def _enqueue(
        self, data: bytes, address: tuple[str, int], on_error: SendErrorCallback | None
    ) -> None:
        if len(self._queue) >= _SEND_QUEUE_LIMIT:
            self.counters.drop("send_queue_full")
            if on_error is not None:
                on_error(BlockingIOError("UDP send queue full"))
            return
        self._queue.append((data, address))

    def _on_writable(self) -> None:
        queue = self._queue
        sendto = self._sock.sendto
        counters = self.counters
        while queue:
            data, address = queue[0]
            try:
                sendto(data, address)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                counters.send_errors += 1
            else:
                counters.messages_out += 1
                counters.bytes_out += len(data)
            queue.popleft()
        self._loop.remove_writer(self._sock.fileno())

    # --- receiving -------------------------------------------------------------------------

    def _on_readable(self) -> None:
        """Drain the socket until EAGAIN (or one batch); never raises."""
        held = self._batch
        if held.active:  # re-entered (a nested loop): read as before, the outer one flushes
            self._drain()
            return
        held.active = True
        try:
            self._drain()
        finally:
            held.active = False
            held.flush()

    def _drain(self) -> None:
        recvfrom = self._sock.recvfrom
        for _ in range(_BATCH):
            try:
                data, address = recvfrom(_RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # e.g. an ICMP error queued on the socket; the next read goes on
                self.counters.drop("socket_error")
                continue
            try:
                self._on_datagram(data, address[0], address[1])
            except Exception:  # the reader must survive a bug above it
                self.counters.drop("internal_error")
                log.exception("error while handling a datagram from %s", address)

    def _on_datagram(self, data: bytes, host: str, port: int) -> None:
        counters = self.counters
        counters.bytes_in += len(data)
        if data[:1] in _KEEPALIVE_START and not data.strip(b"\r\n\x00"):
            counters.keepalive_pings += 1  # CRLF or NUL keep-alives: nothing to answer
            return
        if len(data) > self._max_size:
            too_large = ParseError("datagram too large", 513, kind="oversized")
            self._malformed(data, host, port, too_large)
            return
        via = None
        try:
            message = parse_message(data, self.values)
            if isinstance(message, Request):
                via = stamp_via(message, host, port)
                if via is None:
                    raise ParseError("no Via header", kind="missing_header")
                check_cseq(message)
            elif not via_is_ours(message.top_via, self):
                counters.drop("via_mismatch")
                return
            else:
                check_cseq(message)
        except ParseError as exc:
            self._malformed(data, host, port, exc)
            return
        counters.messages_in += 1
        tap = self.tap
        if tap is not None:
            tap("UDP", (host, port), self._local, data, False, message.call_id)
        if isinstance(message, Request):
            assert via is not None
            reply = response_address(via, reliable=False)
            self._sink.on_request(message, Source(self, host, port, None, reply))
        else:
            self._sink.on_response(message, Source(self, host, port))

    def _malformed(self, data: bytes, host: str, port: int, exc: ParseError) -> None:
        """Count and drop by the defect's kind; answer when the request line and top Via
        are readable (§21.4)."""
        response = error_response(data, exc)
        via = None
        if response is not None:
            try:
                via = stamp_via(response, host, port)
            except ParseError:
                via = None
        self.counters.drop(drop_reason(exc), answered=via is not None)
        if response is None or via is None:
            return
        target_host, target_port = response_address(via, reliable=False)
        self.counters.error_responses += 1
        self.send(bytes(response), target_host, target_port)


def share_between(
    transports: Iterable[object],
    values: ValueCache | None = None,
    batch: SendBatch | None = None,
) -> tuple[ValueCache, SendBatch]:
    """Give every transport of ``transports`` one value cache, and the UDP ones one send batch
    (the given ones, or new ones; a stream transport's connections use the cache too, pipes
    the cache of the sender); returns them for transports opened later (the assembly's)."""
    values = values if values is not None else ValueCache()
    batch = batch if batch is not None else SendBatch()
    for transport in transports:
        share = getattr(transport, "share", None)
        if share is not None:
            share(values=values, batch=batch)
    return values, batch
