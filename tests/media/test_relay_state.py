"""Relay bookkeeping: latching rules (RFC 4961 spirit), counters, RTCP reports, transcoding."""

from __future__ import annotations

import pytest

from hybridvoice.media import (
    ULAW_TO_ALAW,
    LatchPolicy,
    Leg,
    ReceiverReport,
    RelayMode,
    RelaySession,
    ReportBlock,
    RtpPacket,
    TelephoneEvent,
    serialize_rtcp,
    transcode_in_place,
)

GW = ("192.0.2.10", 4000)


def session(window: int = 4, same_ip: bool = True) -> RelaySession:
    return RelaySession("c1", (50000, 50001), (50002, 50003), LatchPolicy(window, same_ip))


def accept(s: RelaySession, leg: Leg, src: tuple[str, int]) -> bool:
    state = s.leg(leg)
    ok = src == state.rtp_remote or state.latch_rtp(src)
    if ok:
        state.on_rtp(bytes(RtpPacket(sequence_number=state.packets)), 12, 0.0)
    return ok


def test_no_remote_yet_latches_first_source() -> None:
    s = session()
    assert accept(s, Leg.B, GW)
    assert s.b.rtp_remote == GW and s.b.relatched == 1


def test_relatch_within_window_then_only_same_ip() -> None:
    s = session(window=4)
    s.set_remote(Leg.B, *GW)
    assert s.b.rtcp_remote == ("192.0.2.10", 4001)
    assert accept(s, Leg.B, ("192.0.2.99", 7000))  # NAT: the real source differs from SDP
    assert s.b.rtp_remote == ("192.0.2.99", 7000)
    for _ in range(4):
        assert accept(s, Leg.B, ("192.0.2.99", 7000))
    assert not accept(s, Leg.B, ("198.51.100.1", 7000))  # stranger after the window: dropped
    assert s.b.dropped == 1 and s.b.rtp_remote == ("192.0.2.99", 7000)
    assert accept(s, Leg.B, ("192.0.2.99", 7002))  # same IP, new port: NAT rebinding
    assert s.b.rtp_remote == ("192.0.2.99", 7002)


def test_same_ip_guard_can_be_turned_off_and_set_remote_reopens_window() -> None:
    s = session(window=1, same_ip=False)
    s.set_remote(Leg.A, "10.0.0.5", 30000)
    assert accept(s, Leg.A, ("10.0.0.5", 30000))
    assert not accept(s, Leg.A, ("10.0.0.5", 30002))
    s.set_remote(Leg.A, "10.0.0.6", 30000)  # re-INVITE: new SDP, new window
    assert accept(s, Leg.A, ("10.0.0.6", 31000))


def test_rtcp_latches_separately_and_feeds_reported_loss() -> None:
    s = session(window=0)
    s.set_remote(Leg.B, *GW)
    rr = ReceiverReport(5, (ReportBlock(0x1234, fraction_lost=64, cumulative_lost=12, jitter=80),))
    assert not s.b.latch_rtcp(("203.0.113.1", 4001))
    s.b.on_rtcp(serialize_rtcp([rr]))
    s.b.on_rtcp(b"garbage")
    st = s.stats().b
    assert st.rtcp_packets == 2 and st.rtcp_dropped == 1
    assert st.reported_fraction_lost == 0.25 and st.reported_cumulative_lost == 12
    assert st.reported_jitter_ms == 10.0
    assert s.b.rtcp_errors == 1


def test_counters_and_sequence_loss() -> None:
    s = session()
    s.set_remote(Leg.A, "10.0.0.5", 30000)
    for seq in (1, 2, 3, 5, 6):
        s.a.on_rtp(bytes(RtpPacket(sequence_number=seq, timestamp=160 * seq)), 172, 0.02 * seq)
    st = s.stats().a
    assert (st.packets, st.bytes, st.expected, st.lost) == (5, 5 * 172, 6, 1)
    assert st.leg is Leg.A and st.remote == ("10.0.0.5", 30000)


def test_transcode_pcmu_to_pcma_keeps_header_and_telephone_events() -> None:
    s = session()
    s.set_codecs(0, 8)
    assert s.mode is RelayMode.TRANSCODE
    tc_ab, tc_ba = s.a.transcoder, s.b.transcoder
    assert tc_ab is not None and tc_ba is not None
    assert (tc_ab.from_pt, tc_ab.to_pt, tc_ba.from_pt, tc_ba.to_pt) == (0, 8, 8, 0)
    payload = bytes(range(160))
    pkt = RtpPacket(0, 7, 1120, 0xCAFE, marker=True, csrc=(3,), payload=payload, padding_size=4)
    buf = bytearray(bytes(pkt)) + bytearray(10)  # spare room, as the engine's buffer has
    assert transcode_in_place(buf, len(bytes(pkt)), tc_ab)
    out = RtpPacket.parse(bytes(buf[: len(bytes(pkt))]))
    assert out.payload_type == 8 and out.marker and out.csrc == (3,) and out.padding_size == 4
    assert out.payload == payload.translate(ULAW_TO_ALAW)
    dtmf = bytearray(bytes(RtpPacket(101, 8, 1120, 0xCAFE, payload=bytes(TelephoneEvent(5)))))
    assert not transcode_in_place(dtmf, len(dtmf), tc_ab)  # RFC 4733 passes untouched
    s.set_codecs(8, 8)
    assert s.stats().mode == RelayMode.PASSTHROUGH and s.a.transcoder is None
    with pytest.raises(ValueError):
        s.set_codecs(0, 18)
