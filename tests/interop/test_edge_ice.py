"""aioice (a full ICE agent, controlling) against the edge's anchor (ICE-lite) on 127.0.0.1.

The client offers with its ICE credentials and host candidate; the edge anchors the call
(:class:`hybridvoice.edge.anchor_io.EdgeAnchoring`) and the "mediation" side (a UDP echo in
the test) answers; the answer the client gets carries ``a=ice-lite``, the call's
``ice-ufrag``/``ice-pwd`` and the relay's candidate. aioice runs its connectivity checks
(short-term credentials, regular nomination with USE-CANDIDATE, RFC 8445 §8.1.1) against the
relay port, then RTP flows client -> edge -> echo -> edge -> client; no STUN reaches the echo.
The same with aioice's only candidate a TURN allocation on the edge's own relay (MRAS
credentials): the checks and the media cross TURN to the anchor.

aioice gathers host candidates on every interface but loopback; the test hands it 127.0.0.1
only (its ``get_host_addresses``), so that nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct
import time
from pathlib import Path
from typing import cast

import aioice
import aioice.ice
import pytest
from ports import free_port

from hybridvoice.cms.settings import Settings, parse_settings
from hybridvoice.edge.anchor_io import EdgeAnchoring
from hybridvoice.edge.media_relay import open_media_relay
from hybridvoice.media import LatchPolicy, Leg
from hybridvoice.mgmt.site_tls import SiteTls
from hybridvoice.net.relay import RelayCall, RelayEngine
from hybridvoice.net.transport import Source, Transport
from hybridvoice.sip.message import Request, make_response
from hybridvoice.sip.parser import parse_message
from hybridvoice.sip.sdp import SessionDescription

pytestmark = pytest.mark.interop

HOST = "127.0.0.1"
EXTERNAL = cast(Transport, object())
INTERNAL = cast(Transport, object())
SUBNETS = (ipaddress.ip_network("10.0.0.0/8"),)  # 127.0.0.1 plays a client on the internet
PACKETS = 20


def rtp(seq: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, 160 * seq, 0xC0FFEE) + bytes(160)


def invite(sdp: str) -> Request:
    text = (
        "INVITE sip:+15550100@contoso.example SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-ice\r\n"
        "From: <sip:alice@contoso.example>;tag=a\r\nTo: <sip:+15550100@contoso.example>\r\n"
        "Call-ID: ice-call\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


class Echo(asyncio.DatagramProtocol):
    """The mediation side: every datagram back to its source, kept."""

    def __init__(self) -> None:
        self.got: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.got.append(data)
        assert self.transport is not None
        self.transport.sendto(data, addr)


async def ice_call(
    anchoring: EdgeAnchoring, client: aioice.Connection, echo_port: int
) -> tuple[RelayCall, aioice.Candidate]:
    """The client's offer through the anchor, the echo's answer back with the edge's ICE-lite
    lines, handed to aioice; its checks and nomination against the relay's port."""
    await client.gather_candidates()
    (mine,) = client.local_candidates
    offer = (
        f"v=0\r\no=- 1 1 IN IP4 {mine.host}\r\ns=-\r\nc=IN IP4 {mine.host}\r\nt=0 0\r\n"
        f"m=audio {mine.port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=rtcp-mux\r\n"
        f"a=ice-ufrag:{client.local_username}\r\na=ice-pwd:{client.local_password}\r\n"
        f"a=candidate:{mine.to_sdp()}\r\n"
    )
    request = invite(offer)
    await anchoring.prepare(request, Source(EXTERNAL, HOST, 5060))
    anchoring.hook(request, INTERNAL)  # toward mediation: no ICE there
    assert b"ice-" not in request.body and b"candidate" not in request.body
    answer_sdp = (
        f"v=0\r\no=- 2 2 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
        f"m=audio {echo_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=rtcp-mux\r\n"
    ).encode()
    ok = make_response(request, 200, body=answer_sdp, content_type="application/sdp")
    anchoring.hook(ok, EXTERNAL)  # toward the client: the edge as an ICE-lite agent
    told = SessionDescription.parse(ok.body)
    assert told.attribute("ice-lite") is not None
    (audio,) = told.media
    ufrag, pwd = audio.attribute("ice-ufrag"), audio.attribute("ice-pwd")
    assert ufrag is not None and pwd is not None
    client.remote_is_lite = True
    client.remote_username, client.remote_password = ufrag.value, pwd.value
    candidates = audio.attributes_named("candidate")
    assert len(candidates) == 1  # rtcp-mux: one component
    for line in candidates:
        await client.add_remote_candidate(aioice.Candidate.from_sdp(line.value or ""))
    await client.add_remote_candidate(None)
    await asyncio.wait_for(client.connect(), 30)  # the checks and the nomination
    return anchoring.calls["ice-call"], mine


async def echo_rtp(client: aioice.Connection, echo: Echo) -> None:
    """``PACKETS`` RTP packets client -> edge -> echo and back, no STUN among them."""
    back = []
    for seq in range(PACKETS):
        await client.send(rtp(seq))
        back.append(await asyncio.wait_for(client.recv(), 10))
    assert back == [rtp(seq) for seq in range(PACKETS)]
    assert echo.got == [rtp(seq) for seq in range(PACKETS)]


def test_aioice_completes_checks_against_the_edge_and_rtp_flows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: [HOST])

    async def main() -> None:
        first = free_port()
        engine = RelayEngine(HOST, (first - first % 2, first - first % 2 + 40),
                             latch=LatchPolicy(same_ip=False))  # fmt: skip
        anchoring = EdgeAnchoring(engine, [EXTERNAL], SUBNETS, HOST)
        loop = asyncio.get_running_loop()
        echo_transport, echo = await loop.create_datagram_endpoint(Echo, local_addr=(HOST, 0))
        client = aioice.Connection(ice_controlling=True, components=1, use_ipv6=False)
        try:
            echo_port = echo_transport.get_extra_info("sockname")[1]
            call, mine = await ice_call(anchoring, client, echo_port)
            assert call.remote(Leg.A) == (HOST, mine.port)
            counters = anchoring.ice_counters
            assert counters.answered >= 2 and counters.nominations >= 1
            assert counters.refused == 0
            await echo_rtp(client, echo)
            stats = engine.stats()
            assert (stats.packets, stats.stun_dropped) == (2 * PACKETS, 0)
        finally:
            await client.close()
            echo_transport.close()
            await anchoring.close()

    asyncio.run(main())


def edge_settings(tmp_path: Path) -> Settings:
    first = free_port()
    return parse_settings(
        {
            "Common": {"SIPDomains": "contoso.example", "SiteName": "Lab"},
            "EdgeServer": {
                "InternalServerIPs": HOST, "InternalPort": free_port(), "InternalProtocol": "UDP",
                "ExternalSIPIPs": HOST, "ExternalSIPPort": free_port(), "ExternalProtocol": "UDP",
                "ExternalMRIPs": HOST, "ExternalMRPortRange": f"{first}-{min(first + 40, 65535)}",
            },
            "MediationServer": {"IP": HOST, "InternalPort": free_port(), "InternalProtocol": "UDP"},
            "Online": {"SIPAddresses": HOST, "SIPPort": free_port(), "SIPProtocol": "UDP"},
            "Management": {"StateDirectory": str(tmp_path)},
            "MediaRelay": {"UDPPort": free_port(), "TCPPort": False, "MRASPort": free_port()},
        }
    )  # fmt: skip


def test_a_relayed_candidate_on_the_edges_turn_reaches_the_anchor(tmp_path: Path) -> None:
    """aioice with only its TURN allocation on the edge's own relay (MRAS credentials,
    ``transport_policy=RELAY``): its checks reach the anchor's port through TURN (allowed:
    the anchoring ports), the nomination latches the anchor on the allocation's address,
    and the RTP goes client -> TURN -> anchor -> echo and back."""

    async def main() -> None:
        settings = edge_settings(tmp_path)
        site = SiteTls.ensure(settings, tmp_path / "pki")  # MRAS is mutual TLS: site certificates
        mras_ssl = site.contexts["appliance"].server
        media = await open_media_relay(settings, [EXTERNAL], mras_ssl=mras_ssl)
        assert media is not None and media.anchoring is not None
        anchoring = media.anchoring
        loop = asyncio.get_running_loop()
        echo_transport, echo = await loop.create_datagram_endpoint(Echo, local_addr=(HOST, 0))
        creds = media.issuer.issue("sip:alice@contoso.example", time.time())
        client = aioice.Connection(
            ice_controlling=True, components=1, use_ipv6=False,
            turn_server=(HOST, media.relay.address[1]), turn_username=creds.username,
            turn_password=creds.password, transport_policy=aioice.TransportPolicy.RELAY,
        )  # fmt: skip
        try:
            echo_port = echo_transport.get_extra_info("sockname")[1]
            call, mine = await ice_call(anchoring, client, echo_port)
            assert mine.type == "relay"
            assert call.remote(Leg.A) == (mine.host, mine.port)  # the TURN allocation
            assert anchoring.ice_counters.nominations >= 1
            await echo_rtp(client, echo)
            counts = media.relay.counters
            assert counts["to_peer"] >= PACKETS and counts["from_peer"] >= PACKETS
            assert counts.get("peer_own", 0) == 0
        finally:
            await client.close()
            echo_transport.close()
            await media.close()

    asyncio.run(main())
