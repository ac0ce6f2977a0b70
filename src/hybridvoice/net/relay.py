"""The RTP/RTCP relay socket loop (RFC 3550 §11 port pairs, RFC 4961 symmetric RTP).

One non-blocking UDP socket per local port (4 per call: RTP and RTCP for legs A and B),
with large kernel buffers. Reading is driven by ``loop.add_reader``, in one of two ways:

- ``demux="epoll"`` (default on Linux): all media sockets sit in one level-triggered
  ``select.epoll`` whose fd is the only one given to ``loop.add_reader``. Each wake-up
  drains the ready set in one ``epoll_wait``: one datagram per ready socket (a socket with
  more queued stays ready and is served on the next pass), so the event loop's per-callback
  cost is paid once per batch instead of once per packet, and no EAGAIN is ever raised.
- ``demux="reader"``: one ``loop.add_reader`` per socket, each a drain loop reading until
  EAGAIN (bounded per wake-up).

Either way packets are read with ``recvfrom_into`` into one pre-allocated buffer shared by
the whole engine (the loop is single-threaded and every packet is forwarded before the next
is read), and forwarded with ``sendto`` from the peer leg's socket to that leg's latched
address (RFC 4961). The bytes sent are a pre-made ``memoryview`` slice of that buffer,
one per length, so relaying allocates nothing beyond what the kernel API forces (the
``(n, address)`` tuple); transcoding translates the payload in place. The bookkeeping
(latching, counters, sequence statistics, RTCP reports) is :mod:`hybridvoice.media.relay`.

STUN (RFC 7983: first byte 0..3): never relayed. On a leg with an ICE-lite agent
(:meth:`RelayCall.set_ice`, :class:`hybridvoice.media.ice_lite.IceLite`; the edge's anchor)
a Binding request is answered from the socket it reached, and a nominating check latches the
component to its source; elsewhere it is dropped and counted (``stun_dropped``). The test is
one byte compare per packet, before latching; everything else of the hot path is unchanged.

SRTP (RFC 3711): a path whose leg decrypts or encrypts (:meth:`RelayCall.set_crypto`) is a
"slow" path like RTCP's: the packet is copied out of the buffer, unprotected with the
receiving leg's keys before it may latch (a forged packet moves nothing), and protected with
the sending leg's keys. RTP <-> RTP paths keep the allocation-free hot path above.
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from hybridvoice.media import (
    DEFAULT_PORT_RANGE,
    Addr,
    CallStats,
    LatchPolicy,
    Leg,
    LegCrypto,
    LegState,
    PortBlock,
    PortPool,
    PortsExhaustedError,
    RelaySession,
    transcode_in_place,
)
from hybridvoice.media.ice_lite import IceLite

__all__ = ["EngineStats", "RelayCall", "RelayEngine"]

log = logging.getLogger(__name__)

#: Datagrams read per wake-up before yielding to the loop.
_BATCH: Final = 64
#: Receive buffer: any UDP payload fits.
_RECV_SIZE: Final = 65536
#: Pre-made views for lengths below this (every RTP packet in practice).
_VIEWS: Final = 2048
_BUFFER_SIZE: Final = 1 << 20
#: Sequence number and timestamp of an RTP header, read in one call (RFC 3550 §5.1).
_SEQ_TS: Final = struct.Struct("!HI").unpack_from
#: Events taken from the media epoll per wake-up.
_MAX_EVENTS: Final = 1024
#: Port blocks tried per call before giving up when ports are taken by other programs.
_BIND_ATTEMPTS: Final = 16


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


@dataclass(frozen=True, slots=True)
class EngineStats:
    calls: int
    ports_available: int
    packets: int
    bytes: int
    dropped: int
    send_errors: int
    rtcp_packets: int
    #: SRTP/SRTCP packets dropped: failed authentication, replayed (RFC 3711 §3.3)
    srtp_auth_failures: int = 0
    srtp_replays: int = 0
    #: STUN packets that reached a leg without an ICE agent (RFC 7983: never relayed)
    stun_dropped: int = 0


class _Path:
    """One direction out of one socket: packets read on ``inp``'s socket go out ``out``'s."""

    __slots__ = (
        "engine", "ice", "inp", "out", "recv", "rtcp", "send", "session", "slow", "sock"
    )  # fmt: skip

    def __init__(
        self, engine: RelayEngine, session: RelaySession, inp: LegState, out: LegState
    ) -> None:
        self.engine = engine
        self.session = session
        self.inp = inp
        self.out = out
        self.sock: socket.socket | None = None
        self.send: Callable[..., int] | None = None
        self.recv: Callable[[bytearray], tuple[int, Addr]] | None = None
        self.rtcp = False
        self.slow = False  # RTCP, or RTP with SRTP work on either leg: :meth:`on_slow`
        self.ice: IceLite | None = None  # answers STUN checks on ``inp``'s socket

    def on_stun(self, data: bytes, src: Addr) -> None:
        """A STUN packet (RFC 7983) on ``inp``'s socket: answered by the leg's ICE agent from
        this socket, never relayed; a nominating check latches the component to ``src``."""
        ice = self.ice
        if ice is None:
            self.engine.stun_dropped += 1
            return
        component = 2 if self.rtcp else 1
        reply, nominated = ice.on_stun(data, src, component, time.monotonic())
        if reply is not None:
            try:
                self.sock.sendto(reply, src)  # type: ignore[union-attr]
            except OSError:
                self.engine.send_errors += 1
        if nominated:
            self.select(src)

    def select(self, src: Addr) -> None:
        """Send this component's media to ``src`` (ICE nomination); RTP from elsewhere no
        longer moves it (the latching window is spent)."""
        inp = self.inp
        if self.rtcp:
            inp.rtcp_remote = src
            inp.rtcp_mark = inp.rtcp_packets - inp.policy.window
        else:
            inp.rtp_remote = src
            inp.rtp_mark = inp.packets - inp.policy.window

    def update(self) -> None:
        """Pick the hot or the slow path after the legs' SRTP keys changed."""
        self.slow = self.rtcp or self.inp.srtp_in is not None or self.out.srtp_out is not None

    def on_slow(self) -> None:
        """The epoll demux: RTCP drains its socket; SRTP takes one datagram, as the hot path
        does (level-triggered: a socket with more queued is ready again on the next pass,
        and no EAGAIN is raised per packet)."""
        if self.rtcp:
            self.on_rtcp()
        else:
            self.on_srtp(1)

    def on_srtp(self, reads: int = 0) -> None:
        """Read up to ``reads`` datagrams (0: the engine's batch, draining) from the RTP
        socket of ``inp`` when either leg speaks SRTP: unprotect with ``inp``'s keys,
        transcode, protect with ``out``'s keys. Failures are counted by the legs' streams
        (authentication, replay) and the packet dropped."""
        engine = self.engine
        recv = self.recv
        send = self.send
        assert recv is not None and send is not None
        buf = engine._buf
        view = engine._view
        inp = self.inp
        out = self.out
        now = engine._clock()
        for _ in range(reads or engine.reads_per_wakeup):
            try:
                n, src = recv(buf)
            except BlockingIOError:
                return
            except OSError:
                engine.recv_errors += 1
                return
            packet = bytes(view[:n])
            if buf[0] < 4:  # STUN (RFC 7983)
                self.on_stun(packet, src)
                continue
            srtp_in = inp.srtp_in
            if srtp_in is not None:
                plain = srtp_in.rtp(packet)
                if plain is None:
                    continue
                packet = plain
            if src != inp.rtp_remote and not inp.latch_rtp(src):
                continue
            inp.on_rtp(packet, n, now)
            dst = out.rtp_remote
            if dst is None:
                inp.dropped += 1
                continue
            if inp.transcoder is not None:
                changed = bytearray(packet)
                transcode_in_place(changed, len(changed), inp.transcoder)
                packet = bytes(changed)
            srtp_out = out.srtp_out
            if srtp_out is not None:
                protected = srtp_out.rtp(packet)
                if protected is None:
                    inp.dropped += 1
                    continue
                packet = protected
            try:
                send(packet, dst)
            except OSError:
                engine.send_errors += 1

    def on_rtp(self) -> None:
        """Drain the RTP socket of ``inp`` and forward to ``out`` (the hot path)."""
        if self.slow:
            self.on_srtp()
            return
        engine = self.engine
        recv = self.sock.recvfrom_into  # type: ignore[union-attr]
        send = self.send
        buf = engine._buf
        views = engine._views
        inp = self.inp
        out = self.out
        update = inp.stats.update
        seq_ts = _SEQ_TS
        transcoder = inp.transcoder
        now = engine._clock()
        track = engine.sequence_stats
        for _ in range(engine.reads_per_wakeup):
            try:
                n, src = recv(buf)
            except BlockingIOError:
                return
            except OSError:
                engine.recv_errors += 1
                return
            if buf[0] < 4:  # STUN (RFC 7983)
                self.on_stun(bytes(engine._view[:n]), src)
                continue
            if src != inp.rtp_remote and not inp.latch_rtp(src):
                continue
            inp.packets += 1
            inp.bytes += n
            if n >= 12 and track:
                seq, ts = seq_ts(buf, 2)
                update(seq, ts, now)
            dst = out.rtp_remote
            if dst is None:
                inp.dropped += 1
                continue
            if transcoder is not None:
                transcode_in_place(buf, n, transcoder)
            try:
                send(views[n] if n < _VIEWS else engine._view[:n], dst)  # type: ignore[misc]
            except OSError:
                engine.send_errors += 1

    def on_rtcp(self) -> None:
        """Drain the RTCP socket of ``inp``: read its reports, forward to ``out``."""
        engine = self.engine
        sock = self.sock
        assert sock is not None and self.send is not None
        inp = self.inp
        for _ in range(_BATCH):
            try:
                data, src = sock.recvfrom(_RECV_SIZE)
            except BlockingIOError:
                return
            except OSError:
                engine.recv_errors += 1
                return
            if data and data[0] < 4:  # STUN (RFC 7983)
                self.on_stun(data, src)
                continue
            if inp.srtp_in is not None:
                plain = inp.srtp_in.rtcp(data)
                if plain is None:
                    continue
                data = plain
            if src != inp.rtcp_remote and not inp.latch_rtcp(src):
                continue
            inp.on_rtcp(data, engine._clock())
            dst = self.out.rtcp_remote
            if dst is None:
                inp.rtcp_dropped += 1
                continue
            srtp_out = self.out.srtp_out
            if srtp_out is not None:
                protected = srtp_out.rtcp(data)
                if protected is None:
                    inp.rtcp_dropped += 1
                    continue
                data = protected
            try:
                self.send(data, dst)
            except OSError:
                engine.send_errors += 1


class RelayCall:
    """One anchored call: four sockets, two legs (A: cloud/edge side, B: gateway side)."""

    __slots__ = ("_fds", "_paths", "_socks", "block", "call_id", "host", "session")

    def __init__(self, call_id: str, host: str, block: PortBlock, session: RelaySession) -> None:
        self.call_id = call_id
        self.host = host
        self.block = block
        self.session = session
        self._socks: list[socket.socket] = []
        self._fds: list[int] = []
        self._paths: list[_Path] = []

    def local(self, leg: Leg) -> tuple[str, int, int]:
        """(host, RTP port, RTCP port) to put in the SDP sent on ``leg``."""
        state = self.session.leg(leg)
        return (self.host, state.rtp_port, state.rtcp_port)

    def set_remote(self, leg: Leg, addr: str, port: int, rtcp_port: int | None = None) -> None:
        """The remote media address of ``leg`` from its SDP (c= and m= lines, RFC 4566); a
        component ICE nominated keeps its nominated address."""
        self.session.set_remote(leg, addr, port, rtcp_port)
        for path in self._paths:
            ice = path.ice
            if ice is not None and path.inp.leg is leg:
                selected = ice.selected.get(2 if path.rtcp else 1)
                if selected is not None:
                    path.select(selected)

    def set_ice(self, leg: Leg, agent: IceLite | None) -> None:
        """The ICE-lite agent answering STUN checks on ``leg``'s sockets (None: dropped)."""
        for path in self._paths:
            if path.inp.leg is leg:
                path.ice = agent

    def set_codecs(self, a_pt: int, b_pt: int) -> None:
        """G.711 payload type spoken on each leg: different types turn on transcoding."""
        self.session.set_codecs(a_pt, b_pt)

    def set_crypto(self, a: LegCrypto | None, b: LegCrypto | None) -> None:
        """SDES-SRTP keys of each leg (None: plain RTP): the relay decrypts and encrypts where
        the legs differ (:meth:`hybridvoice.media.RelaySession.set_crypto`)."""
        self.session.set_crypto(a, b)
        for path in self._paths:
            path.update()

    def remote(self, leg: Leg) -> Addr | None:
        return self.session.leg(leg).rtp_remote

    def stats(self) -> CallStats:
        return self.session.stats()


class RelayEngine:
    """All relayed calls of one process on one event loop."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port_range: tuple[int, int] = DEFAULT_PORT_RANGE,
        *,
        latch: LatchPolicy | None = None,
        buffer_size: int = _BUFFER_SIZE,
        clock: Callable[[], float] = time.monotonic,
        reads_per_wakeup: int = _BATCH,
        sequence_stats: bool = True,
        demux: str | None = None,
    ) -> None:
        self.host = host
        self.pool = PortPool(*port_range)
        self.latch = latch or LatchPolicy()
        self.buffer_size = buffer_size
        self._clock = clock
        self.reads_per_wakeup = max(1, reads_per_wakeup)
        self.sequence_stats = sequence_stats
        if demux is None:
            demux = "epoll" if hasattr(select, "epoll") else "reader"
        if demux not in ("epoll", "reader"):
            raise ValueError(f"demux is 'epoll' or 'reader', not {demux!r}")
        self.demux = demux
        self._ep: select.epoll | None = None
        self._paths: dict[int, _Path] = {}
        self._buf = bytearray(_RECV_SIZE)
        self._view = memoryview(self._buf)
        self._views = [self._view[:n] for n in range(_VIEWS)]
        self._calls: dict[str, RelayCall] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.send_errors = 0
        self.recv_errors = 0
        self.stun_dropped = 0
        self._released = [0, 0, 0, 0, 0, 0]  # packets, bytes, dropped, rtcp, srtp auth, replays

    @property
    def calls(self) -> dict[str, RelayCall]:
        return self._calls

    def _bind(self, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            _set_buffers(sock, self.buffer_size)
            sock.bind((self.host, port))
        except OSError:
            sock.close()
            raise
        return sock

    async def create_call(self, call_id: str) -> RelayCall:
        """Allocate a port block, bind its four sockets and start relaying (both legs)."""
        if call_id in self._calls:
            raise ValueError(f"call {call_id!r} is already relayed")
        loop = self._loop = asyncio.get_running_loop()
        for _ in range(_BIND_ATTEMPTS):
            block = self.pool.allocate()
            ports = (block.a_rtp, block.a_rtcp, block.b_rtp, block.b_rtcp)
            socks: list[socket.socket] = []
            try:
                for port in ports:
                    socks.append(self._bind(port))
            except BaseException as exc:
                for s in socks:
                    s.close()
                self.pool.release(block)  # OSError: taken by someone else, goes to the tail
                if isinstance(exc, OSError):
                    continue
                raise
            break
        else:
            raise PortsExhaustedError(f"no bindable port block after {_BIND_ATTEMPTS} tries")
        call: RelayCall | None = None
        try:  # whatever fails from here, the block and its sockets go back (nothing leaks)
            session = RelaySession(
                call_id, (block.a_rtp, block.a_rtcp), (block.b_rtp, block.b_rtcp), self.latch
            )
            call = RelayCall(call_id, self.host, block, session)
            call._socks = socks
            self._calls[call_id] = call
            self._add_paths(call, session, socks, loop)
        except BaseException:
            if call is None:
                for sock in socks:
                    sock.close()
                self.pool.release(block)
            else:
                self.drop(call)
            raise
        return call

    def _add_paths(
        self,
        call: RelayCall,
        session: RelaySession,
        socks: list[socket.socket],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        """Start relaying: each socket's reader (or the shared epoll) forwards to its peer."""
        a_rtp, a_rtcp, b_rtp, b_rtcp = socks
        for sock_in, sock_out, inp, out, rtcp in (
            (a_rtp, b_rtp, session.a, session.b, False),
            (b_rtp, a_rtp, session.b, session.a, False),
            (a_rtcp, b_rtcp, session.a, session.b, True),
            (b_rtcp, a_rtcp, session.b, session.a, True),
        ):
            path = _Path(self, session, inp, out)
            path.sock = sock_in
            path.recv = sock_in.recvfrom_into
            path.send = sock_out.sendto
            path.rtcp = rtcp
            path.update()
            call._paths.append(path)
            fd = sock_in.fileno()
            if self.demux == "epoll":
                if self._ep is None:
                    self._ep = select.epoll()
                    loop.add_reader(self._ep.fileno(), self._on_ready)
                self._paths[fd] = path
                self._ep.register(fd, select.EPOLLIN)
            else:
                loop.add_reader(fd, path.on_rtcp if rtcp else path.on_rtp)
            call._fds.append(fd)

    async def release(self, call: RelayCall) -> None:
        """Stop relaying, close the sockets and give the ports back (idempotent)."""
        self.drop(call)

    def drop(self, call: RelayCall) -> None:
        """:meth:`release` for callers outside a coroutine (a proxy hook): nothing in it waits."""
        if self._calls.pop(call.call_id, None) is None:
            return
        for fd in call._fds:
            if self._ep is not None and self._paths.pop(fd, None) is not None:
                self._ep.unregister(fd)
            elif self._loop is not None:
                self._loop.remove_reader(fd)
        for sock in call._socks:
            sock.close()
        call._fds.clear()
        call._socks.clear()
        call._paths.clear()
        self.pool.release(call.block)
        for leg in (call.session.a, call.session.b):
            self._released[0] += leg.packets
            self._released[1] += leg.bytes
            self._released[2] += leg.dropped
            self._released[3] += leg.rtcp_packets
            auth, replays, _ = leg.srtp_counts()
            self._released[4] += auth
            self._released[5] += replays

    async def close(self) -> None:
        """Release every call and stop watching the media sockets."""
        for call in list(self._calls.values()):
            await self.release(call)
        if self._ep is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._ep.fileno())
            self._ep.close()
            self._ep = None

    def _on_ready(self) -> None:
        """The epoll demux (the hot path): one datagram from each ready media socket."""
        ep = self._ep
        if ep is None:
            return
        try:
            events = ep.poll(0, _MAX_EVENTS)
        except OSError:
            return
        paths = self._paths
        buf = self._buf
        views = self._views
        seq_ts = _SEQ_TS
        track = self.sequence_stats
        now = self._clock()
        for fd, _ in events:
            path = paths.get(fd)
            if path is None:
                continue
            if path.slow:
                path.on_slow()
                continue
            try:
                n, src = path.recv(buf)  # type: ignore[misc]
            except OSError:  # EAGAIN included: another reader emptied it
                continue
            if buf[0] < 4:  # STUN (RFC 7983): answered or dropped, never relayed
                path.on_stun(bytes(self._view[:n]), src)
                continue
            inp = path.inp
            if src != inp.rtp_remote and not inp.latch_rtp(src):
                continue
            inp.packets += 1
            inp.bytes += n
            if track and n >= 12:
                seq, ts = seq_ts(buf, 2)
                inp.stats.update(seq, ts, now)
            dst = path.out.rtp_remote
            if dst is None:
                inp.dropped += 1
                continue
            if inp.transcoder is not None:
                transcode_in_place(buf, n, inp.transcoder)
            try:
                path.send(views[n] if n < _VIEWS else self._view[:n], dst)  # type: ignore[misc]
            except OSError:
                self.send_errors += 1

    def stats(self) -> EngineStats:
        """Totals over live and released calls; ``packets`` counts RTP accepted on any leg."""
        packets, nbytes, dropped, rtcp, auth, replays = self._released
        for call in self._calls.values():
            for leg in (call.session.a, call.session.b):
                packets += leg.packets
                nbytes += leg.bytes
                dropped += leg.dropped
                rtcp += leg.rtcp_packets
                if leg.srtp_keys is not None:
                    leg_auth, leg_replays, _ = leg.srtp_counts()
                    auth += leg_auth
                    replays += leg_replays
        return EngineStats(
            calls=len(self._calls),
            ports_available=4 * self.pool.available,
            packets=packets,
            bytes=nbytes,
            dropped=dropped,
            send_errors=self.send_errors,
            rtcp_packets=rtcp,
            srtp_auth_failures=auth,
            srtp_replays=replays,
            stun_dropped=self.stun_dropped,
        )
