"""SRTP through the relay socket loop on 127.0.0.1 (RFC 3711, SDES keys of RFC 4568): SRTP on
one leg and RTP on the other, end-to-end SRTP forwarded as is, forged and replayed packets
counted and dropped, SRTCP, transcoding under SRTP."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from collections.abc import Awaitable, Callable

import pytest
from test_relay import HOST, endpoint, free_range, receive, rtp

from hybridvoice.media import (
    ULAW_TO_ALAW,
    CryptoAttribute,
    Leg,
    LegCrypto,
    RelaySession,
    SrtpStream,
    generate_crypto,
)
from hybridvoice.net.loop import loop_factory
from hybridvoice.net.relay import RelayCall, RelayEngine

Body = Callable[[RelayEngine], Awaitable[None]]
RNG = random.Random(11)
CLIENT_KEY = generate_crypto(RNG.randbytes)  # what the client encrypts with
RELAY_KEY = generate_crypto(RNG.randbytes)  # what the relay encrypts toward the client with


@pytest.fixture(params=["epoll", "reader"])
def go(request: pytest.FixtureRequest) -> Callable[[Body], None]:
    def runner(body: Body) -> None:
        async def main() -> None:
            engine = RelayEngine(HOST, free_range(), demux=request.param)
            try:
                await asyncio.wait_for(body(engine), 20)
            finally:
                await engine.close()

        with asyncio.Runner(loop_factory=loop_factory(False)) as r:
            r.run(main())

    return runner


async def _call(
    engine: RelayEngine, a: socket.socket, b: socket.socket
) -> tuple[RelayCall, tuple[str, int], tuple[str, int]]:
    call = await engine.create_call("c1")
    call.set_remote(Leg.A, *a.getsockname())
    call.set_remote(Leg.B, *b.getsockname())
    _, a_port, _ = call.local(Leg.A)
    _, b_port, _ = call.local(Leg.B)
    return call, (HOST, a_port), (HOST, b_port)


def _streams(send: CryptoAttribute, recv: CryptoAttribute) -> tuple[SrtpStream, SrtpStream]:
    return SrtpStream(send, outbound=True), SrtpStream(recv, outbound=False)


def test_srtp_client_leg_to_rtp_gateway_both_ways(go: Callable[[Body], None]) -> None:
    async def body(engine: RelayEngine) -> None:
        client, gateway = endpoint(), endpoint()
        call, to_a, to_b = await _call(engine, client, gateway)
        call.set_crypto(LegCrypto(recv=CLIENT_KEY, send=RELAY_KEY), None)
        tx, rx = _streams(CLIENT_KEY, RELAY_KEY)
        for seq in range(1, 11):
            client.sendto(tx.rtp(rtp(seq)) or b"", to_a)
            gateway.sendto(rtp(seq, ssrc=0x5678), to_b)
        plain = await receive(gateway, 10)
        assert plain == [rtp(seq) for seq in range(1, 11)]
        secured = await receive(client, 10)
        assert len(secured) == 10 and all(len(p) == 172 + 10 for p in secured)
        assert [rx.rtp(p) for p in secured] == [rtp(s, ssrc=0x5678) for s in range(1, 11)]
        stats = call.stats()
        assert stats.a.srtp and not stats.b.srtp
        assert (stats.a.packets, stats.b.packets) == (10, 10)
        assert (stats.a.srtp_auth_failures, stats.a.srtp_replays) == (0, 0)
        client.close()
        gateway.close()

    go(body)


def test_forged_and_replayed_packets_are_counted_and_dropped(go: Callable[[Body], None]) -> None:
    async def body(engine: RelayEngine) -> None:
        client, gateway, intruder = endpoint(), endpoint(), endpoint()
        call, to_a, _ = await _call(engine, client, gateway)
        call.set_crypto(LegCrypto(recv=CLIENT_KEY, send=RELAY_KEY), None)
        tx, _ = _streams(CLIENT_KEY, RELAY_KEY)
        first = tx.rtp(rtp(1)) or b""
        client.sendto(first, to_a)
        assert await receive(gateway, 1) == [rtp(1)]
        client.sendto(first, to_a)  # replayed
        forged = bytearray(tx.rtp(rtp(2)) or b"")
        forged[30] ^= 0xFF
        intruder.sendto(bytes(forged), to_a)  # tampered, from another address
        wrong_key, _ = _streams(generate_crypto(RNG.randbytes), RELAY_KEY)
        intruder.sendto(wrong_key.rtp(rtp(3)) or b"", to_a)
        client.sendto(tx.rtp(rtp(4)) or b"", to_a)
        assert await receive(gateway, 1) == [rtp(4)]
        stats = call.stats().a
        assert (stats.srtp_auth_failures, stats.srtp_replays) == (2, 1)
        assert stats.remote == client.getsockname()  # nothing forged moved the latch
        assert (stats.packets, stats.relatched) == (2, 0)
        totals = engine.stats()
        assert (totals.srtp_auth_failures, totals.srtp_replays) == (2, 1)
        await engine.release(call)  # the totals keep released calls' counts
        totals = engine.stats()
        assert (totals.srtp_auth_failures, totals.srtp_replays) == (2, 1)
        for s in (client, gateway, intruder):
            s.close()

    go(body)


def test_same_keys_on_both_legs_pass_as_they_are(go: Callable[[Body], None]) -> None:
    async def body(engine: RelayEngine) -> None:
        client, gateway = endpoint(), endpoint()
        call, to_a, to_b = await _call(engine, client, gateway)
        call.set_crypto(
            LegCrypto(recv=CLIENT_KEY, send=RELAY_KEY), LegCrypto(recv=RELAY_KEY, send=CLIENT_KEY)
        )
        tx, _ = _streams(CLIENT_KEY, RELAY_KEY)
        sent = [tx.rtp(rtp(seq)) or b"" for seq in range(1, 6)]
        for packet in sent:
            client.sendto(packet, to_a)
        assert await receive(gateway, 5) == sent  # end to end: never decrypted
        gateway.sendto(b"\x80\x00\x00\x01" + bytes(20), to_b)
        assert len(await receive(client, 1)) == 1
        assert not call.stats().a.srtp and not call.stats().b.srtp
        client.close()
        gateway.close()

    go(body)


def test_srtcp_on_the_client_leg_rtcp_on_the_gateway_leg(go: Callable[[Body], None]) -> None:
    async def body(engine: RelayEngine) -> None:
        client, gateway = endpoint(), endpoint()
        call = await engine.create_call("c2")
        crtcp, grtcp = endpoint(), endpoint()
        call.set_remote(Leg.A, *client.getsockname(), crtcp.getsockname()[1])
        call.set_remote(Leg.B, *gateway.getsockname(), grtcp.getsockname()[1])
        call.set_crypto(LegCrypto(recv=CLIENT_KEY, send=RELAY_KEY), None)
        tx, rx = _streams(CLIENT_KEY, RELAY_KEY)
        rr = struct.pack("!BBHI", 0x80, 201, 1, 0x1234)
        client_rtcp_port = call.local(Leg.A)[2]
        crtcp.sendto(tx.rtcp(rr) or b"", (HOST, client_rtcp_port))
        assert await receive(grtcp, 1) == [rr]
        grtcp.sendto(struct.pack("!BBHI", 0x80, 201, 1, 0x5678), (HOST, call.local(Leg.B)[2]))
        got = await receive(crtcp, 1)
        assert rx.rtcp(got[0]) == struct.pack("!BBHI", 0x80, 201, 1, 0x5678)
        assert call.stats().a.rtcp_packets == 1
        for s in (client, gateway, crtcp, grtcp):
            s.close()

    go(body)


def test_transcoding_under_srtp(go: Callable[[Body], None]) -> None:
    async def body(engine: RelayEngine) -> None:
        client, gateway = endpoint(), endpoint()
        call, to_a, _ = await _call(engine, client, gateway)
        call.set_codecs(0, 8)
        call.set_crypto(LegCrypto(recv=CLIENT_KEY, send=RELAY_KEY), None)
        tx, _ = _streams(CLIENT_KEY, RELAY_KEY)
        client.sendto(tx.rtp(rtp(1)) or b"", to_a)
        got = await receive(gateway, 1)
        assert got[0][1] == 8 and got[0][12:] == bytes(range(160)).translate(ULAW_TO_ALAW)
        client.close()
        gateway.close()

    go(body)


def test_rekey_keeps_the_counters(go: Callable[[Body], None]) -> None:
    async def body(engine: RelayEngine) -> None:
        client, gateway = endpoint(), endpoint()
        call, to_a, _ = await _call(engine, client, gateway)
        call.set_crypto(LegCrypto(recv=CLIENT_KEY, send=RELAY_KEY), None)
        client.sendto(rtp(1), to_a)  # plain RTP on an SRTP leg: fails authentication
        client.sendto(SrtpStream(CLIENT_KEY, outbound=True).rtp(rtp(2)) or b"", to_a)
        await receive(gateway, 1)
        new = generate_crypto(RNG.randbytes)
        call.set_crypto(LegCrypto(recv=new, send=RELAY_KEY), None)  # a re-INVITE's new key
        client.sendto(SrtpStream(new, outbound=True).rtp(rtp(3)) or b"", to_a)
        assert await receive(gateway, 1) == [rtp(3)]
        assert call.stats().a.srtp_auth_failures == 1
        call.set_crypto(None, None)  # back to plain RTP: the hot path
        client.sendto(rtp(4), to_a)
        assert await receive(gateway, 1) == [rtp(4)]
        client.close()
        gateway.close()

    go(body)


def test_leg_state_keys_follow_mirroring_and_rekeys() -> None:
    """The core alone: streams made, dropped and remade as keys and mirroring change."""
    session = RelaySession("c", (1000, 1001), (1002, 1003))
    a_keys = LegCrypto(recv=CLIENT_KEY, send=RELAY_KEY)
    b_keys = LegCrypto(recv=RELAY_KEY, send=CLIENT_KEY)
    session.set_crypto(a_keys, b_keys)  # mirrored: nothing to do
    assert not session.converts_srtp
    session.set_crypto(a_keys, None)  # same keys on A, B plain now: A converts
    assert session.a.srtp_in is not None and session.b.srtp_in is None
    assert session.converts_srtp
    stream = session.a.srtp_in
    session.set_crypto(a_keys, None)  # the same again (an 18x then the 200): kept
    assert session.a.srtp_in is stream
    session.set_crypto(None, None)
    assert not session.converts_srtp and session.a.srtp_keys is None
