"""A HEPv3 decoder written for the tests from the HEP3 specification (not from the encoder):
"HEP3", a 16-bit total length, then chunks of vendor id, type id and length (16 bits each,
the length counting the six header octets) followed by the value."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass


@dataclass(frozen=True)
class Hep:
    family: int
    proto: int
    src: str
    dst: str
    sport: int
    dport: int
    seconds: int
    micros: int
    proto_type: int
    capture_id: int
    auth: bytes | None
    payload: bytes
    correlation: bytes | None


def chunks(packet: bytes) -> dict[int, bytes]:
    if packet[:4] != b"HEP3":
        raise ValueError("no HEP3 marker")
    (total,) = struct.unpack("!H", packet[4:6])
    if total != len(packet):
        raise ValueError(f"length field {total} != {len(packet)}")
    found: dict[int, bytes] = {}
    at = 6
    while at < total:
        vendor, kind, length = struct.unpack("!HHH", packet[at : at + 6])
        if vendor != 0 or length < 6 or at + length > total:
            raise ValueError(f"bad chunk at {at}: vendor {vendor} type {kind} length {length}")
        if kind in found:
            raise ValueError(f"chunk type {kind} twice")
        found[kind] = packet[at + 6 : at + length]
        at += length
    return found


def decode(packet: bytes) -> Hep:
    c = chunks(packet)
    family = c[1][0]
    if family == 2:
        src, dst = ipaddress.IPv4Address(c[3]), ipaddress.IPv4Address(c[4])
    elif family == 10:
        src, dst = ipaddress.IPv6Address(c[5]), ipaddress.IPv6Address(c[6])
    else:
        raise ValueError(f"unknown family {family}")
    (sport,), (dport,) = struct.unpack("!H", c[7]), struct.unpack("!H", c[8])
    (seconds,), (micros,) = struct.unpack("!I", c[9]), struct.unpack("!I", c[10])
    (capture_id,) = struct.unpack("!I", c[12])
    return Hep(
        family, c[2][0], str(src), str(dst), sport, dport, seconds, micros, c[11][0],
        capture_id, c.get(14), c[15], c.get(17),
    )  # fmt: skip
