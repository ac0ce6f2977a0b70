"""The media plan of anchored calls (RFC 3264 §6 and §8, RFC 3551 §6, RFC 4733): the other
G.711 law added to offers, answers renamed to the offerer's law with the relay transcoding,
passthrough when the far end shares a codec, later offers from either leg, kept counters; and
the same through the B2BUA with real UAs on loopback."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path
from types import SimpleNamespace

import pytest
from lab_harness import ANSWER, OFFER, WAIT, Lab, lab, run, sdp, settle

from hybridvoice.cms.settings import Gateway
from hybridvoice.media import CallStats, Leg, PortBlock, RelayMode, RelaySession
from hybridvoice.media.relay import transcode_in_place
from hybridvoice.mediation.bypass import BypassPolicy, MediaMode
from hybridvoice.mediation.call_events import REOFFER, ArmTimer
from hybridvoice.mediation.call_flow import reoffer_done
from hybridvoice.mediation.media_plan import (
    INBOUND_PENDING,
    REOFFER_RETRY,
    TRANSCODING_NOTE,
    MediaPlan,
    RecentMedia,
    add_other_law,
    answer_in_law,
    decide_inbound,
    decide_on_answer,
    decide_outbound,
)
from hybridvoice.net.relay import RelayCall
from hybridvoice.sip.sdp import SdpError, SessionDescription
from hybridvoice.sip.session import Answered, Offer, OfferAnswered, OfferRejected


def body(port: int, formats: str, *rtpmaps: str, host: str = "10.0.0.5") -> bytes:
    lines = [
        "v=0", f"o=hv 1 {port} IN IP4 {host}", "s=-", f"c=IN IP4 {host}", "t=0 0",
        f"m=audio {port} RTP/AVP {formats}", *(f"a=rtpmap:{m}" for m in rtpmaps), "a=sendrecv",
    ]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n").encode()


PCMU = "0 PCMU/8000"
PCMA = "8 PCMA/8000"
DTMF = "101 telephone-event/8000"


def parse(data: bytes) -> SessionDescription:
    return SessionDescription.parse(data)


def audio(data: bytes) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(formats, rtpmap values) of the first stream."""
    media = parse(data).media[0]
    return media.formats, tuple(a.value or "" for a in media.attributes_named("rtpmap"))


def relay_call() -> RelayCall:
    block = PortBlock(40000)
    session = RelaySession("c1", (block.a_rtp, block.a_rtcp), (block.b_rtp, block.b_rtcp))
    return RelayCall("c1", "192.0.2.1", block, session)


# --- the SDP functions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("formats", "rtpmaps", "own", "added", "expected"),
    [
        ("0 101", (PCMU, DTMF), "PCMU", "PCMA", ("0", "8", "101")),
        ("8", (PCMA,), "PCMA", "PCMU", ("8", "0")),
        ("18 0 101", (PCMU, DTMF), "PCMU", "PCMA", ("18", "0", "8", "101")),
    ],
)
def test_the_other_law_is_offered_right_after_the_only_one(
    formats: str, rtpmaps: tuple[str, ...], own: str, added: str, expected: tuple[str, ...]
) -> None:
    sdp, got_own, got_added = add_other_law(parse(body(6000, formats, *rtpmaps)))
    assert (got_own, got_added) == (own, added)
    assert sdp.media[0].formats == expected
    assert f"{'8 PCMA' if added == 'PCMA' else '0 PCMU'}/8000" in {
        a.value for a in sdp.media[0].attributes_named("rtpmap")
    }


@pytest.mark.parametrize(
    ("formats", "rtpmaps"),
    [
        ("0 8 101", (PCMU, PCMA, DTMF)),  # both laws: nothing to add
        ("18", ("18 G729/8000",)),  # no G.711
        ("96", ("96 PCMU/8000",)),  # PCMU under a dynamic type: the relay cannot transcode it
        ("0 8", (PCMU, "8 G722/8000")),  # 8 taken by something else (a broken offer)
    ],
)
def test_nothing_is_added_when_there_is_no_single_static_law(
    formats: str, rtpmaps: tuple[str, ...]
) -> None:
    original = parse(body(6000, formats, *rtpmaps))
    assert add_other_law(original) == (original, None, None)


def test_an_answer_in_the_added_law_is_renamed_to_the_offerers() -> None:
    sdp, transcode = answer_in_law(parse(body(7000, "8 101", PCMA, DTMF)), "PCMA", "PCMU")
    assert transcode
    formats, rtpmaps = audio(bytes(sdp))
    assert formats == ("0", "101")
    assert set(rtpmaps) == {PCMU, DTMF}


def test_an_answer_in_the_offerers_law_passes_without_the_added_one() -> None:
    sdp, transcode = answer_in_law(parse(body(7000, "0 8 101", PCMU, PCMA, DTMF)), "PCMA", "PCMU")
    assert not transcode
    assert audio(bytes(sdp)) == (("0", "101"), (PCMU, DTMF))


# --- the plan -------------------------------------------------------------------------------


def test_edge_pcmu_gateway_pcma_transcodes_and_anchors_both_legs() -> None:
    relay = relay_call()
    plan = MediaPlan(relay)
    offer = plan.offer(body(6000, "0 101", PCMU, DTMF, host="10.0.0.5"), Leg.A)
    to_gateway = parse(offer)
    assert to_gateway.media[0].formats == ("0", "8", "101")
    assert to_gateway.media[0].port == relay.local(Leg.B)[1]
    assert to_gateway.connection is not None and to_gateway.connection.address == "192.0.2.1"
    assert relay.remote(Leg.A) == ("10.0.0.5", 6000)

    answer = plan.answer(body(7000, "8 101", PCMA, DTMF, host="10.0.0.9"), Leg.B)
    assert audio(answer)[0] == ("0", "101")
    assert parse(answer).media[0].port == relay.local(Leg.A)[1]
    assert relay.remote(Leg.B) == ("10.0.0.9", 7000)
    assert plan.transcoding and relay.stats().mode is RelayMode.TRANSCODE
    session = relay.session
    assert session.a.transcoder is not None and session.b.transcoder is not None
    assert (session.a.transcoder.from_pt, session.a.transcoder.to_pt) == (0, 8)
    assert (session.b.transcoder.from_pt, session.b.transcoder.to_pt) == (8, 0)
    # a repeated answer (183 then 200) changes nothing
    assert plan.answer(body(7000, "8 101", PCMA, DTMF, host="10.0.0.9"), Leg.B) == answer


def test_telephone_event_packets_are_not_transcoded() -> None:
    relay = relay_call()
    relay.set_codecs(0, 8)
    transcoder = relay.session.a.transcoder
    assert transcoder is not None
    event = bytearray(b"\x80\x65\x00\x01" + bytes(8) + b"\x01\x0a\x00\xa0")  # PT 101
    assert not transcode_in_place(event, len(event), transcoder)
    assert event[1] == 0x65 and event[12:] == b"\x01\x0a\x00\xa0"
    voice = bytearray(b"\x80\x00\x00\x02" + bytes(8) + b"\xff" * 160)  # PT 0, mu-law silence
    assert transcode_in_place(voice, len(voice), transcoder)
    assert voice[1] == 8 and voice[12:] == b"\xd5" * 160  # A-law silence


def test_a_shared_codec_means_passthrough_even_after_transcoding() -> None:
    relay = relay_call()
    notes: list[str] = []
    plan = MediaPlan(relay, notes.append)
    plan.offer(body(6000, "0", PCMU), Leg.A)
    plan.answer(body(7000, "8", PCMA), Leg.B)
    assert plan.transcoding
    # the gateway re-offers PCMA (RFC 3264 §8): the edge is offered PCMU after it
    reoffer = plan.offer(body(7000, "8", PCMA, host="10.0.0.9"), Leg.B)
    assert audio(reoffer)[0] == ("8", "0")
    # the edge answers PCMA: both speak it now, the relay passes through
    reanswer = plan.answer(body(6000, "8", PCMA), Leg.A)
    assert audio(reanswer)[0] == ("8",)
    assert not plan.transcoding
    assert notes == [TRANSCODING_NOTE, ""]  # for the call record's media reason


def test_an_inbound_pcma_offer_answered_pcmu_by_the_edge_transcodes() -> None:
    relay = relay_call()
    plan = MediaPlan(relay)
    assert audio(plan.offer(body(7000, "8 101", PCMA, DTMF), Leg.B))[0] == ("8", "0", "101")
    assert audio(plan.answer(body(6000, "0 101", PCMU, DTMF), Leg.A))[0] == ("8", "101")
    a, b = relay.session.a.transcoder, relay.session.b.transcoder
    assert a is not None and b is not None
    assert (a.from_pt, a.to_pt, b.from_pt, b.to_pt) == (0, 8, 8, 0)


def test_bodies_that_are_not_sdp_are_refused_naming_the_line() -> None:
    """An anchored call cannot carry a body it cannot rewrite: the bridge's guard turns the
    error into a 488 with a Warning (test_call_guard.py)."""
    plan = MediaPlan(relay_call())
    with pytest.raises(SdpError, match="line 1 'not sdp'"):
        plan.offer(b"not sdp", Leg.A)
    with pytest.raises(SdpError, match="line 1 'not sdp'"):
        plan.answer(b"not sdp", Leg.B)


def test_late_anchoring_reoffers_the_gateway_offer_with_a_new_version() -> None:
    relay = relay_call()
    plan = MediaPlan(relay)
    gateway_offer = body(7000, "8 101", PCMA, DTMF, host="10.0.0.9")
    plan.anchor_late(gateway_offer)
    assert plan.reoffer is not None
    reoffer = parse(plan.reoffer)
    assert reoffer.origin.sess_version == parse(gateway_offer).origin.sess_version + 1
    assert reoffer.media[0].port == relay.local(Leg.A)[1]
    assert reoffer.media[0].formats == ("8", "0", "101")
    assert relay.remote(Leg.B) == ("10.0.0.9", 7000)
    # the client's first answer (to the gateway's own offer) anchors its side and goes to the
    # gateway with the relay's gateway side; the version toward the gateway is untouched
    answer = plan.answer(body(6000, "8 101", PCMA, DTMF), Leg.A)
    assert parse(answer).media[0].port == relay.local(Leg.B)[1]
    assert parse(answer).origin.sess_version == 6000
    assert relay.remote(Leg.A) == ("10.0.0.5", 6000)
    # later SDP toward the edge stays one version ahead (RFC 3264 §8)
    again = plan.offer(body(7000, "8", PCMA, host="10.0.0.9"), Leg.B)
    assert parse(again).origin.sess_version == 7001


def test_the_answer_or_refusal_of_our_reinvite() -> None:
    relay = relay_call()
    plan = MediaPlan(relay)
    plan.anchor_late(body(7000, "0", PCMU, host="10.0.0.9"))
    bridge = SimpleNamespace(plan=plan, offer_from=object(), b=None, finished=False, side="gateway")
    # glare: tried again REOFFER_RETRY later (RFC 3261 §14.1), a timer the adapter arms
    actions = reoffer_done(bridge, OfferRejected(491), 100.0)  # type: ignore[arg-type]
    assert actions == (ArmTimer(REOFFER, 100.0 + REOFFER_RETRY),)
    assert bridge.offer_from is None and plan.reoffer is not None
    answered = OfferAnswered(body(6002, "0", PCMU, host="192.0.2.7"))
    assert reoffer_done(bridge, answered, 101.0) == ()  # type: ignore[arg-type]
    assert plan.reoffer is None and relay.remote(Leg.A) == ("192.0.2.7", 6002)
    plan.reoffer = b"again"
    assert reoffer_done(bridge, OfferRejected(488), 102.0) == ()  # type: ignore[arg-type]
    assert plan.reoffer is None  # refused: given up


INTERNAL = BypassPolicy(enabled=True, internal_subnets=(ipaddress.ip_network("10.0.0.0/8"),))


def gateway(media_bypass: bool = True) -> Gateway:
    return Gateway(name="Gateway1", ip="10.0.0.9", media_bypass=media_bypass)


def test_inbound_decisions_before_and_on_the_answer() -> None:
    offer = body(7000, "0", PCMU, host="10.0.0.9")
    assert decide_inbound(INTERNAL, True, offer, gateway()) is INBOUND_PENDING
    off = BypassPolicy(enabled=False)
    assert decide_inbound(off, True, offer, gateway()).reason == (
        "bypass disabled in tenant network configuration"
    )
    assert decide_inbound(INTERNAL, True, offer, gateway(False)).reason == (
        "gateway Gateway1 has media bypass off"
    )
    assert decide_inbound(INTERNAL, False, offer, gateway()).mode is MediaMode.BYPASS
    assert decide_inbound(INTERNAL, True, b"", gateway()).mode is MediaMode.ANCHORED
    inside = decide_on_answer(INTERNAL, offer, body(6000, "0", PCMU, host="10.1.2.3"), gateway())
    assert inside.bypass and inside.reason == "bypass: internal client 10.1.2.3 in 10.0.0.0/8"
    outside = decide_on_answer(INTERNAL, offer, body(6000, "0", PCMU, host="192.0.2.7"), gateway())
    assert not outside.bypass
    assert outside.reason == "client 192.0.2.7 is not in the site's internal subnets"
    not_always = BypassPolicy(
        enabled=True, always_bypass=False, internal_subnets=INTERNAL.internal_subnets
    )
    # AlwaysBypass off: the gateway's address is the one its offer named (10.0.0.9)
    same = decide_on_answer(not_always, offer, body(6000, "0", PCMU, host="10.1.2.3"), gateway())
    assert same.bypass


def test_outbound_decisions() -> None:
    offer = body(6000, "0", PCMU, host="10.1.2.3")
    assert decide_outbound(INTERNAL, True, offer, gateway(), "10.0.0.9").bypass
    assert decide_outbound(INTERNAL, False, offer, gateway(), None).reason == "no relay engine"
    assert decide_outbound(INTERNAL, True, b"", gateway(), None).reason == (
        "no SDP offer in the INVITE"
    )
    assert decide_outbound(INTERNAL, True, offer, None, None).reason == "no gateway"


def test_recent_media_keeps_the_last_calls() -> None:
    recent = RecentMedia(size=2)
    stats = [relay_call().stats() for _ in range(3)]
    for n, s in enumerate(stats):
        recent.add(f"c{n}", s)
    assert len(recent) == 2
    assert recent.get("c0") is None
    assert recent.get("c2") is stats[2]


# --- through the B2BUA ----------------------------------------------------------------------


def pcma(port: int) -> bytes:
    return body(port, "8", PCMA, host="127.0.0.1")


def test_b2bua_transcodes_a_pcmu_caller_to_a_pcma_gateway_and_keeps_counters(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with lab(tmp_path, relay=True) as lab_:
            a = lab_.call_out(offer=OFFER)  # PCMU only
            b = await lab_.gateways[0].next_call()
            assert parse(b.invite.body).media[0].formats == ("0", "8")
            b.answer(pcma(7000))
            answered = await a.answered(WAIT)
            assert isinstance(answered, Answered) and answered.sdp is not None
            assert parse(answered.sdp).media[0].formats == ("0",)
            b2bua = lab_.role.b2bua
            live_record = lab_.role.records.live(a.call_id) if lab_.role.records else None
            assert live_record is not None and live_record.media_reason is not None
            assert live_record.media_reason.endswith(TRANSCODING_NOTE)
            live = b2bua.recent_media(a.call_id)
            assert isinstance(live, CallStats) and live.mode is RelayMode.TRANSCODE
            a.bye()
            await b.ended(WAIT)
            await settle(lab_)
            await asyncio.sleep(0.05)
            assert lab_.role.relay is not None and not lab_.role.relay.calls
            kept = b2bua.recent_media(a.call_id)  # released, still readable
            assert kept is not None and kept.mode is RelayMode.TRANSCODE
            assert b2bua.recent_media("no-such-call") is None
            records = lab_.role.records
            assert records is not None
            await records.aflush()
            record = records.by_call_id(a.call_id)
            assert record is not None and record.a_media is not None
            assert record.b_media is not None and record.a_media.jitter_ms == 0.0

    run(main())


# --- inbound calls and bypass ---------------------------------------------------------------

EXTERNAL = "198.51.100.7"  # a client outside the site's internal subnets (127.0.0.0/8)


def internal_policy() -> BypassPolicy:
    return BypassPolicy(enabled=True, internal_subnets=(ipaddress.ip_network("127.0.0.0/8"),))


def allow_gateway_bypass(lab_: Lab) -> None:
    assert lab_.role.trunks is not None
    for gw in lab_.role.trunks:
        gw.config = gw.config.model_copy(update={"media_bypass": True})


def test_inbound_internal_client_bypasses_the_relay(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path, relay=True) as lab_:
            lab_.role.set_bypass(internal_policy())
            allow_gateway_bypass(lab_)
            a = lab_.call_in(lab_.gateways[0])
            b = await lab_.cloud.next_call()
            assert b.invite.body == OFFER  # the gateway's own offer, unchanged
            b.answer(ANSWER)
            assert await a.answered(WAIT) == Answered(ANSWER)  # the client's own answer
            records, relay = lab_.role.records, lab_.role.relay
            assert records is not None and relay is not None
            live = records.live(a.call_id)
            assert live is not None and live.media_mode is MediaMode.BYPASS
            assert live.media_reason == "bypass: internal client 127.0.0.1 in 127.0.0.0/8"
            await asyncio.sleep(0.05)
            assert not relay.calls  # the relay held ready is released
            a.bye()
            await b.ended(WAIT)
            await settle(lab_)

    run(main())


def test_inbound_external_client_is_anchored_late_with_a_reinvite(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path, relay=True) as lab_:
            lab_.role.set_bypass(internal_policy())
            allow_gateway_bypass(lab_)
            a = lab_.call_in(lab_.gateways[0])
            b = await lab_.cloud.next_call()
            assert b.invite.body == OFFER
            b.answer(sdp(7000, host=EXTERNAL))
            answered = await a.answered(WAIT)
            relay = lab_.role.relay
            assert relay is not None
            (relayed,) = relay.calls.values()
            assert isinstance(answered, Answered) and answered.sdp is not None
            to_gateway = parse(answered.sdp)  # the relay's gateway side, not the client
            assert to_gateway.media[0].port == relayed.local(Leg.B)[1]
            assert to_gateway.connection is not None
            assert to_gateway.connection.address == "127.0.0.1"
            # the edge leg is re-INVITEd to the relay's edge side, a new version (RFC 3264 §8)
            offer = await b.wait_for(Offer, WAIT)
            assert isinstance(offer, Offer) and offer.sdp is not None
            reoffer = parse(offer.sdp)
            assert reoffer.media[0].port == relayed.local(Leg.A)[1]
            assert reoffer.origin.sess_version == parse(OFFER).origin.sess_version + 1
            b.accept_offer(sdp(7002, host=EXTERNAL))
            for _ in range(100):
                if relayed.remote(Leg.A) == (EXTERNAL, 7002):
                    break
                await asyncio.sleep(0.01)
            assert relayed.remote(Leg.A) == (EXTERNAL, 7002)
            assert relayed.remote(Leg.B) == ("127.0.0.1", 6000)
            records = lab_.role.records
            assert records is not None
            live = records.live(a.call_id)
            assert live is not None and live.media_mode is MediaMode.ANCHORED
            assert live.media_reason == f"client {EXTERNAL} is not in the site's internal subnets"
            a.bye()
            await b.ended(WAIT)
            await settle(lab_)

    run(main())


@pytest.mark.parametrize("case", ["tenant-bypass-off", "gateway-bypass-off"])
def test_inbound_without_bypass_possible_is_anchored_from_the_start(
    tmp_path: Path, case: str
) -> None:
    async def main() -> None:
        async with lab(tmp_path, relay=True) as lab_:
            if case == "tenant-bypass-off":
                allow_gateway_bypass(lab_)  # but tenant bypass stays off
                reason = "bypass disabled in tenant network configuration"
            else:
                lab_.role.set_bypass(internal_policy())
                reason = "gateway Gateway1 has media bypass off"
            a = lab_.call_in(lab_.gateways[0])
            b = await lab_.cloud.next_call()
            relay = lab_.role.relay
            assert relay is not None
            (relayed,) = relay.calls.values()
            assert parse(b.invite.body).media[0].port == relayed.local(Leg.A)[1]
            b.answer(ANSWER)
            await a.answered(WAIT)
            records = lab_.role.records
            assert records is not None
            live = records.live(a.call_id)
            assert live is not None and live.media_reason == reason
            a.bye()
            await b.ended(WAIT)
            await settle(lab_)

    run(main())
