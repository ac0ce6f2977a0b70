"""RTCP SR/RR/SDES/BYE parse and serialise (RFC 3550 §6.4-§6.6), compound packets."""

from __future__ import annotations

import pytest

from hybridvoice.media import (
    Bye,
    MediaParseError,
    ReceiverReport,
    ReportBlock,
    SdesChunk,
    SenderReport,
    SourceDescription,
    UnknownRtcp,
    parse_rtcp,
    serialize_rtcp,
)

# A compound SR + SDES(CNAME) as a softphone sends it: SR from 0x11223344 with one report
# block about 0xdeadbeef: fraction 0x40 (25 %), cumulative 5, highest seq 0x0001ffff,
# jitter 80, LSR 0x12345678, DLSR 0x00010000.
SR_SDES = bytes.fromhex(
    "81c8000c"
    "11223344"
    "e3e1c3a0"
    "80000000"
    "000a0000"
    "00000064"
    "00003e80"
    "deadbeef"
    "40000005"
    "0001ffff"
    "00000050"
    "12345678"
    "00010000"
    "81ca0006"
    "11223344"
    "010c" + b"user@example".hex() + "0000"
    "00000000"
)


def test_parse_sender_report_with_sdes() -> None:
    sr, sdes = parse_rtcp(SR_SDES)
    assert isinstance(sr, SenderReport) and isinstance(sdes, SourceDescription)
    assert sr.ssrc == 0x11223344 and sr.packet_count == 100 and sr.octet_count == 16000
    assert sr.ntp_timestamp == 0xE3E1C3A080000000 and sr.rtp_timestamp == 0xA0000
    (block,) = sr.reports
    assert block == ReportBlock(0xDEADBEEF, 0x40, 5, 0x1FFFF, 80, 0x12345678, 0x10000)
    assert block.loss_ratio == 0.25
    assert sdes.chunks[0].cname == b"user@example"


def test_receiver_report_negative_cumulative_loss_and_bye() -> None:
    rr = ReceiverReport(7, (ReportBlock(8, 0, -3, 70000, 12),))
    bye = Bye((7, 9), b"hangup")
    data = serialize_rtcp([rr, bye])
    assert parse_rtcp(data) == (rr, bye)
    assert len(data) % 4 == 0


def test_round_trip_every_type() -> None:
    packets = (
        SenderReport(1, 2, 3, 4, 5, (ReportBlock(6, 1, 2, 3, 4, 5, 6),)),
        ReceiverReport(1),
        SourceDescription((SdesChunk(1, ((1, b"a@b"), (2, b"Alice"))), SdesChunk(2, ()))),
        Bye((1,)),
        UnknownRtcp(204, 1, b"\x00\x00\x00\x01name"),
    )
    assert parse_rtcp(serialize_rtcp(packets)) == packets


@pytest.mark.parametrize(
    "data",
    [
        b"\x81\xc9",
        bytes.fromhex("41c9000100000001"),  # version 1
        bytes.fromhex("81c9000700000001"),  # length runs past
        bytes.fromhex("81c9000100000001"),  # one report block announced, none there
        bytes.fromhex("a1c9000100000001") + bytes.fromhex("80c9000100000002"),  # pad early
    ],
)
def test_malformed(data: bytes) -> None:
    with pytest.raises(MediaParseError):
        parse_rtcp(data)
