"""The edge's media anchoring core (:mod:`hybridvoice.edge.anchor`) and the bypass rule for
media anchored at the edge."""

from __future__ import annotations

import ipaddress

from hybridvoice.edge.anchor import MediaAddress, offer_from_outside, rewrite_sdp, sdp_media
from hybridvoice.mediation.bypass import BypassPolicy, ClientMedia, GatewayMedia, decide_bypass
from hybridvoice.sip.sdp import SessionDescription

INTERNAL = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.0/8"))
ICE_OFFER = (
    b"v=0\r\no=- 1 1 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\n"
    b"a=ice-options:trickle\r\n"
    b"m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtcp:4005\r\n"
    b"a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n"
    b"a=candidate:1 1 UDP 2130706431 203.0.113.5 4000 typ host\r\n"
    b"m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
)
INSIDE = (
    b"v=0\r\no=- 1 1 IN IP4 10.1.2.3\r\ns=-\r\nc=IN IP4 10.1.2.3\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\n"
)


def test_media_address_and_outside() -> None:
    assert sdp_media(ICE_OFFER) == MediaAddress("203.0.113.5", 4000, 4005)
    assert sdp_media(INSIDE) == MediaAddress("10.1.2.3", 4000, 4001)
    assert offer_from_outside(ICE_OFFER, INTERNAL)
    assert not offer_from_outside(INSIDE, INTERNAL)
    assert not offer_from_outside(b"not sdp", INTERNAL)
    assert not offer_from_outside(b"", INTERNAL)
    hold = INSIDE.replace(b"c=IN IP4 10.1.2.3", b"c=IN IP4 0.0.0.0")
    assert sdp_media(hold) is None


def test_rewrite_puts_audio_on_the_relay_drops_ice_and_other_streams() -> None:
    new = rewrite_sdp(ICE_OFFER, "192.0.2.9", 50010, 50011)
    assert new is not None
    sdp = SessionDescription.parse(new)
    audio, video = sdp.media
    assert audio.port == 50010 and audio.rtcp is not None and audio.rtcp.port == 50011
    assert audio.effective_connection(sdp).address == "192.0.2.9"  # type: ignore[union-attr]
    assert video.port == 0
    text = new.decode()
    assert "candidate" not in text and "ice-" not in text
    assert "a=rtpmap:0 PCMU/8000" in text
    assert sdp_media(new) == MediaAddress("192.0.2.9", 50010, 50011)
    assert rewrite_sdp(b"garbage", "192.0.2.9", 1, 2) is None


def test_media_anchored_at_the_edge_never_bypasses() -> None:
    policy = BypassPolicy(enabled=True, internal_subnets=INTERNAL,
                          edge_relays=frozenset({"10.9.9.9"}))  # fmt: skip
    gateway = GatewayMedia("gw", media_bypass=True)
    via_relay = decide_bypass(policy, client=ClientMedia("10.9.9.9", 50010), via_edge=False,
                              gateway=gateway)  # fmt: skip
    assert not via_relay.bypass and via_relay.reason == "external client via edge"
    inside = decide_bypass(policy, client=ClientMedia("10.1.2.3", 4000), via_edge=False,
                           gateway=gateway)  # fmt: skip
    assert inside.bypass
    ranged = BypassPolicy(
        enabled=True, internal_subnets=INTERNAL, edge_relays=frozenset({"127.0.0.1"}),
        edge_relay_ports=(50000, 50099),
    )  # fmt: skip
    lab_client = ClientMedia("127.0.0.1", 40000)  # a lab client on the relay's host
    assert decide_bypass(ranged, client=lab_client, via_edge=False, gateway=gateway).bypass
    relayed = ClientMedia("127.0.0.1", 50010)
    assert not decide_bypass(ranged, client=relayed, via_edge=False, gateway=gateway).bypass


def test_rewrite_hides_the_far_ends_address_in_the_origin() -> None:
    """The o= line names the relay, not the internal host that made the SDP (topology
    hiding: an internet client must not learn the site's internal addresses); the session
    id and version stay the far end's, so a repeated offer is still recognised (RFC 3264 §8)."""
    new = rewrite_sdp(INSIDE, "192.0.2.9", 50010, 50011)
    assert new is not None
    origin = SessionDescription.parse(new).origin
    assert (origin.addrtype, origin.address) == ("IP4", "192.0.2.9")
    assert (origin.sess_id, origin.sess_version) == ("1", 1)
    assert b"10.1.2.3" not in new
    v6 = rewrite_sdp(INSIDE, "2001:db8::9", 50010, 50011)
    assert v6 is not None and SessionDescription.parse(v6).origin.addrtype == "IP6"
