"""The edge's anchoring adapter on loopback: relay ports taken for an anchored INVITE, SDP
rewritten both ways with each side's ports, released by a BYE or a failure answer (the
proxy's own 408/503 included), never taken for an internal client's offer."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import cast

from ports import free_port

from hybridvoice.edge.anchor import sdp_media
from hybridvoice.edge.anchor_io import EdgeAnchoring
from hybridvoice.media import LatchPolicy, Leg
from hybridvoice.net.relay import RelayEngine
from hybridvoice.net.transport import Source, Transport
from hybridvoice.sip.message import Request, make_response
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
    first = free_port()
    engine = RelayEngine("127.0.0.1", (first - first % 2, first - first % 2 + 40),
                         latch=LatchPolicy(same_ip=False))  # fmt: skip
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


def test_idle_calls_are_released_by_the_next_anchored_call() -> None:
    async def run() -> None:
        now = [1000.0]
        first = free_port()
        engine = RelayEngine("127.0.0.1", (first - first % 2, first - first % 2 + 40))
        a = EdgeAnchoring(engine, [EXTERNAL], SUBNETS, "192.0.2.99", idle_timeout=600,
                          clock=lambda: now[0])  # fmt: skip
        source = Source(EXTERNAL, "203.0.113.5", 5060)
        await a.prepare(invite("203.0.113.5", "old"), source)
        assert a.sweep() == 0  # seen now
        now[0] += 599
        await a.prepare(invite("203.0.113.5", "new"), source)
        assert set(a.calls) == {"old", "new"}
        a.calls["new"].session.a.packets += 1  # "new" carries media, "old" does not
        now[0] += 1
        assert a.sweep() == 1 and set(a.calls) == {"new"}
        assert a.counters.idle_released == 1
        await a.close()

    asyncio.run(run())
