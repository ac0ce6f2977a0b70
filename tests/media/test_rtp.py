"""RTP header parse/serialise (RFC 3550 §5.1), zero-copy accessors, RFC 4733 events."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridvoice.media import (
    MediaParseError,
    RtpPacket,
    TelephoneEvent,
    is_rtcp,
    rtp_header_size,
    rtp_payload_type,
    rtp_sequence,
    rtp_ssrc,
    rtp_timestamp,
    set_payload_type,
)

# A PCMU packet as a SIPp/baresip capture shows it: V=2, PT 0, seq 0x1234, ts 0x000a0000.
CAPTURED_PCMU = bytes.fromhex("80001234000a0000deadbeef") + b"\xff" * 160
# Marker set, PT 101 (telephone-event), two CSRCs, an RFC 8285 one-byte extension, padding 4.
CAPTURED_RICH = (
    bytes.fromhex("b2e5ffffffffffff01020304")
    + bytes.fromhex("0000000a0000000b")
    + bytes.fromhex("bede000110ff0000")
    + bytes.fromhex("058a03c0")
    + bytes.fromhex("00000004")
)


def test_parse_captured_pcmu() -> None:
    p = RtpPacket.parse(CAPTURED_PCMU)
    assert (p.payload_type, p.sequence_number, p.timestamp, p.ssrc) == (
        0,
        0x1234,
        0xA0000,
        0xDEADBEEF,
    )
    assert not p.marker and p.csrc == () and p.extension_profile is None
    assert p.payload == b"\xff" * 160 and p.padding_size == 0
    assert bytes(p) == CAPTURED_PCMU
    assert len(CAPTURED_PCMU) == 172


def test_parse_csrc_extension_padding_marker() -> None:
    p = RtpPacket.parse(CAPTURED_RICH)
    assert p.marker and p.payload_type == 101
    assert p.sequence_number == 0xFFFF and p.timestamp == 0xFFFFFFFF and p.ssrc == 0x01020304
    assert p.csrc == (10, 11)
    assert p.extension_profile == 0xBEDE and p.extension == bytes.fromhex("10ff0000")
    assert p.padding_size == 4
    assert p.header_size == 12 + 8 + 8
    assert TelephoneEvent.parse(p.payload) == TelephoneEvent(5, end=True, volume=10, duration=960)
    assert bytes(p) == CAPTURED_RICH


def test_accessors_read_without_parsing() -> None:
    mv = memoryview(bytearray(CAPTURED_RICH))
    assert rtp_sequence(mv) == 0xFFFF
    assert rtp_timestamp(mv) == 0xFFFFFFFF
    assert rtp_ssrc(mv) == 0x01020304
    assert rtp_payload_type(mv) == 101
    assert rtp_header_size(mv) == 28
    set_payload_type(mv, 8)
    assert rtp_payload_type(mv) == 8 and mv[1] & 0x80  # marker kept


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\x00\x00",  # short
        bytes.fromhex("40001234000a0000deadbeef"),  # version 1
        bytes.fromhex("8f001234000a0000deadbeef"),  # 15 CSRCs announced, none there
        bytes.fromhex("90001234000a0000deadbeef") + b"\xbe\xde\x00\x05",  # ext too long
        bytes.fromhex("a0001234000a0000deadbeef") + b"\x00\x00\x00\x00",  # padding count 0
        bytes.fromhex("a0001234000a0000deadbeef") + b"\x00\x00\x00\x09",  # padding > payload
    ],
)
def test_malformed_rejected(data: bytes) -> None:
    with pytest.raises(MediaParseError):
        RtpPacket.parse(data)


def test_rtcp_demux() -> None:
    assert is_rtcp(bytes.fromhex("80c80006") + bytes(24))  # SR
    assert not is_rtcp(CAPTURED_PCMU)
    assert not is_rtcp(bytes.fromhex("80e5"))  # too short


def test_telephone_event_round_trip_and_digits() -> None:
    for event, digit in ((0, "0"), (9, "9"), (10, "*"), (11, "#"), (15, "D")):
        ev = TelephoneEvent(event, end=False, volume=63, duration=0xFFFF)
        assert TelephoneEvent.parse(bytes(ev)) == ev and ev.digit == digit
    assert TelephoneEvent(16).digit is None
    with pytest.raises(MediaParseError):
        TelephoneEvent.parse(b"\x01\x02")


def test_invalid_fields_refused() -> None:
    with pytest.raises(ValueError):
        RtpPacket(payload_type=128)
    with pytest.raises(ValueError):
        RtpPacket(csrc=tuple(range(16)))
    with pytest.raises(ValueError):
        RtpPacket(extension_profile=1, extension=b"abc")


packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence_number=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    marker=st.booleans(),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    extension_profile=st.none() | st.integers(0, 0xFFFF),
    extension=st.binary(max_size=40).map(lambda b: b[: len(b) - len(b) % 4]),
    payload=st.binary(max_size=300),
    padding_size=st.integers(0, 255),
)


@given(packets)
def test_round_trip(p: RtpPacket) -> None:
    if p.extension_profile is None and p.extension:
        p = RtpPacket(**{**{f: getattr(p, f) for f in p.__slots__}, "extension": b""})
    data = bytes(p)
    assert RtpPacket.parse(data) == p
    assert rtp_sequence(data) == p.sequence_number
    assert rtp_ssrc(data) == p.ssrc
    assert rtp_timestamp(data) == p.timestamp
    assert rtp_payload_type(data) == p.payload_type
    assert rtp_header_size(data) == p.header_size
