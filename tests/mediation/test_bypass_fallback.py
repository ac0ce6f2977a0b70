"""Media bypass fallback, end to end through the role with real UDP RTP: tenant bypass on, an
internal client that speaks only PCMU, a gateway that speaks only PCMA. The bypassed offer
reaches the gateway unchanged; its 488 (or its answer with no shared codec) makes the role
anchor the call instead and transcode mu-law <-> A-law in its relay; the record says
anchored, "codec mismatch"."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import pytest
from lab_harness import WAIT, Lab, lab, run, sdp, settle
from rtp_harness import MediaEnd, media_end

from hybridvoice.media import Leg, RelayMode, alaw_to_ulaw, ulaw_to_alaw
from hybridvoice.mediation.bypass import BypassPolicy, MediaMode
from hybridvoice.mediation.media_plan import CODEC_MISMATCH, TRANSCODING_NOTE, shares_codec
from hybridvoice.mediation.media_sdp import parse_sdp
from hybridvoice.mediation.records import CallRecord, FailoverAttempt
from hybridvoice.net.ua import Call
from hybridvoice.sip.sdp import SdpError
from hybridvoice.sip.session import Answered, Offer

SPEECH = bytes(range(0, 256, 2)) + bytes(range(1, 64, 2))  # 160 varied samples


def pcma(port: int) -> bytes:
    return (
        f"v=0\r\no=gw 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n"
    ).encode()


def bypass_on(lab_: Lab) -> None:
    lab_.role.set_bypass(
        BypassPolicy(enabled=True, internal_subnets=(ipaddress.ip_network("127.0.0.0/8"),))
    )
    assert lab_.role.trunks is not None
    for gw in lab_.role.trunks:
        gw.config = gw.config.model_copy(update={"media_bypass": True})


def formats(body: bytes | None) -> tuple[str, ...]:
    assert body is not None
    parsed = parse_sdp(body)
    assert parsed is not None
    return parsed.media[0].formats


def port_of(body: bytes | None) -> int:
    assert body is not None
    parsed = parse_sdp(body)
    assert parsed is not None
    return parsed.media[0].port


async def talk(lab_: Lab, a: Call, client: MediaEnd, gateway: MediaEnd) -> None:
    """30 PCMU packets from the client, 20 PCMA from the gateway, through the relay."""
    relay = lab_.role.relay
    assert relay is not None
    (relayed,) = relay.calls.values()
    for _ in range(30):
        client.send_rtp(("127.0.0.1", relayed.local(Leg.A)[1]), 0, SPEECH)
    for _ in range(20):
        gateway.send_rtp(("127.0.0.1", relayed.local(Leg.B)[1]), 8, SPEECH)
    heard_by_gateway = await gateway.expect_rtp(30)
    heard_by_client = await client.expect_rtp(20)
    assert {p.payload_type for p in heard_by_gateway} == {8}
    assert {p.payload for p in heard_by_gateway} == {ulaw_to_alaw(SPEECH)}
    assert {p.payload_type for p in heard_by_client} == {0}
    assert {p.payload for p in heard_by_client} == {alaw_to_ulaw(SPEECH)}
    stats = lab_.role.b2bua.recent_media(a.call_id)
    assert stats is not None and stats.mode is RelayMode.TRANSCODE


async def final_record(lab_: Lab, a: Call) -> CallRecord:
    await settle(lab_)
    records = lab_.role.records
    assert records is not None
    await records.aflush()
    record = records.by_call_id(a.call_id)
    assert record is not None
    return record


def check_media_record(record: CallRecord) -> None:
    assert record.media_mode is MediaMode.ANCHORED
    assert record.media_reason == CODEC_MISMATCH + TRANSCODING_NOTE
    assert record.a_media is not None and record.b_media is not None
    assert (record.a_media.packets_received, record.a_media.packets_sent) == (30, 20)
    assert (record.b_media.packets_received, record.b_media.packets_sent) == (20, 30)
    assert record.a_media.bytes_received == 30 * (12 + len(SPEECH))


def test_a_488_to_the_bypassed_offer_is_retried_anchored_with_transcoding(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with (
            lab(tmp_path, relay=True) as lab_,
            media_end() as client,
            media_end() as gateway,
        ):
            bypass_on(lab_)
            a = lab_.call_out(offer=sdp(client.port))  # PCMU only
            first = await lab_.gateways[0].next_call()
            assert first.invite.body == sdp(client.port)  # bypass: the client's own offer
            first.reject(488)
            second = await lab_.gateways[0].next_call()  # the same gateway, anchored
            assert formats(second.invite.body) == ("0", "8")
            assert port_of(second.invite.body) != client.port
            second.answer(pcma(gateway.port))
            answered = await a.answered(WAIT)
            assert isinstance(answered, Answered)
            assert formats(answered.sdp) == ("0",)  # the client hears its own law
            assert port_of(answered.sdp) != gateway.port  # ... from the relay
            await talk(lab_, a, client, gateway)
            a.bye()
            await second.ended(WAIT)
            record = await final_record(lab_, a)
            check_media_record(record)
            assert record.attempts == (FailoverAttempt("Gateway1", "488: retried anchored"),)
            assert lab_.role.b2bua.stats.failovers == 0

    run(main())


def test_an_answer_with_no_shared_codec_is_anchored_with_a_reinvite(tmp_path: Path) -> None:
    async def main() -> None:
        async with (
            lab(tmp_path, relay=True) as lab_,
            media_end() as client,
            media_end() as gateway,
        ):
            bypass_on(lab_)
            a = lab_.call_out(offer=sdp(client.port))
            b = await lab_.gateways[0].next_call()
            assert b.invite.body == sdp(client.port)
            b.answer(pcma(gateway.port))  # no PCMU: no codec of the offer
            answered = await a.answered(WAIT)
            assert isinstance(answered, Answered)
            assert formats(answered.sdp) == ("0",) and port_of(answered.sdp) != gateway.port
            reoffer = await b.wait_for(Offer, WAIT)  # the gateway leg moves to the relay
            assert isinstance(reoffer, Offer) and reoffer.sdp is not None
            assert formats(reoffer.sdp) == ("0", "8")
            first = parse_sdp(sdp(client.port))
            again = parse_sdp(reoffer.sdp)
            assert first is not None and again is not None
            assert again.origin.sess_version == first.origin.sess_version + 1
            b.accept_offer(pcma(gateway.port))
            await asyncio.sleep(0.05)
            await talk(lab_, a, client, gateway)
            a.bye()
            await b.ended(WAIT)
            check_media_record(await final_record(lab_, a))

    run(main())


def test_a_shared_codec_keeps_the_bypass(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path, relay=True) as lab_, media_end() as client:
            bypass_on(lab_)
            a = lab_.call_out(offer=sdp(client.port))
            b = await lab_.gateways[0].next_call()
            b.answer(sdp(client.port + 2))
            assert await a.answered(WAIT) == Answered(sdp(client.port + 2))
            a.bye()
            await b.ended(WAIT)
            record = await final_record(lab_, a)
            assert record.media_mode is MediaMode.BYPASS

    run(main())


def test_shares_codec() -> None:
    assert shares_codec(sdp(6000), sdp(7000))
    assert not shares_codec(sdp(6000), pcma(7000))
    with pytest.raises(SdpError):  # not SDP: the bridge's guard refuses the call (488)
        shares_codec(b"not sdp", pcma(7000))
