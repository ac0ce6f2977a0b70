"""RTP fixed header and telephone events (RFC 3550 §5.1, §5.3.1, RFC 5761 §4, RFC 4733 §2.3).

Two ways in:

- :class:`RtpPacket`, a frozen value with ``parse()`` and ``__bytes__`` (aiortc style), for
  tests, tools and the slow path;
- the ``rtp_*`` accessors, which read one field straight from a ``bytes``/``bytearray``/
  ``memoryview`` without building any object, for the relay's per-packet hot path.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from .errors import MediaParseError

__all__ = [
    "RTP_HEADER_SIZE",
    "RTP_VERSION",
    "RtpPacket",
    "TelephoneEvent",
    "is_rtcp",
    "rtp_header_size",
    "rtp_payload_type",
    "rtp_sequence",
    "rtp_ssrc",
    "rtp_timestamp",
    "set_payload_type",
]

RTP_VERSION: Final = 2
#: Fixed header size without CSRCs or extension (RFC 3550 §5.1).
RTP_HEADER_SIZE: Final = 12
_FIXED: Final = struct.Struct("!BBHII")
_EXT: Final = struct.Struct("!HH")
_EVENT: Final = struct.Struct("!BBH")

Buffer = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet (RFC 3550 §5.1): fixed header, CSRC list, header extension, payload.

    ``extension_profile`` is ``None`` when the X bit is clear; ``extension`` is the extension
    body (a multiple of 4 bytes, §5.3.1). ``padding_size`` is the count of padding octets
    including the last one (P bit set when non-zero); the padding octets are zeros except the
    last, which carries the count.
    """

    payload_type: int = 0
    sequence_number: int = 0
    timestamp: int = 0
    ssrc: int = 0
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension_profile: int | None = None
    extension: bytes = b""
    payload: bytes = b""
    padding_size: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= 127:
            raise ValueError(f"payload type {self.payload_type} out of 0..127")
        if not 0 <= self.sequence_number <= 0xFFFF:
            raise ValueError(f"sequence number {self.sequence_number} out of 0..65535")
        if not 0 <= self.timestamp <= 0xFFFFFFFF or not 0 <= self.ssrc <= 0xFFFFFFFF:
            raise ValueError("timestamp and SSRC are 32-bit unsigned")
        if len(self.csrc) > 15:
            raise ValueError("at most 15 CSRCs (4-bit CC field)")
        if len(self.extension) % 4:
            raise ValueError("header extension length must be a multiple of 4")
        if not 0 <= self.padding_size <= 255:
            raise ValueError("padding size out of 0..255")

    @property
    def header_size(self) -> int:
        ext = 4 + len(self.extension) if self.extension_profile is not None else 0
        return RTP_HEADER_SIZE + 4 * len(self.csrc) + ext

    @classmethod
    def parse(cls, data: Buffer) -> RtpPacket:
        """Parse one RTP packet; :class:`MediaParseError` if it is not valid RTP version 2."""
        size = rtp_header_size(data)
        first, second, seq, ts, ssrc = _FIXED.unpack_from(data, 0)
        cc = first & 0x0F
        csrc = struct.unpack_from(f"!{cc}I", data, RTP_HEADER_SIZE) if cc else ()
        profile: int | None = None
        extension = b""
        if first & 0x10:
            at = RTP_HEADER_SIZE + 4 * cc
            profile, words = _EXT.unpack_from(data, at)
            extension = bytes(data[at + 4 : at + 4 + 4 * words])
        end = len(data)
        padding = 0
        if first & 0x20:
            padding = data[end - 1]
            if padding == 0 or size + padding > end:
                raise MediaParseError(f"bad RTP padding count {padding}")
            end -= padding
        return cls(
            payload_type=second & 0x7F,
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            marker=bool(second & 0x80),
            csrc=tuple(csrc),
            extension_profile=profile,
            extension=extension,
            payload=bytes(data[size:end]),
            padding_size=padding,
        )

    def __bytes__(self) -> bytes:
        first = (RTP_VERSION << 6) | len(self.csrc)
        if self.padding_size:
            first |= 0x20
        if self.extension_profile is not None:
            first |= 0x10
        second = (0x80 if self.marker else 0) | self.payload_type
        parts = [_FIXED.pack(first, second, self.sequence_number, self.timestamp, self.ssrc)]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension_profile is not None:
            parts.append(_EXT.pack(self.extension_profile, len(self.extension) // 4))
            parts.append(self.extension)
        parts.append(self.payload)
        if self.padding_size:
            parts.append(bytes(self.padding_size - 1) + bytes((self.padding_size,)))
        return b"".join(parts)


# ---- zero-copy accessors (hot path): no object is built, only ints read by index ----


def rtp_sequence(buf: Buffer) -> int:
    """The 16-bit sequence number of the RTP packet in ``buf`` (RFC 3550 §5.1)."""
    return (buf[2] << 8) | buf[3]


def rtp_timestamp(buf: Buffer) -> int:
    """The 32-bit RTP timestamp of the packet in ``buf``."""
    return (buf[4] << 24) | (buf[5] << 16) | (buf[6] << 8) | buf[7]


def rtp_ssrc(buf: Buffer) -> int:
    """The 32-bit SSRC of the RTP packet in ``buf``."""
    return (buf[8] << 24) | (buf[9] << 16) | (buf[10] << 8) | buf[11]


def rtp_payload_type(buf: Buffer) -> int:
    """The 7-bit payload type of the RTP packet in ``buf``."""
    return buf[1] & 0x7F


def set_payload_type(buf: bytearray | memoryview, payload_type: int) -> None:
    """Rewrite the payload type in place, keeping the marker bit."""
    buf[1] = (buf[1] & 0x80) | payload_type


def is_rtcp(buf: Buffer, length: int | None = None) -> bool:
    """True when the packet is RTCP rather than RTP (RFC 5761 §4: second octet 192..223)."""
    n = len(buf) if length is None else length
    return n >= 8 and (buf[0] >> 6) == RTP_VERSION and 192 <= buf[1] <= 223


def rtp_header_size(buf: Buffer, length: int | None = None) -> int:
    """Size of the RTP header in ``buf[:length]`` (fixed part, CSRCs, extension).

    Raises :class:`MediaParseError` when the packet is too short or not version 2; this is
    the validity check of RFC 3550 Appendix A.1 that does not need stream state.
    """
    n = len(buf) if length is None else length
    if n < RTP_HEADER_SIZE:
        raise MediaParseError(f"RTP packet of {n} bytes is shorter than its fixed header")
    first = buf[0]
    if first >> 6 != RTP_VERSION:
        raise MediaParseError(f"RTP version {first >> 6}, expected 2")
    size = RTP_HEADER_SIZE + 4 * (first & 0x0F)
    if first & 0x10:
        if n < size + 4:
            raise MediaParseError("RTP header extension runs past the packet")
        size += 4 + 4 * ((buf[size + 2] << 8) | buf[size + 3])
    if size > n:
        raise MediaParseError("RTP header runs past the packet")
    return size


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """An RFC 4733 §2.3 named-event payload (DTMF digit, flash...): 4 bytes.

    ``event`` 0-9 are the digits, 10 is ``*``, 11 is ``#``, 12-15 are A-D (§3.2);
    ``volume`` is the power in -dBm0 (0..63); ``duration`` is in timestamp units.
    """

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 255 or not 0 <= self.volume <= 63:
            raise ValueError("event is 0..255, volume 0..63")
        if not 0 <= self.duration <= 0xFFFF:
            raise ValueError("duration is 16-bit unsigned")

    @classmethod
    def parse(cls, payload: Buffer) -> TelephoneEvent:
        if len(payload) < 4:
            raise MediaParseError(f"telephone-event payload of {len(payload)} bytes, need 4")
        event, flags, duration = _EVENT.unpack_from(payload, 0)
        return cls(event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration)

    def __bytes__(self) -> bytes:
        return _EVENT.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)

    @property
    def digit(self) -> str | None:
        """The DTMF character for events 0-15 (§3.2), else ``None``."""
        return "0123456789*#ABCD"[self.event] if self.event < 16 else None
