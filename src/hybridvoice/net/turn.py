"""The TURN relay's asyncio adapter (RFC 8656 over UDP): sockets and one timer, no logic.

One non-blocking UDP listener (3478 in production) and one UDP socket per allocation on a
port of the relay range, each read with ``loop.add_reader`` and drained a batch at a time.
Every datagram goes to the sans-IO core (:class:`hybridvoice.media.turn.TurnServer`) with
``loop.time()`` as ``now``; its actions are carried out here (send from the listener, send
from a relay socket, start reading a relay port). The port allocator given to the core binds
the relay socket when it hands a port out (a port taken by another program is skipped) and
closes it when the core gives it back. One loop timer follows ``next_deadline()``; it is
re-armed after requests and expiry (data never moves a deadline).
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
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


class RelaySockets:
    """The core's relay port allocator: a port range whose ports are bound UDP sockets."""

    __slots__ = ("_loop", "_range", "host", "relay", "sockets")

    def __init__(self, loop: asyncio.AbstractEventLoop, host: str, first: int, last: int):
        self._loop = loop
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
            self._loop.remove_reader(sock.fileno())
            sock.close()
        self._range.release(port)

    def start_reading(self, port: int) -> None:
        sock = self.sockets[port]
        relay = self.relay
        assert relay is not None
        self._loop.add_reader(sock.fileno(), relay._read_relay, port, sock)


class TurnRelay:
    """A running TURN relay: listener, relay sockets, timer (built by :meth:`open`)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        server: TurnServer,
        listener: socket.socket,
        sockets: RelaySockets,
    ) -> None:
        self._loop = loop
        self.server = server
        self.listener = listener
        self.sockets = sockets
        self.send_errors = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        sockets.relay = self
        loop.add_reader(listener.fileno(), self._read_listener)

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
        sockets = RelaySockets(loop, relay_host, *ports)
        server = TurnServer(config, credentials, sockets, rng or random.Random())
        return cls(loop, server, _udp_socket(*listen, buffer=_LISTENER_BUFFER), sockets)

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
            self._loop.remove_reader(self.listener.fileno())
            self.listener.close()

    # -- reading -------------------------------------------------------------------------
    def _read_listener(self) -> None:
        server = self.server
        now = self._loop.time()
        rearm = False
        for _ in range(_BATCH):
            try:
                data, addr = self.listener.recvfrom(_RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # ICMP errors surface here on Linux
                log.debug("TURN listener: %s", exc)
                continue
            client = (str(addr[0]), int(addr[1]))
            self._perform(server.from_client(data, client, now))
            # a STUN request (not ChannelData, not an indication) may move a deadline
            if data[:1] < b"\x40" and len(data) > 1 and not (data[1] & 0x10 and not data[0] & 1):
                rearm = True
        if rearm:
            self._rearm()

    def _read_relay(self, port: int, sock: socket.socket) -> None:
        server = self.server
        now = self._loop.time()
        for _ in range(_BATCH):
            try:
                data, addr = sock.recvfrom(_RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                log.debug("TURN relay port %d: %s", port, exc)
                if sock.fileno() < 0:
                    break
                continue
            self._perform(server.from_peer(port, data, (str(addr[0]), int(addr[1])), now))

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
