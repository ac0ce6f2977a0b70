"""The edge's anchoring adapter on loopback: relay ports taken for an anchored INVITE, SDP
rewritten both ways with each side's ports, released by a BYE or a failure answer (the
proxy's own 408/503 included), never taken for an internal client's offer."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from typing import cast

from ports import free_port_block

from hybridvoice.edge.anchor import sdp_media
from hybridvoice.edge.anchor_io import EdgeAnchoring
from hybridvoice.media import LatchPolicy, Leg
from hybridvoice.net.relay import RelayEngine
from hybridvoice.net.transport import Source, Transport
from hybridvoice.sip.message import Request, make_ack, make_response
from hybridvoice.sip.parser import parse_message

EXTERNAL = cast(Transport, object())
INTERNAL = cast(Transport, object())
SUBNETS = (ipaddress.ip_network("127.0.0.0/8"),)


def invite(address: str, call_id: str = "call-1") -> Request:
    sdp = (f"v=0\r\no=- 1 1 IN IP4 {address}\r\ns=-\r\nc=IN IP4 {address}\r\nt=0 0\r\n"
           "m=audio 4000 RTP/AVP 0\r\n")  # fmt: skip
    text = (
        "INVITE sip:+15550100@contoso.example SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1\r\n"
        "From: <sip:alice@contoso.example>;tag=a\r\nTo: <sip:+15550100@contoso.example>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def anchoring() -> EdgeAnchoring:
    first = free_port_block(41)  # even: RTP on even ports
    engine = RelayEngine("127.0.0.1", (first, first + 40), latch=LatchPolicy(same_ip=False))
    return EdgeAnchoring(engine, [EXTERNAL], SUBNETS, "192.0.2.99")


def test_anchored_call_sdp_both_ways_and_release_on_bye() -> None:
    async def run() -> None:
        a = anchoring()
        request = invite("203.0.113.5")
        source = Source(EXTERNAL, "203.0.113.5", 5060)
        assert a.wants(request, source)
        await a.prepare(request, source)
        call = a.calls["call-1"]
        a.hook(request, INTERNAL)  # toward mediation: the relay's B side on its own host
        offer = sdp_media(request.body)
        assert offer is not None and (offer.address, offer.port) == call.local(Leg.B)[:2]
        assert call.remote(Leg.A) == ("203.0.113.5", 4000)
        answer = make_response(request, 200, body=invite("127.0.0.1").body,
                               content_type="application/sdp")  # fmt: skip
        a.hook(answer, EXTERNAL)  # toward the client: the public address, the A side
        told = sdp_media(answer.body)
        assert (
            told is not None and told.address == "192.0.2.99" and told.port == call.local(Leg.A)[1]
        )
        bye = Request("BYE", request.uri, request.headers.copy())
        a.hook(bye, INTERNAL)
        assert a.calls == {} and a.counters.released == 1
        await a.close()

    asyncio.run(run())


def test_failure_answers_release_and_internal_clients_are_not_anchored() -> None:
    async def run() -> None:
        a = anchoring()
        request = invite("203.0.113.5", "call-2")
        await a.prepare(request, Source(EXTERNAL, "203.0.113.5", 5060))
        assert "call-2" in a.calls
        a.hook(make_response(request, 503), EXTERNAL)  # e.g. the proxy's own 503
        assert a.calls == {} and a.counters.released == 1
        inside = invite("127.0.0.5", "call-3")
        assert not a.wants(inside, Source(EXTERNAL, "127.0.0.5", 5060))
        toward_user = invite("127.0.0.1", "call-4")
        assert a.wants(toward_user, Source(INTERNAL, "127.0.0.1", 5062))
        await a.close()

    asyncio.run(run())


class FakeTimers:
    """``call_later`` on a fake clock: the armed timers, fired by the test."""

    def __init__(self, now: list[float]) -> None:
        self.now = now
        self.armed: list[tuple[float, Callable[[], None], FakeHandle]] = []

    def __call__(self, delay: float, callback: Callable[[], None]) -> FakeHandle:
        handle = FakeHandle()
        self.armed.append((self.now[0] + delay, callback, handle))
        return handle

    def live(self) -> list[float]:
        return [at for at, _, handle in self.armed if not handle.cancelled]

    def run_until(self, when: float) -> None:
        while True:
            due = [x for x in self.armed if not x[2].cancelled and x[0] <= when]
            if not due:
                self.now[0] = when
                return
            at, callback, handle = min(due, key=lambda x: x[0])
            self.now[0] = at
            handle.cancelled = True
            callback()


class FakeHandle:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def test_idle_calls_are_released_by_their_own_timer_without_another_call() -> None:
    async def run() -> None:
        now = [1000.0]
        timers = FakeTimers(now)
        first = free_port_block(41)
        engine = RelayEngine("127.0.0.1", (first, first + 40))
        a = EdgeAnchoring(engine, [EXTERNAL], SUBNETS, "192.0.2.99", idle_timeout=600,
                          sweep_interval=60, clock=lambda: now[0], call_later=timers)  # fmt: skip
        available = engine.pool.available
        assert timers.live() == []  # no call, no timer
        source = Source(EXTERNAL, "203.0.113.5", 5060)
        await a.prepare(invite("203.0.113.5", "quiet"), source)
        await a.prepare(invite("203.0.113.5", "talking"), source)
        assert timers.live() == [1060.0]  # one timer for both
        assert engine.pool.available == available - 2
        for at in range(1060, 1600, 60):
            a.calls["talking"].session.a.packets += 1
            timers.run_until(float(at))
        assert set(a.calls) == {"quiet", "talking"}
        timers.run_until(1600.0)  # 600 s silent: released, no other call needed
        assert set(a.calls) == {"talking"} and a.counters.idle_released == 1
        assert engine.pool.available == available - 1  # its ports are back
        timers.run_until(2200.0)
        assert a.calls == {} and engine.pool.available == available
        assert timers.live() == []  # nothing anchored: no timer left armed
        await a.close()

    asyncio.run(run())


def test_the_timer_goes_when_the_last_call_ends() -> None:
    async def run() -> None:
        now = [0.0]
        timers = FakeTimers(now)
        first = free_port_block(41)
        engine = RelayEngine("127.0.0.1", (first, first + 40))
        a = EdgeAnchoring(engine, [EXTERNAL], SUBNETS, "192.0.2.99", clock=lambda: now[0],
                          call_later=timers)  # fmt: skip
        request = invite("203.0.113.5")
        await a.prepare(request, Source(EXTERNAL, "203.0.113.5", 5060))
        assert len(timers.live()) == 1
        a.hook(Request("BYE", request.uri, request.headers.copy()), INTERNAL)
        assert timers.live() == [] and a.calls == {}
        await a.close()

    asyncio.run(run())


def test_a_late_offer_is_anchored_and_rewritten_in_the_2xx_and_the_ack() -> None:
    async def run() -> None:
        a = anchoring()
        request = invite("203.0.113.5", "late")
        request.set_body(b"", None)  # RFC 3261 §13.2.1: the offer comes in the 2xx
        source = Source(EXTERNAL, "203.0.113.5", 5060)
        assert a.wants(request, source)  # the client's address is not known yet
        await a.prepare(request, source)
        call = a.calls["late"]
        a.hook(request, INTERNAL)
        ok = make_response(request, 200, body=invite("127.0.0.7").body,
                           content_type="application/sdp")  # fmt: skip
        a.hook(ok, EXTERNAL)
        offer = sdp_media(ok.body)
        assert offer is not None and (offer.address, offer.port) == (
            "192.0.2.99",
            call.local(Leg.A)[1],
        )
        assert call.remote(Leg.B) == ("127.0.0.7", 4000)
        ack = make_ack(request, ok)
        ack.set_body(invite("203.0.113.5").body, "application/sdp")
        a.hook(ack, INTERNAL)  # the answer, toward mediation
        told = sdp_media(ack.body)
        assert told is not None and (told.address, told.port) == call.local(Leg.B)[:2]
        assert call.remote(Leg.A) == ("203.0.113.5", 4000)
        assert a.counters.rewritten == 2
        await a.close()

    asyncio.run(run())


def test_a_multipart_offer_from_outside_is_anchored() -> None:
    """An internet client's offer inside a multipart body (RFC 5621) is judged by its SDP
    parts: before, the edge found no SDP in it and let the call's media go unanchored."""
    request = invite("203.0.113.5", "multi")
    sdp = request.body
    body = (b"--x\r\nContent-Type: application/sdp\r\n\r\n" + sdp + b"\r\n--x\r\n"
            b"Content-Type: application/sdp\r\n\r\n" + sdp + b"\r\n--x--\r\n")  # fmt: skip
    request.set_body(body, "multipart/alternative; boundary=x")
    a = anchoring()
    assert a.wants(request, Source(EXTERNAL, "203.0.113.5", 5060))
    inside = invite("127.0.0.9", "inside")
    inside.set_body(body.replace(b"203.0.113.5", b"127.0.0.9"), "multipart/mixed; boundary=x")
    assert not a.wants(inside, Source(EXTERNAL, "127.0.0.9", 5060))
