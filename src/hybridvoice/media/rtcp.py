"""RTCP packets: SR, RR, SDES, BYE and compound packets (RFC 3550 §6.1, §6.4.1-§6.4.2, §6.5, §6.6).

Enough to read what the far end reports about the streams we relay: the report blocks'
fraction lost, cumulative number of packets lost, extended highest sequence number and
interarrival jitter. Other packet types (APP, feedback, XR) are kept opaque so a compound
packet still parses.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from .errors import MediaParseError

__all__ = [
    "RTCP_BYE",
    "RTCP_RR",
    "RTCP_SDES",
    "RTCP_SR",
    "Bye",
    "ReceiverReport",
    "ReportBlock",
    "RtcpPacket",
    "SdesChunk",
    "SenderReport",
    "SourceDescription",
    "UnknownRtcp",
    "parse_rtcp",
    "serialize_rtcp",
]

RTCP_SR: Final = 200
RTCP_RR: Final = 201
RTCP_SDES: Final = 202
RTCP_BYE: Final = 203

_HEADER: Final = struct.Struct("!BBH")
_BLOCK: Final = struct.Struct("!IB3sIIII")
_SR_INFO: Final = struct.Struct("!IQIII")

Buffer = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report block (RFC 3550 §6.4.1), 24 bytes.

    ``fraction_lost`` is the 8-bit fixed-point fraction (lost/expected * 256) since the
    previous report; ``cumulative_lost`` is a signed 24-bit count (duplicates can make it
    negative); ``jitter`` is in timestamp units; ``lsr``/``dlsr`` are the middle 32 bits of
    the last SR's NTP timestamp and the delay since it in 1/65536 s.
    """

    ssrc: int
    fraction_lost: int = 0
    cumulative_lost: int = 0
    highest_sequence: int = 0
    jitter: int = 0
    lsr: int = 0
    dlsr: int = 0

    @property
    def loss_ratio(self) -> float:
        return self.fraction_lost / 256.0

    @classmethod
    def parse(cls, data: Buffer, offset: int = 0) -> ReportBlock:
        ssrc, fraction, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        cumulative = int.from_bytes(lost, "big", signed=True)
        return cls(ssrc, fraction, cumulative, highest, jitter, lsr, dlsr)

    def __bytes__(self) -> bytes:
        lost = self.cumulative_lost
        clamped = max(-0x800000, min(0x7FFFFF, lost))
        return _BLOCK.pack(
            self.ssrc,
            self.fraction_lost,
            clamped.to_bytes(3, "big", signed=True),
            self.highest_sequence,
            self.jitter,
            self.lsr,
            self.dlsr,
        )


@dataclass(frozen=True, slots=True)
class SenderReport:
    """SR (RFC 3550 §6.4.1): sender info (NTP and RTP timestamps, counts) plus report blocks."""

    ssrc: int
    ntp_timestamp: int = 0
    rtp_timestamp: int = 0
    packet_count: int = 0
    octet_count: int = 0
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RR (RFC 3550 §6.4.2): the reporter's SSRC plus report blocks."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """One SDES chunk (RFC 3550 §6.5): an SSRC and its (item type, value) pairs, CNAME = 1."""

    ssrc: int
    items: tuple[tuple[int, bytes], ...] = ()

    @property
    def cname(self) -> bytes | None:
        return next((value for kind, value in self.items if kind == 1), None)


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """SDES (RFC 3550 §6.5)."""

    chunks: tuple[SdesChunk, ...] = ()


@dataclass(frozen=True, slots=True)
class Bye:
    """BYE (RFC 3550 §6.6): the sources leaving and an optional reason."""

    sources: tuple[int, ...] = ()
    reason: bytes = b""


@dataclass(frozen=True, slots=True)
class UnknownRtcp:
    """Any other RTCP packet (APP, RTPFB, PSFB, XR...), kept as its count field and body."""

    packet_type: int
    count: int
    body: bytes


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | UnknownRtcp


def _blocks(data: Buffer, offset: int, count: int, end: int) -> tuple[ReportBlock, ...]:
    if offset + 24 * count > end:
        raise MediaParseError("RTCP report blocks run past the packet")
    return tuple(ReportBlock.parse(data, offset + 24 * i) for i in range(count))


def _sdes(data: Buffer, start: int, count: int, end: int) -> SourceDescription:
    chunks = []
    at = start
    for _ in range(count):
        if at + 4 > end:
            raise MediaParseError("SDES chunk runs past the packet")
        ssrc = int.from_bytes(data[at : at + 4], "big")
        at += 4
        items: list[tuple[int, bytes]] = []
        while True:
            if at >= end:
                raise MediaParseError("SDES items are not terminated")
            kind = data[at]
            if kind == 0:  # END item, then padding to the next 32-bit boundary
                at = (at + 4) & ~3
                break
            if at + 2 > end or at + 2 + data[at + 1] > end:
                raise MediaParseError("SDES item runs past the packet")
            length = data[at + 1]
            items.append((kind, bytes(data[at + 2 : at + 2 + length])))
            at += 2 + length
        chunks.append(SdesChunk(ssrc, tuple(items)))
    return SourceDescription(tuple(chunks))


def _one(data: Buffer, at: int, count: int, ptype: int, end: int) -> RtcpPacket:
    body = at + 4
    if ptype == RTCP_SR:
        if body + 24 > end:
            raise MediaParseError("SR shorter than its sender info")
        ssrc, ntp, rtp_ts, packets, octets = _SR_INFO.unpack_from(data, body)
        reports = _blocks(data, body + 24, count, end)
        return SenderReport(ssrc, ntp, rtp_ts, packets, octets, reports)
    if ptype == RTCP_RR:
        if body + 4 > end:
            raise MediaParseError("RR shorter than its SSRC")
        ssrc = int.from_bytes(data[body : body + 4], "big")
        return ReceiverReport(ssrc, _blocks(data, body + 4, count, end))
    if ptype == RTCP_SDES:
        return _sdes(data, body, count, end)
    if ptype == RTCP_BYE:
        if body + 4 * count > end:
            raise MediaParseError("BYE sources run past the packet")
        sources = struct.unpack_from(f"!{count}I", data, body)
        reason = b""
        rat = body + 4 * count
        if rat < end:
            length = data[rat]
            if rat + 1 + length > end:
                raise MediaParseError("BYE reason runs past the packet")
            reason = bytes(data[rat + 1 : rat + 1 + length])
        return Bye(tuple(sources), reason)
    return UnknownRtcp(ptype, count, bytes(data[body:end]))


def parse_rtcp(data: Buffer) -> tuple[RtcpPacket, ...]:
    """Parse a compound RTCP packet (RFC 3550 §6.1) into its packets, in order.

    Checks per §A.2: version 2, lengths add up exactly, padding only on the last packet.
    """
    out: list[RtcpPacket] = []
    at = 0
    total = len(data)
    if total < 4:
        raise MediaParseError("RTCP packet shorter than its header")
    while at < total:
        if at + 4 > total:
            raise MediaParseError("trailing bytes after the last RTCP packet")
        first, ptype, words = _HEADER.unpack_from(data, at)
        if first >> 6 != 2:
            raise MediaParseError(f"RTCP version {first >> 6}, expected 2")
        end = at + 4 + 4 * words
        if end > total:
            raise MediaParseError("RTCP length field runs past the datagram")
        content_end = end
        if first & 0x20:
            if end != total:
                raise MediaParseError("RTCP padding on a packet that is not the last")
            pad = data[end - 1]
            if pad == 0 or pad > 4 * words:
                raise MediaParseError(f"bad RTCP padding count {pad}")
            content_end = end - pad
        out.append(_one(data, at, first & 0x1F, ptype, content_end))
        at = end
    return tuple(out)


def _frame(ptype: int, count: int, body: bytes) -> bytes:
    if len(body) % 4:
        body += bytes(4 - len(body) % 4)
    return _HEADER.pack(0x80 | count, ptype, len(body) // 4) + body


def _serialize_one(packet: RtcpPacket) -> bytes:
    if isinstance(packet, SenderReport):
        info = _SR_INFO.pack(
            packet.ssrc,
            packet.ntp_timestamp,
            packet.rtp_timestamp,
            packet.packet_count,
            packet.octet_count,
        )
        body = info + b"".join(bytes(b) for b in packet.reports)
        return _frame(RTCP_SR, len(packet.reports), body)
    if isinstance(packet, ReceiverReport):
        body = packet.ssrc.to_bytes(4, "big") + b"".join(bytes(b) for b in packet.reports)
        return _frame(RTCP_RR, len(packet.reports), body)
    if isinstance(packet, SourceDescription):
        parts = []
        for chunk in packet.chunks:
            raw = chunk.ssrc.to_bytes(4, "big")
            raw += b"".join(bytes((kind, len(value))) + value for kind, value in chunk.items)
            raw += bytes(4 - len(raw) % 4)  # END item plus padding: at least one zero octet
            parts.append(raw)
        return _frame(RTCP_SDES, len(packet.chunks), b"".join(parts))
    if isinstance(packet, Bye):
        body = b"".join(s.to_bytes(4, "big") for s in packet.sources)
        if packet.reason:
            body += bytes((len(packet.reason),)) + packet.reason
        return _frame(RTCP_BYE, len(packet.sources), body)
    return _frame(packet.packet_type, packet.count, packet.body)


def serialize_rtcp(packets: tuple[RtcpPacket, ...] | list[RtcpPacket]) -> bytes:
    """Serialise packets into one compound RTCP packet (RFC 3550 §6.1), no padding."""
    return b"".join(_serialize_one(p) for p in packets)
