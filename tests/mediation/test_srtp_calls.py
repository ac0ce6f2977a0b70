"""SRTP through the mediation role's relay with real UDP on loopback: an SRTP client and an
RTP gateway (and the other way round), media both ways, counters per leg; a gateway set to
SRTP that answers without a key ends the call with the reason."""

from __future__ import annotations

import asyncio
import random
import struct
from pathlib import Path
from typing import Any

from lab_harness import FAST, QUICK, WAIT, Lab, peer, run, running_role, sdp, settings, settle
from rtp_harness import MediaEnd, media_end

from hybridvoice.cms.settings import parse_settings
from hybridvoice.media import CryptoAttribute, Leg, SrtpStream, generate_crypto
from hybridvoice.mediation.bypass import BypassPolicy, parse_subnets
from hybridvoice.mediation.media_sdp import parse_sdp
from hybridvoice.mediation.role import MediationRole, RoleOptions
from hybridvoice.net.transport import Destination
from hybridvoice.net.ua import CallFailedError
from hybridvoice.sip.session import Answered

SILENCE = b"\xff" * 160
CLIENT_KEY = generate_crypto(random.Random(21).randbytes)
GATEWAY_KEY = generate_crypto(random.Random(22).randbytes)


def srtp_sdp(port: int, key: CryptoAttribute, proto: str = "RTP/SAVP") -> bytes:
    return sdp(port).replace(b"RTP/AVP", proto.encode()) + f"a=crypto:{key}\r\n".encode()


def crypto_of(body: bytes) -> CryptoAttribute | None:
    media = parse_sdp(body).media[0]
    found = media.attributes_named("crypto")
    return CryptoAttribute.parse(found[0].value or "") if found else None


def rtp(end: MediaEnd, n: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, end.seq + n, 160 * n, end.ssrc) + SILENCE


async def with_lab(tmp_path: Path, gateway: dict[str, Any], server: dict[str, Any]) -> Any:
    cloud = await peer()
    gw = await peer()
    raw = settings([gw])
    raw["Gateway1"].update(gateway)
    raw["MediationServer"].update(server)
    return cloud, gw, running_role(tmp_path, raw, cloud, [gw], relay=True)


def test_srtp_client_through_the_relay_to_an_rtp_gateway(tmp_path: Path) -> None:
    async def main() -> None:
        cloud, gw, role_cm = await with_lab(tmp_path, {}, {})
        async with role_cm as role, media_end() as client, media_end() as gateway:
            lab_ = Lab(role, cloud, [gw])
            a = lab_.call_out(offer=srtp_sdp(client.port, CLIENT_KEY))
            b = await gw.next_call()
            offered = parse_sdp(b.invite.body)
            assert offered.media[0].proto == "RTP/AVP" and crypto_of(b.invite.body) is None
            b.answer(sdp(gateway.port))
            answered = await a.answered(WAIT)
            assert isinstance(answered, Answered) and answered.sdp is not None
            assert parse_sdp(answered.sdp).media[0].proto == "RTP/SAVP"
            relay_key = crypto_of(answered.sdp)
            assert relay_key is not None and relay_key.tag == CLIENT_KEY.tag
            relay = role.relay
            assert relay is not None
            (relayed,) = relay.calls.values()
            edge_rtp, gw_rtp = relayed.local(Leg.A)[1], relayed.local(Leg.B)[1]

            tx = SrtpStream(CLIENT_KEY, outbound=True)
            rx = SrtpStream(relay_key, outbound=False)
            for n in range(20):
                client.rtp.sendto(tx.rtp(rtp(client, n)) or b"", ("127.0.0.1", edge_rtp))
            for _ in range(15):
                gateway.send_rtp(("127.0.0.1", gw_rtp), 0, SILENCE)
            got = await gateway.expect_rtp(20)
            assert [p.payload for p in got] == [SILENCE] * 20 and got[0].ssrc == client.ssrc
            loop_packets = []
            for _ in range(15):
                data = await _recv(client)
                loop_packets.append(rx.rtp(data))
            assert all(p is not None and p.endswith(SILENCE) for p in loop_packets)
            client.rtp.sendto(rtp(client, 99), ("127.0.0.1", edge_rtp))  # plain: refused
            client.rtp.sendto(tx.rtp(rtp(client, 30)) or b"", ("127.0.0.1", edge_rtp))
            await gateway.expect_rtp(21)
            stats = relayed.stats()
            assert stats.a.srtp and not stats.b.srtp
            assert (stats.a.packets, stats.b.packets) == (21, 15)
            assert stats.a.srtp_auth_failures == 1
            a.bye()
            await b.ended(WAIT)
            await settle(lab_)
            records = role.records
            assert records is not None
            await records.aflush()
            record = records.by_call_id(a.call_id)
            assert record is not None and record.a_media is not None
            assert record.a_media.srtp and record.a_media.srtp_auth_failures == 1
            assert record.b_media is not None and not record.b_media.srtp

    run(main())


async def _recv(end: MediaEnd) -> bytes:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(5):
        return await loop.sock_recv(end.rtp, 2048)


def test_rtp_client_to_a_gateway_set_to_srtp(tmp_path: Path) -> None:
    async def main() -> None:
        cloud, gw, role_cm = await with_lab(tmp_path, {"MediaEncryption": "SRTP"}, {})
        async with role_cm as role, media_end() as client, media_end() as gateway:
            lab_ = Lab(role, cloud, [gw])
            a = lab_.call_out(offer=sdp(client.port))
            b = await gw.next_call()
            assert parse_sdp(b.invite.body).media[0].proto == "RTP/SAVP"
            relay_key = crypto_of(b.invite.body)
            assert relay_key is not None
            b.answer(srtp_sdp(gateway.port, GATEWAY_KEY))
            answered = await a.answered(WAIT)
            assert isinstance(answered, Answered) and answered.sdp is not None
            assert crypto_of(answered.sdp) is None
            assert parse_sdp(answered.sdp).media[0].proto == "RTP/AVP"
            relay = role.relay
            assert relay is not None
            (relayed,) = relay.calls.values()
            edge_rtp, gw_rtp = relayed.local(Leg.A)[1], relayed.local(Leg.B)[1]
            tx = SrtpStream(GATEWAY_KEY, outbound=True)
            rx = SrtpStream(relay_key, outbound=False)
            for n in range(10):
                client.send_rtp(("127.0.0.1", edge_rtp), 0, SILENCE)
                gateway.rtp.sendto(tx.rtp(rtp(gateway, n)) or b"", ("127.0.0.1", gw_rtp))
            assert len(await client.expect_rtp(10)) == 10
            for _ in range(10):
                plain = rx.rtp(await _recv(gateway))
                assert plain is not None and plain.endswith(SILENCE)
            stats = relayed.stats()
            assert (stats.a.srtp, stats.b.srtp) == (False, True)
            a.bye()
            await b.ended(WAIT)
            await settle(lab_)

    run(main())


def test_a_gateway_set_to_srtp_answering_without_a_key_ends_the_call(tmp_path: Path) -> None:
    async def main() -> None:
        cloud, gw, role_cm = await with_lab(tmp_path, {"MediaEncryption": "SRTP"}, {})
        async with role_cm as role, media_end() as client:
            lab_ = Lab(role, cloud, [gw])
            a = lab_.call_out(offer=sdp(client.port))
            b = await gw.next_call()
            b.answer(sdp(client.port + 2))
            try:
                await a.answered(WAIT)
            except CallFailedError as exc:
                assert exc.disconnected.status == 488
            else:
                raise AssertionError("the call was answered")
            await b.ended(WAIT)
            assert lab_.role.call_failures()["sdp"] == 1
            await settle(lab_)

    run(main())


async def _bypass_call(tmp_path: Path, setting: str) -> tuple[bytes, int, str | None]:
    """An internal client offering RTP/SAVP with its key to a gateway with MediaBypass on and
    ``MediaEncryption = setting``: what the gateway is offered, the relay's calls, the
    record's media reason."""
    cloud, gw = await peer(), await peer()
    raw = settings([gw])
    raw["Gateway1"].update(MediaBypass=True, MediaEncryption=setting)
    options = RoleOptions(
        edge=Destination("UDP", "127.0.0.1", 0),
        edge_target=Destination("UDP", "127.0.0.1", cloud.port), relay=True,
        bypass=BypassPolicy(enabled=True, internal_subnets=parse_subnets(["127.0.0.0/8"])),
        bypass_service=False, records=tmp_path / "calls.db", session=QUICK, timers=FAST, seed=1,
    )  # fmt: skip
    role = MediationRole(parse_settings(raw), options)
    await role.start()
    try:
        async with media_end() as client:
            lab_ = Lab(role, cloud, [gw])
            a = lab_.call_out(offer=srtp_sdp(client.port, CLIENT_KEY))
            b = await gw.next_call()
            offered = b.invite.body
            assert role.relay is not None
            relayed = len(role.relay.calls)
            b.answer(srtp_sdp(client.port + 2, GATEWAY_KEY))
            await a.answered(WAIT)
            a.bye()
            await b.ended(WAIT)
            await settle(lab_)
            assert role.records is not None
            await role.records.aflush()
            record = role.records.by_call_id(a.call_id)
            assert record is not None
            return offered, relayed, record.media_reason
    finally:
        await role.stop()
        for p in (cloud, gw):
            p.ua.close()
            await p.endpoint.close()


def test_bypass_passes_the_crypto_lines_end_to_end(tmp_path: Path) -> None:
    async def main() -> None:
        offered, relayed, _ = await _bypass_call(tmp_path, "SRTP")
        assert relayed == 0  # bypass: the relay holds nothing
        assert crypto_of(offered) == CLIENT_KEY  # the client's own key, untouched
        assert parse_sdp(offered).media[0].proto == "RTP/SAVP"

    run(main())


def test_bypass_to_a_gateway_set_to_rtp_anchors_an_srtp_client(tmp_path: Path) -> None:
    async def main() -> None:
        offered, relayed, reason = await _bypass_call(tmp_path, "RTP")
        assert relayed == 1 and crypto_of(offered) is None
        assert parse_sdp(offered).media[0].proto == "RTP/AVP"
        assert (
            reason == "SRTP: the client offers RTP/SAVP, gateway Gateway1 has MediaEncryption RTP"
        )

    run(main())


def test_inbound_srtp_gateway_to_an_srtp_client(tmp_path: Path) -> None:
    """An SRTP gateway calls in; the client (best effort, ``Optional``) is offered RTP/AVP
    with the relay's key, answers with its own: SRTP on both legs, each with its own keys,
    media both ways decrypted and encrypted again at the relay."""

    async def main() -> None:
        cloud, gw, role_cm = await with_lab(tmp_path, {"MediaEncryption": "SRTP"}, {})
        async with role_cm as role, media_end() as client, media_end() as gateway:
            lab_ = Lab(role, cloud, [gw])
            port = lab_.gateway_side
            b = gw.ua.invite(
                f"sip:0201234567@127.0.0.1:{port}", from_="<sip:0612345678@gw.example>",
                sdp=srtp_sdp(gateway.port, GATEWAY_KEY),
                destination=Destination("UDP", "127.0.0.1", port),
            )  # fmt: skip
            a = await cloud.next_call()
            offered = parse_sdp(a.invite.body).media[0]
            assert offered.proto == "RTP/AVP"  # Optional: best effort toward the client
            to_client = crypto_of(a.invite.body)
            assert to_client is not None and to_client.key != GATEWAY_KEY.key
            a.answer(srtp_sdp(client.port, CLIENT_KEY, proto="RTP/AVP"))
            answered = await b.answered(WAIT)
            assert isinstance(answered, Answered) and answered.sdp is not None
            to_gateway = crypto_of(answered.sdp)
            assert to_gateway is not None and to_gateway.tag == GATEWAY_KEY.tag
            assert parse_sdp(answered.sdp).media[0].proto == "RTP/SAVP"
            relay = role.relay
            assert relay is not None
            (relayed,) = relay.calls.values()
            edge_rtp, gw_rtp = relayed.local(Leg.A)[1], relayed.local(Leg.B)[1]
            client_tx = SrtpStream(CLIENT_KEY, outbound=True)
            gateway_tx = SrtpStream(GATEWAY_KEY, outbound=True)
            client_rx = SrtpStream(to_client, outbound=False)
            gateway_rx = SrtpStream(to_gateway, outbound=False)
            for n in range(10):
                client.rtp.sendto(client_tx.rtp(rtp(client, n)) or b"", ("127.0.0.1", edge_rtp))
                gateway.rtp.sendto(gateway_tx.rtp(rtp(gateway, n)) or b"", ("127.0.0.1", gw_rtp))
            for _ in range(10):
                at_gateway = gateway_rx.rtp(await _recv(gateway))
                at_client = client_rx.rtp(await _recv(client))
                assert at_gateway is not None and at_gateway.endswith(SILENCE)
                assert at_client is not None and at_client.endswith(SILENCE)
            stats = relayed.stats()
            assert (stats.a.srtp, stats.b.srtp) == (True, True)
            assert (stats.a.packets, stats.b.packets) == (10, 10)
            b.bye()
            await a.ended(WAIT)
            await settle(lab_)

    run(main())
