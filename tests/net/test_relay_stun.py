"""STUN on the relay's sockets (RFC 7983 demultiplexing) on 127.0.0.1, with both demuxes and
both loops: never relayed as media; answered by the leg's ICE-lite agent from the socket it
reached; a nominating check moves the component's media to its source."""

from __future__ import annotations

import asyncio

from test_relay import HOST, Go, endpoint, go, receive, rtp, wire

from hybridvoice.media import LatchPolicy, Leg
from hybridvoice.media.ice_lite import IceCredentials, IceLite
from hybridvoice.media.stun import Attr, Method, StunClass, StunMessage, encode, parse
from hybridvoice.net.relay import RelayEngine

__all__ = ["go"]  # the fixture, from test_relay

ICE = IceCredentials("edge", "0123456789abcdef012345")


def binding(nominate: bool, tid: bytes = bytes(12)) -> bytes:
    attributes: list[tuple[int, bytes]] = [(Attr.USERNAME, b"edge:clnt")]
    if nominate:
        attributes.append((Attr.USE_CANDIDATE, b""))
    message = StunMessage(Method.BINDING, StunClass.REQUEST, tid, tuple(attributes))
    return encode(message, ICE.pwd.encode(), fingerprint=True)


def test_stun_without_an_agent_is_dropped_not_relayed(go: Go) -> None:
    go(_stun_without_an_agent_is_dropped)


async def _stun_without_an_agent_is_dropped(engine: RelayEngine) -> None:
    call, a, b = await wire(engine)
    a_rtp, a_rtcp = call.local(Leg.A)[1:]
    a.sendto(binding(True), (HOST, a_rtp))
    a.sendto(binding(True), (HOST, a_rtcp))
    a.sendto(rtp(1), (HOST, a_rtp))
    assert await receive(b, 3, timeout=1.0) == [rtp(1)]  # only the RTP crossed
    assert await receive(a, 1, timeout=0.2) == []  # and nothing answered
    stats = engine.stats()
    assert (stats.stun_dropped, stats.packets) == (2, 1)
    for s in (a, b):
        s.close()


def test_checks_answered_and_nomination_moves_the_media(go: Go) -> None:
    go(_checks_answered_and_nomination_moves_the_media)


async def _checks_answered_and_nomination_moves_the_media(engine: RelayEngine) -> None:
    engine.latch = LatchPolicy(same_ip=False)  # as the edge's (everything is on 127.0.0.1 here)
    call, a, b = await wire(engine)
    agent = IceLite(ICE)
    call.set_ice(Leg.A, agent)
    a_rtp = call.local(Leg.A)[1]
    client = endpoint()  # the client's nominated candidate: not the SDP's address
    client.sendto(binding(False, b"first-check!"), (HOST, a_rtp))
    (reply,) = await receive(client, 1)
    answer = parse(reply)
    assert answer.cls == StunClass.SUCCESS and answer.transaction_id == b"first-check!"
    assert answer.xor_address(Attr.XOR_MAPPED_ADDRESS) == client.getsockname()
    assert call.remote(Leg.A) == a.getsockname()  # a check alone moves nothing
    client.sendto(binding(True), (HOST, a_rtp))
    assert len(await receive(client, 1)) == 1
    assert call.remote(Leg.A) == client.getsockname()
    b.sendto(rtp(7), (HOST, call.local(Leg.B)[1]))  # the other side's media goes there
    assert await receive(client, 1) == [rtp(7)]
    a.sendto(rtp(8), (HOST, a_rtp))  # RTP from elsewhere no longer moves the leg
    await asyncio.sleep(0.1)
    assert call.remote(Leg.A) == client.getsockname()
    call.set_remote(Leg.A, *a.getsockname())  # a later SDP keeps the nominated address
    assert call.remote(Leg.A) == client.getsockname()
    assert await receive(b, 2, timeout=0.5) == []  # no STUN reached the other side
    assert agent.counters.answered == 2 and agent.counters.nominations == 1
    assert engine.stats().stun_dropped == 0
    for s in (a, b, client):
        s.close()
