"""The TURN relay's asyncio adapter (RFC 8656 §3.1: UDP and TCP): sockets and one timer.

One non-blocking UDP listener (3478 in production), optionally a TCP listener on the same
port, and one UDP socket per allocation on a port of the relay range. On Linux all of the
UDP sockets sit in one level-triggered ``select.epoll`` whose fd is the only one given to
``loop.add_reader`` (as the RTP relay does, :mod:`hybridvoice.net.relay`): each wake-up
takes one datagram from every ready socket, so the loop's per-callback cost is paid once per
batch. Elsewhere (or with ``demux="reader"``) each socket has its own reader, drained a batch
at a time; ``"reader1"`` reads one datagram per call (measured slower: benchmarks only).
Every datagram goes to the sans-IO core (:class:`hybridvoice.media.turn.TurnServer`) with
``loop.time()`` as ``now``; its actions are carried out here (send from the listener, send
from a relay socket, start reading a relay port). The port allocator given to the core binds
the relay socket when it hands a port out (a port taken by another program is skipped) and
closes it when the core gives it back. One loop timer follows ``next_deadline()``; it is
re-armed after requests and expiry (data never moves a deadline).

ChannelData is the fast path both ways (RFC 8656 §12.4): datagrams are read with
``recvfrom_into`` into one buffer; from a client the 4-byte header is parsed here and the
core only says where the payload goes (:meth:`TurnServer.channel_route`), which is sent as a
``memoryview`` slice from the relay socket; from a peer the payload is read 4 bytes into the
buffer, the core gives the channel and client (:meth:`TurnServer.peer_route`) and the header
is packed in front of it. No message object, action or copy per packet; anything else goes
through the core's general entry points as bytes.

TCP (RFC 8656 §3.1): each connection's byte stream is cut into STUN messages (20-byte header
plus its length) and ChannelData (4-byte header plus its length, padded to 4 octets, RFC 8489
§6.2.2 and RFC 8656 §12.5), each handed to the core as a datagram from the connection's
address; answers and ChannelData to the client go back on the connection (ChannelData
padded). A closed connection ends its allocation (:meth:`TurnServer.client_gone`). The
relayed side stays UDP. A client is known by its address alone: a UDP client with the
address and port of a TCP client that has an allocation gets 437 from the core.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import select
import socket
import struct
from collections.abc import Callable
from typing import Final, cast

from hybridvoice.media.turn import TurnServer
from hybridvoice.media.turn_state import (
    Action,
    Addr,
    CloseRelay,
    Credentials,
    OpenRelay,
    RelayPortRange,
    ToClient,
    ToPeer,
    TurnConfig,
)

__all__ = ["RelaySockets", "TurnRelay"]

log = logging.getLogger(__name__)

_BATCH: Final = 64
_RECV_SIZE: Final = 65536
_LISTENER_BUFFER: Final = 4 << 20
#: Events taken from the epoll per wake-up.
_MAX_EVENTS: Final = 1024
#: A stream client holding more than this unframed is cut off (a frame is at most 64 KiB).
_MAX_STREAM_BUFFER: Final = 0x10000 + 8
_CHANNEL_HEADER: Final = struct.Struct("!HH")


def _udp_socket(host: str, port: int, buffer: int = 0) -> socket.socket:
    """A non-blocking UDP socket bound to ``(host, port)``; ``buffer``: kernel buffer size
    asked for (the listener takes every client's packets: short stalls must not drop)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF) if buffer else ():
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, buffer)
        except OSError:
            log.warning("cannot set socket buffer option %d to %d", option, buffer)
    return sock


class _Demux:
    """Readiness of the relay's sockets: one epoll behind one loop reader, or a reader each."""

    __slots__ = ("_ep", "_handlers", "_loop", "batch")

    def __init__(self, loop: asyncio.AbstractEventLoop, mode: str | None = None) -> None:
        self._loop = loop
        self._handlers: dict[int, Callable[[], None]] = {}
        if mode is None:
            mode = "epoll" if hasattr(select, "epoll") else "reader"
        self._ep = select.epoll() if mode == "epoll" else None
        #: datagrams a handler reads per call: one per ready socket with epoll, and with
        #: "reader1" (a loop reader per socket, level-triggered: called again while data waits)
        self.batch = _BATCH if mode == "reader" else 1
        if self._ep is not None:
            loop.add_reader(self._ep.fileno(), self._on_ready)

    def watch(self, sock: socket.socket, handler: Callable[[], None]) -> None:
        fd = sock.fileno()
        if self._ep is None:
            self._loop.add_reader(fd, handler)
            return
        self._handlers[fd] = handler
        self._ep.register(fd, select.EPOLLIN)

    def unwatch(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        if self._ep is None:
            self._loop.remove_reader(fd)
        elif self._handlers.pop(fd, None) is not None:
            self._ep.unregister(fd)

    def close(self) -> None:
        if self._ep is not None:
            self._loop.remove_reader(self._ep.fileno())
            self._ep.close()
            self._ep = None
        self._handlers.clear()

    def _on_ready(self) -> None:
        ep = self._ep
        if ep is None:
            return
        try:
            events = ep.poll(0, _MAX_EVENTS)
        except OSError:
            return
        handlers = self._handlers
        for fd, _ in events:
            handler = handlers.get(fd)
            if handler is not None:
                handler()


class RelaySockets:
    """The core's relay port allocator: a port range whose ports are bound UDP sockets."""

    __slots__ = ("_demux", "_range", "host", "relay", "sockets")

    def __init__(self, demux: _Demux, host: str, first: int, last: int):
        self._demux = demux
        self._range = RelayPortRange(first, last)
        self.host = host
        self.sockets: dict[int, socket.socket] = {}
        self.relay: TurnRelay | None = None

    def allocate(self, even: bool = False) -> int | None:
        skipped: list[int] = []
        try:
            while True:
                port = self._range.allocate(even)
                if port is None:
                    return None
                try:
                    self.sockets[port] = _udp_socket(self.host, port)
                except OSError:
                    skipped.append(port)  # in use by another program: try the next one
                    continue
                return port
        finally:
            for port in skipped:
                self._range.release(port)

    def allocate_pair(self) -> int | None:
        skipped: list[int] = []
        try:
            while True:
                port = self._range.allocate_pair()
                if port is None:
                    return None
                try:
                    self.sockets[port] = _udp_socket(self.host, port)
                except OSError:
                    skipped += (port, port + 1)
                    continue
                try:
                    self.sockets[port + 1] = _udp_socket(self.host, port + 1)
                except OSError:
                    self.sockets.pop(port).close()
                    skipped += (port, port + 1)
                    continue
                return port
        finally:
            for port in skipped:
                self._range.release(port)

    def release(self, port: int) -> None:
        sock = self.sockets.pop(port, None)
        if sock is not None:
            self._demux.unwatch(sock)
            sock.close()
        self._range.release(port)

    def start_reading(self, port: int) -> None:
        sock = self.sockets[port]
        relay = self.relay
        assert relay is not None
        self._demux.watch(sock, functools.partial(relay._read_relay, port, sock))


class _Stream(asyncio.Protocol):
    """One TCP client connection: cuts the stream into STUN messages and ChannelData."""

    def __init__(self, relay: TurnRelay) -> None:
        self._relay = relay
        self._pending = bytearray()
        self.transport: asyncio.Transport | None = None
        self.client: Addr = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they have its methods
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.client = (str(peer[0]), int(peer[1]))
        relay = self._relay
        per_source = relay._per_source
        if per_source.get(self.client[0], 0) >= relay.max_streams_per_source:
            relay._count("stream_source_limit")
            self.client = ("", 0)  # never registered: connection_lost leaves the others alone
            transport.close()
            return
        per_source[self.client[0]] = per_source.get(self.client[0], 0) + 1
        relay._streams[self.client] = self

    def data_received(self, data: bytes) -> None:
        pending = self._pending
        pending += data
        relay = self._relay
        while len(pending) >= 4:
            first = pending[0]
            length = pending[2] << 8 | pending[3]
            if first & 0xC0 == 0x40:  # ChannelData, padded to 4 octets on a stream
                size = 4 + length
                frame = (size + 3) & ~3
            elif first < 0x40:  # STUN: a 20-byte header and its attributes
                size = frame = 20 + length
            else:
                relay._count("stream_garbage")
                self.close()
                return
            if len(pending) < frame:
                break
            message = bytes(pending[:size])
            del pending[:frame]
            relay._from_stream(message, self.client)
        if len(pending) > _MAX_STREAM_BUFFER:
            relay._count("stream_overflow")
            self.close()

    def send(self, data: bytes | memoryview) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        pad = -len(data) % 4
        if pad and data[0] & 0xC0 == 0x40:  # ChannelData: pad to 4 octets (RFC 8656 §12.5)
            transport.write(bytes(data) + bytes(pad))
        else:
            transport.write(bytes(data))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._relay._stream_lost(self.client, self)


class TurnRelay:
    """A running TURN relay: listeners, relay sockets, timer (built by :meth:`open`)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        server: TurnServer,
        listener: socket.socket,
        sockets: RelaySockets,
        demux: _Demux,
    ) -> None:
        self._loop = loop
        self._demux = demux
        self.server = server
        self.listener = listener
        self.sockets = sockets
        self.send_errors = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._buf = bytearray(_RECV_SIZE + 8)
        self._view = memoryview(self._buf)
        #: where a peer datagram is read: after room for the ChannelData header
        self._payload = self._view[4:]
        self._streams: dict[Addr, _Stream] = {}
        self._tcp: asyncio.Server | None = None
        #: the adapter's own counts (stream framing errors, connections over the limit)
        self._counters: dict[str, int] = {}
        #: TCP connections a source IP may hold at once; more are closed at once
        self.max_streams_per_source = 16
        self._per_source: dict[str, int] = {}
        sockets.relay = self
        demux.watch(listener, self._read_listener)

    @classmethod
    async def open(
        cls,
        config: TurnConfig,
        credentials: Credentials,
        *,
        listen: Addr,
        relay_host: str,
        ports: tuple[int, int],
        rng: random.Random | None = None,
        tcp: bool = False,
        tcp_port: int | None = None,
        demux: str | None = None,
    ) -> TurnRelay:
        """Bind the listener on ``listen`` (UDP, and TCP on the same port when ``tcp``) and
        relay ports on ``relay_host`` in ``ports``; ``tcp_port``: another port for TCP (the
        edge: 443, RFC 8656 §3.1; 0 any free one). ``demux``: "epoll" (Linux default), "reader"
        (a loop reader per socket, drained a batch at a time) or "reader1" (one datagram per
        reader call)."""
        loop = asyncio.get_running_loop()
        listener = _udp_socket(*listen, buffer=_LISTENER_BUFFER)
        watcher = _Demux(loop, demux)
        sockets = RelaySockets(watcher, relay_host, *ports)
        server = TurnServer(config, credentials, sockets, rng or random.Random())
        relay = cls(loop, server, listener, sockets, watcher)
        if tcp:
            try:
                relay._tcp = await loop.create_server(
                    lambda: _Stream(relay),
                    relay.address[0],
                    relay.address[1] if tcp_port is None else tcp_port,
                )
            except OSError:
                relay.close()
                raise
        return relay

    @property
    def timer_deadline(self) -> float | None:
        """When the loop timer fires next (the core's ``next_deadline()`` when last armed)."""
        return self._timer_at

    @property
    def address(self) -> Addr:
        host, port = self.listener.getsockname()[:2]
        return str(host), int(port)

    def _count(self, name: str) -> None:
        self._counters[name] = self._counters.get(name, 0) + 1

    @property
    def counters(self) -> dict[str, int]:
        """The core's counters with the adapter's (stream errors, send errors)."""
        counts = dict(self.server.counters)
        for name, value in self._counters.items():
            counts[name] = counts.get(name, 0) + value
        if self.send_errors:
            counts["send_errors"] = self.send_errors
        return counts

    @property
    def tcp_address(self) -> Addr | None:
        """Where the TCP listener is bound (None: no TCP)."""
        if self._tcp is None or not self._tcp.sockets:
            return None
        host, port = self._tcp.sockets[0].getsockname()[:2]
        return str(host), int(port)

    @property
    def stream_clients(self) -> int:
        """TCP connections open now."""
        return len(self._streams)

    def close(self) -> None:
        if self._tcp is not None:
            self._tcp.close()
            self._tcp = None
        for stream in list(self._streams.values()):
            stream.close()
        self._streams.clear()
        self._perform(self.server.close())
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.listener.fileno() >= 0:
            self._demux.unwatch(self.listener)
            self.listener.close()
        self._demux.close()

    # -- reading -------------------------------------------------------------------------
    def _read_listener(self) -> None:
        """Datagrams from clients; ChannelData to a bound channel is sent on at once."""
        server = self.server
        buf = self._buf
        view = self._view
        recv = self.listener.recvfrom_into
        relay_sockets = self.sockets.sockets
        now = self._loop.time()
        rearm = False
        for _ in range(self._demux.batch):
            try:
                n, addr = recv(buf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # ICMP errors surface here on Linux
                log.debug("TURN listener: %s", exc)
                continue
            client = addr if len(addr) == 2 else addr[:2]  # IPv6: (host, port, flow, scope)
            first = buf[0] if n else 0
            if first & 0xC0 == 0x40 and n >= 4:
                length = buf[2] << 8 | buf[3]
                if 4 + length <= n:
                    route = server.channel_route(client, first << 8 | buf[1], length, now)
                    if route is not None:
                        sock = relay_sockets.get(route[0])
                        if sock is not None:
                            try:
                                sock.sendto(view[4 : 4 + length], route[1])
                            except OSError as exc:
                                self.send_errors += 1
                                log.debug("TURN send failed: %s", exc)
                        continue
            data = bytes(view[:n])
            self._perform(server.from_client(data, client, now))
            # a STUN request (not ChannelData, not an indication) may move a deadline
            if first < 0x40 and n > 1 and not (buf[1] & 0x10 and not first & 1):
                rearm = True
        if rearm:
            self._rearm()

    def _read_relay(self, port: int, sock: socket.socket) -> None:
        """Datagrams from peers; those of a bound channel go back as ChannelData at once."""
        server = self.server
        view = self._view
        recv = sock.recvfrom_into
        payload = self._payload
        now = self._loop.time()
        for _ in range(self._demux.batch):
            try:
                n, addr = recv(payload)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                log.debug("TURN relay port %d: %s", port, exc)
                if sock.fileno() < 0:
                    break
                continue
            peer = addr if len(addr) == 2 else addr[:2]
            route = server.peer_route(port, peer, n, now)
            if route is None:
                self._perform(server.from_peer(port, bytes(payload[:n]), peer, now))
                continue
            _CHANNEL_HEADER.pack_into(self._buf, 0, route[0], n)
            streams = self._streams
            try:
                if streams and route[1] in streams:
                    streams[route[1]].send(view[: 4 + n])
                else:
                    self.listener.sendto(view[: 4 + n], route[1])
            except OSError as exc:
                self.send_errors += 1
                log.debug("TURN send failed: %s", exc)

    # -- TCP clients ---------------------------------------------------------------------
    def _from_stream(self, data: bytes, client: Addr) -> None:
        now = self._loop.time()
        if data[0] & 0xC0 == 0x40:  # ChannelData: the fast path, as over UDP
            length = len(data) - 4
            route = self.server.channel_route(client, data[0] << 8 | data[1], length, now)
            if route is not None:
                sock = self.sockets.sockets.get(route[0])
                try:
                    if sock is not None:
                        sock.sendto(memoryview(data)[4:], route[1])
                except OSError as exc:
                    self.send_errors += 1
                    log.debug("TURN send failed: %s", exc)
                return
        self._perform(self.server.from_client(data, client, now))
        if data[0] < 0x40:
            self._rearm()

    def _stream_lost(self, client: Addr, stream: _Stream) -> None:
        if self._streams.get(client) is stream:
            del self._streams[client]
            left = self._per_source.get(client[0], 1) - 1
            if left > 0:
                self._per_source[client[0]] = left
            else:
                self._per_source.pop(client[0], None)
            self._perform(self.server.client_gone(client))
            self._rearm()

    # -- actions and the timer -----------------------------------------------------------
    def _perform(self, actions: list[Action]) -> None:
        for action in actions:
            try:
                if isinstance(action, ToPeer):
                    sock = self.sockets.sockets.get(action.port)
                    if sock is not None:
                        sock.sendto(action.data, action.addr)
                elif isinstance(action, ToClient):
                    stream = self._streams.get(action.addr) if self._streams else None
                    if stream is not None:
                        stream.send(action.data)
                    else:
                        self.listener.sendto(action.data, action.addr)
                elif isinstance(action, OpenRelay):
                    self.sockets.start_reading(action.port)
                elif isinstance(action, CloseRelay):
                    pass  # the allocator closed the socket when the core released the port
            except OSError as exc:
                self.send_errors += 1
                log.debug("TURN send failed: %s", exc)

    def _rearm(self) -> None:
        deadline = self.server.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = None
        self._perform(self.server.expire(self._loop.time()))
        self._rearm()
