"""HEPv3 (the Homer Encapsulation Protocol, version 3) packets of captured SIP messages
(sans-IO: bytes out; :mod:`hybridvoice.net.trace_tap` sends them to the collector on UDP).

A HEPv3 packet is the four octets ``HEP3``, its total length (16 bits, network order), then
chunks: vendor id (16 bits, 0 = generic), chunk type (16 bits), chunk length (16 bits,
including these six octets) and the value. The chunks written here, by type: 1 IP family
(2 IPv4, 10 IPv6), 2 IP protocol (17 UDP, 6 TCP, also for TLS-carried SIP), 3/4 IPv4 source
and destination or 5/6 IPv6 ones, 7/8 source and destination port, 9/10 timestamp seconds and
microseconds, 11 protocol type (1 = SIP), 12 capture agent id, 14 authentication key (when a
password is set), 15 the captured payload, 17 the correlation id (the Call-ID).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Final

from .capture import Captured

__all__ = ["HEP_PROTO_SIP", "HepOptions", "encode_hep"]

HEP_PROTO_SIP: Final = 1
_CHUNK: Final = struct.Struct("!HHH")


@dataclass(frozen=True, slots=True)
class HepOptions:
    """Who this capture agent is toward the collector."""

    capture_id: int = 2001
    password: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.capture_id <= 0xFFFFFFFF:
            raise ValueError(f"capture_id must fit in 32 bits, got {self.capture_id}")


def _chunk(kind: int, value: bytes) -> bytes:
    return _CHUNK.pack(0, kind, _CHUNK.size + len(value)) + value


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return ipaddress.IPv4Address("0.0.0.0")


def encode_hep(message: Captured, call_id: str | None, options: HepOptions) -> bytes:
    """The HEPv3 packet of ``message``."""
    src, dst = _address(message.src[0]), _address(message.dst[0])
    if src.version != dst.version:  # one family per packet: map IPv4 into IPv6
        src, dst = (
            a if a.version == 6 else ipaddress.IPv6Address(f"::ffff:{a}") for a in (src, dst)
        )
    seconds = int(message.time)
    micros = min(round((message.time - seconds) * 1_000_000), 999_999)
    v4 = src.version == 4
    parts = [
        _chunk(1, bytes((2 if v4 else 10,))),
        _chunk(2, bytes((17 if message.transport.upper() == "UDP" else 6,))),
        _chunk(3 if v4 else 5, src.packed),
        _chunk(4 if v4 else 6, dst.packed),
        _chunk(7, struct.pack("!H", message.src[1])),
        _chunk(8, struct.pack("!H", message.dst[1])),
        _chunk(9, struct.pack("!I", seconds)),
        _chunk(10, struct.pack("!I", micros)),
        _chunk(11, bytes((HEP_PROTO_SIP,))),
        _chunk(12, struct.pack("!I", options.capture_id)),
    ]
    if options.password:
        parts.append(_chunk(14, options.password.encode()))
    correlation = call_id.encode() if call_id else b""
    total = (
        6
        + sum(map(len, parts))
        + 6
        + len(message.data)
        + (6 + len(correlation) if correlation else 0)
    )
    if total > 0xFFFF:
        raise ValueError(f"a HEP packet holds at most 65535 octets, this one would be {total}")
    parts.append(_chunk(15, message.data))
    if correlation:
        parts.append(_chunk(17, correlation))
    return b"HEP3" + struct.pack("!H", total) + b"".join(parts)
