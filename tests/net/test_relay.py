"""The RTP relay socket loop on 127.0.0.1: both directions, latching, transcoding, RTCP."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable

import pytest
from ports import free_port_block

from hybridvoice.media import ULAW_TO_ALAW, Leg, ReceiverReport, ReportBlock, serialize_rtcp
from hybridvoice.net.loop import loop_factory, uvloop_available
from hybridvoice.net.relay import RelayCall, RelayEngine

LOOPS = ["asyncio", *(["uvloop"] if uvloop_available() else [])]
Go = Callable[[Callable[[RelayEngine], Awaitable[None]]], None]

HOST = "127.0.0.1"
PAYLOAD = bytes(range(160))


def endpoint() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((HOST, 0))
    s.setblocking(False)
    return s


def rtp(seq: int, pt: int = 0, ssrc: int = 0x1234) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq, 160 * seq, ssrc) + PAYLOAD  # 172 bytes


async def receive(s: socket.socket, count: int, timeout: float = 5.0) -> list[bytes]:
    loop = asyncio.get_running_loop()
    got: list[bytes] = []
    deadline = loop.time() + timeout
    while len(got) < count and loop.time() < deadline:
        try:
            got.append(s.recv(2048))
        except BlockingIOError:
            await asyncio.sleep(0.005)
    return got


def free_range() -> tuple[int, int]:
    """A 400-port range on loopback that is currently free and handed out whole."""
    base = free_port_block(400)
    return (base, base + 399)


@pytest.fixture(params=[(lp, d) for lp in LOOPS for d in ("epoll", "reader")], ids=str)
def go(request: pytest.FixtureRequest) -> Go:
    """Run a test body with a fresh engine, on asyncio's loop and uvloop, with both demuxes."""
    loop_name, demux = request.param

    def runner(body: Callable[[RelayEngine], Awaitable[None]]) -> None:
        async def main() -> None:
            engine = RelayEngine(HOST, free_range(), demux=demux)
            try:
                await asyncio.wait_for(body(engine), 20)
            finally:
                await engine.close()

        with asyncio.Runner(loop_factory=loop_factory(loop_name == "uvloop")) as r:
            r.run(main())

    return runner


async def wire(engine: RelayEngine) -> tuple[RelayCall, socket.socket, socket.socket]:
    call = await engine.create_call("call-1")
    a, b = endpoint(), endpoint()
    call.set_remote(Leg.A, *a.getsockname())
    call.set_remote(Leg.B, *b.getsockname())
    return call, a, b


def test_both_directions_exact_counters(go: Go) -> None:
    go(_both_directions_exact_counters)


async def _both_directions_exact_counters(engine: RelayEngine) -> None:
    call, a, b = await wire(engine)
    a_port, b_port = call.local(Leg.A)[1], call.local(Leg.B)[1]
    assert a_port % 2 == 0 and call.local(Leg.A)[2] == a_port + 1
    n = 200
    for i in range(n):  # 20 ms ptime in real life; paced in bursts of 20 here
        a.sendto(rtp(i), (HOST, a_port))
        b.sendto(rtp(i, ssrc=0x5678), (HOST, b_port))
        if i % 20 == 19:
            await asyncio.sleep(0.005)
    at_b, at_a = await receive(b, n), await receive(a, n)
    assert at_b == [rtp(i) for i in range(n)]
    assert at_a == [rtp(i, ssrc=0x5678) for i in range(n)]
    st = call.stats()
    assert (st.a.packets, st.a.bytes, st.a.dropped, st.a.lost) == (n, 172 * n, 0, 0)
    assert (st.b.packets, st.b.bytes, st.b.dropped, st.b.lost) == (n, 172 * n, 0, 0)
    assert st.a.expected == n
    es = engine.stats()
    assert (es.calls, es.packets, es.bytes, es.dropped) == (1, 2 * n, 2 * 172 * n, 0)
    await engine.release(call)
    assert engine.stats().calls == 0 and engine.stats().packets == 2 * n
    for s in (a, b):
        s.close()


def test_latching_to_new_source_port(go: Go) -> None:
    go(_latching_to_new_source_port)


async def _latching_to_new_source_port(engine: RelayEngine) -> None:
    call, a, b = await wire(engine)
    a2 = endpoint()  # the A side shows up from another port (NAT): latch to it
    a2.sendto(rtp(1), (HOST, call.local(Leg.A)[1]))
    assert await receive(b, 1) == [rtp(1)]
    assert call.remote(Leg.A) == a2.getsockname()
    b.sendto(rtp(2), (HOST, call.local(Leg.B)[1]))
    assert await receive(a2, 1) == [rtp(2)]
    assert await receive(a, 1, timeout=0.2) == []  # nothing to the stale SDP address
    assert call.stats().a.relatched == 1
    for s in (a, a2, b):
        s.close()


def test_transcoding_pcmu_to_pcma(go: Go) -> None:
    go(_transcoding_pcmu_to_pcma)


async def _transcoding_pcmu_to_pcma(engine: RelayEngine) -> None:
    call, a, b = await wire(engine)
    call.set_codecs(0, 8)
    a.sendto(rtp(1, pt=0), (HOST, call.local(Leg.A)[1]))
    (got,) = await receive(b, 1)
    assert got[1] == 8 and got[:1] + got[2:12] == rtp(1)[:1] + rtp(1)[2:12]
    assert got[12:] == PAYLOAD.translate(ULAW_TO_ALAW)
    dtmf = struct.pack("!BBHII", 0x80, 101, 2, 320, 0x1234) + bytes((5, 0x8A, 3, 0xC0))
    a.sendto(dtmf, (HOST, call.local(Leg.A)[1]))
    assert await receive(b, 1) == [dtmf]  # telephone-event passes as is
    for s in (a, b):
        s.close()


def test_rtcp_forwarded_and_report_read(go: Go) -> None:
    go(_rtcp_forwarded_and_report_read)


async def _rtcp_forwarded_and_report_read(engine: RelayEngine) -> None:
    call, a, b = await wire(engine)
    a_rtcp, b_rtcp = endpoint(), endpoint()
    call.set_remote(Leg.A, HOST, a.getsockname()[1], a_rtcp.getsockname()[1])
    call.set_remote(Leg.B, HOST, b.getsockname()[1], b_rtcp.getsockname()[1])
    report = serialize_rtcp([ReceiverReport(0x5678, (ReportBlock(0x1234, 32, 7, 1000, 160),))])
    b_rtcp.sendto(report, (HOST, call.local(Leg.B)[2]))
    assert await receive(a_rtcp, 1) == [report]
    st = call.stats().b
    assert st.rtcp_packets == 1
    assert st.reported_fraction_lost == 0.125 and st.reported_cumulative_lost == 7
    assert st.reported_jitter_ms == 20.0
    for s in (a, b, a_rtcp, b_rtcp):
        s.close()


def test_packets_before_the_other_side_is_known_are_dropped(go: Go) -> None:
    go(_packets_before_the_other_side_is_known_are_dropped)


async def _packets_before_the_other_side_is_known_are_dropped(engine: RelayEngine) -> None:
    call = await engine.create_call("lonely")
    a = endpoint()
    a.sendto(rtp(1), (HOST, call.local(Leg.A)[1]))
    for _ in range(100):
        if call.stats().a.packets:
            break
        await asyncio.sleep(0.01)
    st = call.stats().a
    assert st.packets == 1 and st.dropped == 1 and call.remote(Leg.A) == a.getsockname()
    with pytest.raises(ValueError):
        await engine.create_call("lonely")
    a.close()
