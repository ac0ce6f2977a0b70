"""A call's SIP as a classic libpcap file (the tcpdump format: a 24-byte file header, then a
16-byte record header per packet), written with ``struct`` (sans-IO: bytes out).

The link type is Ethernet (LINKTYPE_ETHERNET = 1), which tshark, Wireshark and sngrep all
read. Each captured message becomes one packet with synthesized headers: Ethernet (locally
administered addresses), IPv4 (RFC 791, header checksum) or IPv6 (RFC 8200), then UDP
(RFC 768) or TCP (RFC 9293), both with their checksum over the pseudo-header (RFC 768,
RFC 8200 §8.1). SIP carried on TCP or TLS is written as plain SIP on a TCP connection: a
synthesized three-way handshake when a connection first appears in the trace, then data
segments whose sequence and acknowledgement numbers follow the bytes each side sent, so
that tshark reassembles messages split over segments (TLS-carried SIP is kept decrypted;
tshark 4.0 reads it as SIP on port 5061 too).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from .capture import Captured

__all__ = ["LINKTYPE_ETHERNET", "PCAP_MAGIC", "PcapWriter", "pcap_bytes"]

PCAP_MAGIC: Final = 0xA1B2C3D4
LINKTYPE_ETHERNET: Final = 1
_SNAPLEN: Final = 262144
_FILE_HEADER: Final = struct.Struct("<IHHiIII")
_RECORD_HEADER: Final = struct.Struct("<IIII")
_ETHERNET: Final = struct.Struct("!6s6sH")
_IPV4: Final = struct.Struct("!BBHHHBBH4s4s")
_IPV6: Final = struct.Struct("!IHBB16s16s")
_UDP: Final = struct.Struct("!HHHH")
_TCP: Final = struct.Struct("!HHIIBBHHH")
_MAC_A: Final = bytes.fromhex("020000000001")
_MAC_B: Final = bytes.fromhex("020000000002")
_UDP_PROTO: Final = 17
_TCP_PROTO: Final = 6
_SYN: Final = 0x02
_ACK: Final = 0x10
_PSH_ACK: Final = 0x18
_SYN_ACK: Final = 0x12
#: the largest TCP payload per synthesized segment (an IP packet is at most 65,535 bytes)
_SEGMENT: Final = 32768
_WINDOW: Final = 65535


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): one's complement of the one's complement sum."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def _packed(host: str, v6: bool) -> bytes:
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:  # not an IP literal (never expected): the unspecified address
        address = ipaddress.IPv6Address("::") if v6 else ipaddress.IPv4Address("0.0.0.0")
    if v6 and address.version == 4:
        return ipaddress.IPv6Address(f"::ffff:{address}").packed
    if not v6 and address.version == 6:
        return b"\x00\x00\x00\x00"
    return address.packed


@dataclass(slots=True)
class _Flow:
    """One synthesized TCP connection: the next sequence number of each side."""

    next_a: int  # the side that sent first (the client)
    next_b: int


class PcapWriter:
    """Packets out as pcap bytes: :meth:`header` once, then :meth:`packets` per message."""

    __slots__ = ("_flows", "_ip_id")

    def __init__(self) -> None:
        self._flows: dict[tuple[tuple[str, int], tuple[str, int]], _Flow] = {}
        self._ip_id = 0

    @staticmethod
    def header() -> bytes:
        return _FILE_HEADER.pack(PCAP_MAGIC, 2, 4, 0, 0, _SNAPLEN, LINKTYPE_ETHERNET)

    def packets(self, message: Captured) -> bytes:
        """The records of one captured message (several for a new or a long TCP one)."""
        if message.transport.upper() == "UDP":
            return self._record(message.time, message.src, message.dst, _UDP_PROTO,
                                self._udp(message))  # fmt: skip
        return b"".join(self._tcp_records(message))

    # --- headers --------------------------------------------------------------------------

    def _v6(self, message: Captured) -> bool:
        return ":" in message.src[0] or ":" in message.dst[0]

    def _udp(self, message: Captured) -> tuple[bool, bytes, bytes, bytes]:
        v6 = self._v6(message)
        src, dst = _packed(message.src[0], v6), _packed(message.dst[0], v6)
        data = message.data
        length = _UDP.size + len(data)
        head = _UDP.pack(message.src[1], message.dst[1], length, 0)
        check = _checksum(_pseudo(src, dst, _UDP_PROTO, length) + head + message.data) or 0xFFFF
        return v6, src, dst, _UDP.pack(message.src[1], message.dst[1], length, check) + data

    def _tcp_records(self, message: Captured) -> Iterable[bytes]:
        v6 = self._v6(message)
        src, dst = message.src, message.dst
        flow = self._flows.get((src, dst))
        forward = True
        if flow is None:
            flow = self._flows.get((dst, src))
            forward = False
        t = message.time
        if flow is None:  # first seen: a handshake from the sender
            flow = self._flows[(src, dst)] = _Flow(next_a=1000, next_b=5000)
            forward = True
            yield self._segment(t, v6, src, dst, flow.next_a - 1, 0, _SYN, b"")
            yield self._segment(t, v6, dst, src, flow.next_b - 1, flow.next_a, _SYN_ACK, b"")
            yield self._segment(t, v6, src, dst, flow.next_a, flow.next_b, _ACK, b"")
        data = message.data
        for start in range(0, len(data), _SEGMENT):
            chunk = data[start : start + _SEGMENT]
            if forward:
                seq, ack = flow.next_a, flow.next_b
                flow.next_a = (flow.next_a + len(chunk)) & 0xFFFFFFFF
            else:
                seq, ack = flow.next_b, flow.next_a
                flow.next_b = (flow.next_b + len(chunk)) & 0xFFFFFFFF
            yield self._segment(t, v6, src, dst, seq, ack, _PSH_ACK, chunk)

    def _segment(  # noqa: PLR0917 - one TCP header's fields
        self,
        time: float,
        v6: bool,
        src: tuple[str, int],
        dst: tuple[str, int],
        seq: int,
        ack: int,
        flags: int,
        payload: bytes,
    ) -> bytes:
        s, d = _packed(src[0], v6), _packed(dst[0], v6)
        head = _TCP.pack(src[1], dst[1], seq, ack, 5 << 4, flags, _WINDOW, 0, 0)
        length = len(head) + len(payload)
        check = _checksum(_pseudo(s, d, _TCP_PROTO, length) + head + payload)
        head = _TCP.pack(src[1], dst[1], seq, ack, 5 << 4, flags, _WINDOW, check, 0)
        return self._record(time, src, dst, _TCP_PROTO, (v6, s, d, head + payload))

    def _record(
        self,
        time: float,
        src: tuple[str, int],
        dst: tuple[str, int],
        proto: int,
        built: tuple[bool, bytes, bytes, bytes],
    ) -> bytes:
        v6, s, d, transport = built
        if v6:
            ip = _IPV6.pack(6 << 28, len(transport), proto, 64, s, d)
            ether = _ETHERNET.pack(_MAC_B, _MAC_A, 0x86DD)
        else:
            self._ip_id = (self._ip_id + 1) & 0xFFFF
            total = _IPV4.size + len(transport)
            head = _IPV4.pack(0x45, 0, total, self._ip_id, 0x4000, 64, proto, 0, s, d)
            ip = _IPV4.pack(0x45, 0, total, self._ip_id, 0x4000, 64, proto, _checksum(head), s, d)
            ether = _ETHERNET.pack(_MAC_B, _MAC_A, 0x0800)
        frame = ether + ip + transport
        seconds = int(time)
        micros = min(round((time - seconds) * 1_000_000), 999_999)
        return _RECORD_HEADER.pack(seconds, micros, len(frame), len(frame)) + frame


def _pseudo(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    """The pseudo-header the UDP and TCP checksums cover (RFC 768; RFC 8200 §8.1)."""
    if len(src) == 16:
        return src + dst + struct.pack("!IxxxB", length, proto)
    return src + dst + struct.pack("!xBH", proto, length)


def pcap_bytes(messages: Iterable[Captured]) -> bytes:
    """A whole pcap file of ``messages`` (in the order given)."""
    writer = PcapWriter()
    return writer.header() + b"".join(writer.packets(m) for m in messages)
