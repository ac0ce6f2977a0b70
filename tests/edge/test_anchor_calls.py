"""The edge's anchoring decisions (:mod:`hybridvoice.edge.anchor_calls`), sans-IO: every SDP of
an anchored call is rewritten whichever message carries it (a late offer: the offer in the 2xx,
the answer in the ACK; PRACK, UPDATE, re-INVITE), and the idle sweep on a fake clock."""

from __future__ import annotations

import pytest

from hybridvoice.edge.anchor import MediaAddress, sdp_media
from hybridvoice.edge.anchor_calls import AnchoredCall, IdleSweep, cross
from hybridvoice.media import Leg
from hybridvoice.media.ice_lite import IceCredentials
from hybridvoice.sip.message import Request, Response, make_ack, make_response
from hybridvoice.sip.parser import parse_message
from hybridvoice.sip.sdp import SessionDescription

EXTERNAL = MediaAddress("198.51.100.10", 50000, 50001)  # what the client is told
INTERNAL = MediaAddress("10.0.0.5", 50002, 50003)  # what the mediation role is told
CLIENT = "203.0.113.5"
MEDIATION = "10.0.0.7"


def sdp(address: str, port: int = 4000) -> bytes:
    return (f"v=0\r\no=- 1 1 IN IP4 {address}\r\ns=-\r\nc=IN IP4 {address}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n").encode()  # fmt: skip


def request(method: str, body: bytes = b"", cseq: int = 1) -> Request:
    head = (
        f"{method} sip:+15550100@contoso.example SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1\r\n"
        "From: <sip:alice@contoso.example>;tag=a\r\nTo: <sip:+15550100@contoso.example>\r\n"
        f"Call-ID: call-1\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n"
    )
    if body:
        head += "Content-Type: application/sdp\r\n"
    message = parse_message(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
    assert isinstance(message, Request)
    return message


def answer(req: Request, status: int, body: bytes = b"") -> Response:
    if body:
        return make_response(req, status, body=body, content_type="application/sdp")
    return make_response(req, status)


def call() -> AnchoredCall:
    return AnchoredCall("call-1", EXTERNAL, INTERNAL)


def test_a_late_offer_is_rewritten_in_the_2xx_and_the_ack() -> None:
    state = call()
    invite = request("INVITE")  # RFC 3261 §13.2.1: no offer
    assert cross(state, invite, toward_external=False).body is None
    ok = answer(invite, 200, sdp(MEDIATION, 6000))  # the offer, toward the client
    decision = cross(state, ok, toward_external=True)
    assert decision.came_from is Leg.B and decision.remote == MediaAddress(MEDIATION, 6000, 6001)
    assert decision.body is not None and sdp_media(decision.body) == EXTERNAL
    assert state.answered
    ack = make_ack(invite, ok)
    ack.set_body(sdp(CLIENT, 4000), "application/sdp")  # the answer, toward mediation
    decision = cross(state, ack, toward_external=False)
    assert decision.came_from is Leg.A and decision.remote == MediaAddress(CLIENT, 4000, 4001)
    assert decision.body is not None and sdp_media(decision.body) == INTERNAL


@pytest.mark.parametrize("method", ["INVITE", "UPDATE", "PRACK"])
def test_every_sdp_in_dialog_is_rewritten_both_ways(method: str) -> None:
    state = call()
    state.answered = True
    offer = request(method, sdp(CLIENT, 4100), cseq=2)  # from the client: a new address
    decision = cross(state, offer, toward_external=False)
    assert decision.remote == MediaAddress(CLIENT, 4100, 4101)
    assert decision.body is not None and sdp_media(decision.body) == INTERNAL
    reply = answer(offer, 200, sdp(MEDIATION, 6100))
    decision = cross(state, reply, toward_external=True)
    assert decision.body is not None and sdp_media(decision.body) == EXTERNAL
    assert not decision.release


def test_early_media_and_the_ends_of_a_call() -> None:
    state = call()
    invite = request("INVITE", sdp(CLIENT))
    ringing = answer(invite, 183, sdp(MEDIATION, 6000))
    decision = cross(state, ringing, toward_external=True)
    assert decision.body is not None and sdp_media(decision.body) == EXTERNAL
    assert cross(state, answer(invite, 486), toward_external=True).release
    state = call()
    cross(state, answer(invite, 200, sdp(MEDIATION)), toward_external=True)
    assert not cross(state, answer(invite, 500), toward_external=True).release  # after a 2xx
    assert cross(state, request("BYE", cseq=2), toward_external=True).release
    assert cross(state, request("OPTIONS", cseq=3), toward_external=True).body is None


def test_idle_sweep_deadlines_on_a_fake_clock() -> None:
    sweep = IdleSweep(idle_timeout=600, interval=60)
    assert sweep.next_deadline() is None
    sweep.add("quiet", 1000.0)
    sweep.add("talking", 1030.0)
    assert sweep.next_deadline() == 1060.0  # one deadline for all calls
    assert sweep.due(1059.0, {}) == []  # not yet due: nothing looked at
    packets = {"quiet": 0, "talking": 0}
    for now in range(1060, 1600, 60):
        packets["talking"] += 50
        assert sweep.due(float(now), packets) == []
    assert sweep.due(1600.0, packets) == ["quiet"]  # exactly 600 s after it was anchored
    assert sweep.next_deadline() == 1660.0 and len(sweep) == 1
    assert sweep.due(2200.0, packets) == ["talking"]  # silent since the sweep at 1540
    assert sweep.next_deadline() is None and len(sweep) == 0
    sweep.add("x", 3000.0)
    sweep.remove("x")
    assert sweep.next_deadline() is None
    with pytest.raises(ValueError, match="positive"):
        IdleSweep(idle_timeout=0)


ICE = IceCredentials("edge0001", "0123456789abcdef012345ab")


def ice_sdp(address: str, port: int = 4000, mux: bool = False) -> bytes:
    lines = sdp(address, port).decode()
    lines += "a=ice-ufrag:clnt\r\na=ice-pwd:clientpassword0123456789\r\n"
    lines += f"a=candidate:1 1 UDP 2130706431 {address} {port} typ host\r\n"
    return (lines + ("a=rtcp-mux\r\n" if mux else "")).encode()


def test_toward_the_client_the_edge_is_an_ice_lite_agent() -> None:
    state = AnchoredCall("call-1", EXTERNAL, INTERNAL, ice=ICE)
    invite = request("INVITE", ice_sdp(CLIENT))
    decision = cross(state, invite, toward_external=False)
    assert decision.remote_ice == IceCredentials("clnt", "clientpassword0123456789")
    assert decision.body is not None and b"ice-" not in decision.body  # none toward mediation
    assert b"candidate" not in decision.body
    ok = answer(invite, 200, sdp(MEDIATION, 6000))
    decision = cross(state, ok, toward_external=True)
    assert decision.body is not None
    parsed = SessionDescription.parse(decision.body)
    assert parsed.attribute("ice-lite") is not None  # session level (RFC 8839 §5.3)
    (audio,) = parsed.media
    assert audio.attribute("ice-ufrag").value == ICE.ufrag  # type: ignore[union-attr]
    assert audio.attribute("ice-pwd").value == ICE.pwd  # type: ignore[union-attr]
    assert [a.value for a in audio.attributes_named("candidate")] == [
        "1 1 UDP 2130706431 198.51.100.10 50000 typ host",
        "1 2 UDP 2130706430 198.51.100.10 50001 typ host",
    ]


def test_rtcp_mux_has_one_component_and_a_client_without_ice_gets_none() -> None:
    state = AnchoredCall("call-1", EXTERNAL, INTERNAL, ice=ICE)
    invite = request("INVITE", ice_sdp(CLIENT, mux=True))
    cross(state, invite, toward_external=False)
    muxed = answer(invite, 200, sdp(MEDIATION, 6000) + b"a=rtcp-mux\r\n")
    body = cross(state, muxed, toward_external=True).body or b""
    assert b"a=rtcp-mux" in body and body.count(b"a=candidate:") == 1
    plain = AnchoredCall("call-2", EXTERNAL, INTERNAL, ice=ICE)
    invite = request("INVITE", sdp(CLIENT))
    assert cross(plain, invite, toward_external=False).remote_ice is None
    body = cross(plain, answer(invite, 200, sdp(MEDIATION)), toward_external=True).body or b""
    assert b"ice" not in body and b"candidate" not in body  # RFC 8839: no ICE in the answer
    late = AnchoredCall("call-3", EXTERNAL, INTERNAL, ice=ICE)  # a late offer: ICE offered
    body = cross(late, answer(request("INVITE"), 200, sdp(MEDIATION)), True).body or b""
    assert b"a=ice-lite" in body and b"a=ice-ufrag:edge0001" in body


def multipart(*parts: tuple[str, bytes], boundary: str = "b-1") -> bytes:
    out = b"".join(
        f"--{boundary}\r\nContent-Type: {kind}\r\n\r\n".encode() + body + b"\r\n"
        for kind, body in parts
    )
    return out + f"--{boundary}--\r\n".encode()


def test_every_sdp_of_a_multipart_body_is_rewritten_and_other_parts_kept() -> None:
    """RFC 5621: SDP beside ISUP (multipart/mixed), and the two SDP versions of a Lync or
    Skype for Business client (multipart/alternative, the last preferred): every SDP names
    the relay, the client's address is taken from the preferred one, the ISUP part is kept
    byte for byte. Before: a multipart body crossed untouched, internal addresses and all."""
    state = call()
    isup = b"\x01\x00\x49\x00\x00\x03\x02\x00\x07\x04\x10"
    alternative = multipart(
        ("application/sdp", sdp(CLIENT, 4000)), ("application/sdp", sdp(CLIENT, 4200))
    )
    offer = request("INVITE", alternative)
    offer.headers.set("Content-Type", 'multipart/alternative;boundary="b-1"')
    decision = cross(state, offer, toward_external=False)
    assert decision.came_from is Leg.A and decision.remote == MediaAddress(CLIENT, 4200, 4201)
    assert decision.body is not None and decision.body.count(b"--b-1\r\n") == 2
    assert decision.body.count(b"c=IN IP4 10.0.0.5\r\n") == 2 and CLIENT.encode() not in (
        decision.body
    )
    reply = answer(offer, 200, multipart(("application/sdp", sdp(MEDIATION, 6000)),
                                         ("application/isup", isup)))  # fmt: skip
    reply.headers.set("Content-Type", "multipart/mixed; boundary=b-1")
    decision = cross(state, reply, toward_external=True)
    assert decision.remote == MediaAddress(MEDIATION, 6000, 6001)
    assert decision.body is not None and MEDIATION.encode() not in decision.body
    assert b"\r\n\r\n" + isup + b"\r\n--b-1--\r\n" in decision.body
    broken = request("INVITE", b"--b-1\r\nContent-Type: application/sdp\r\n\r\n" + sdp(CLIENT))
    broken.headers.set("Content-Type", "multipart/mixed; boundary=b-1")  # never closed
    assert cross(call(), broken, toward_external=False).body is None
