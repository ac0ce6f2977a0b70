"""The TURN relay's asyncio adapter (RFC 8656 over UDP): sockets and one timer, no logic.

One non-blocking UDP listener (3478 in production) and one UDP socket per allocation on a
port of the relay range. On Linux all of them sit in one level-triggered ``select.epoll``
whose fd is the only one given to ``loop.add_reader`` (as the RTP relay does,
:mod:`hybridvoice.net.relay`): each wake-up takes one datagram from every ready socket, so
the loop's per-callback cost is paid once per batch. Elsewhere each socket has its own
reader, drained a batch at a time.
Every datagram goes to the sans-IO core (:class:`hybridvoice.media.turn.TurnServer`) with
``loop.time()`` as ``now``; its actions are carried out here (send from the listener, send
from a relay socket, start reading a relay port). The port allocator given to the core binds
the relay socket when it hands a port out (a port taken by another program is skipped) and
closes it when the core gives it back. One loop timer follows ``next_deadline()``; it is
re-armed after requests and expiry (data never moves a deadline).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import select
import socket
from collections.abc import Callable
from typing import Final

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

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handlers: dict[int, Callable[[], None]] = {}
        self._ep = select.epoll() if hasattr(select, "epoll") else None
        #: datagrams a handler reads per call: one per ready socket with epoll
        self.batch = 1 if self._ep is not None else _BATCH
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


class TurnRelay:
    """A running TURN relay: listener, relay sockets, timer (built by :meth:`open`)."""

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
    ) -> TurnRelay:
        """Bind the listener on ``listen`` and relay ports on ``relay_host`` in ``ports``."""
        loop = asyncio.get_running_loop()
        listener = _udp_socket(*listen, buffer=_LISTENER_BUFFER)
        demux = _Demux(loop)
        sockets = RelaySockets(demux, relay_host, *ports)
        server = TurnServer(config, credentials, sockets, rng or random.Random())
        return cls(loop, server, listener, sockets, demux)

    @property
    def timer_deadline(self) -> float | None:
        """When the loop timer fires next (the core's ``next_deadline()`` when last armed)."""
        return self._timer_at

    @property
    def address(self) -> Addr:
        host, port = self.listener.getsockname()[:2]
        return str(host), int(port)

    def close(self) -> None:
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
        server = self.server
        now = self._loop.time()
        rearm = False
        for _ in range(self._demux.batch):
            try:
                data, addr = self.listener.recvfrom(_RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # ICMP errors surface here on Linux
                log.debug("TURN listener: %s", exc)
                continue
            client = addr if len(addr) == 2 else addr[:2]  # IPv6: (host, port, flow, scope)
            self._perform(server.from_client(data, client, now))
            # a STUN request (not ChannelData, not an indication) may move a deadline
            if data[:1] < b"\x40" and len(data) > 1 and not (data[1] & 0x10 and not data[0] & 1):
                rearm = True
        if rearm:
            self._rearm()

    def _read_relay(self, port: int, sock: socket.socket) -> None:
        server = self.server
        now = self._loop.time()
        for _ in range(self._demux.batch):
            try:
                data, addr = sock.recvfrom(_RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                log.debug("TURN relay port %d: %s", port, exc)
                if sock.fileno() < 0:
                    break
                continue
            peer = addr if len(addr) == 2 else addr[:2]
            self._perform(server.from_peer(port, data, peer, now))

    # -- actions and the timer -----------------------------------------------------------
    def _perform(self, actions: list[Action]) -> None:
        for action in actions:
            try:
                if isinstance(action, ToPeer):
                    sock = self.sockets.sockets.get(action.port)
                    if sock is not None:
                        sock.sendto(action.data, action.addr)
                elif isinstance(action, ToClient):
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
