"""Round trips, hypothesis-driven: HEPv3 packets decode (tests' own decoder) to what was
captured; a pcap file parsed back by a small reader here (Ethernet, IPv4/IPv6, UDP/TCP) holds
every message's bytes, in order, every header checksum verifying."""

from __future__ import annotations

import ipaddress
import struct

from hep_decode import decode
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridvoice.trace.capture import Captured
from hybridvoice.trace.hep import HepOptions, encode_hep
from hybridvoice.trace.pcap import pcap_bytes

v4 = st.ip_addresses(v=4).map(str)
v6 = st.ip_addresses(v=6).map(str)
ports = st.integers(min_value=1, max_value=65535)
payload = st.binary(min_size=1, max_size=3000)
times = st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False)


def _sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def read_pcap(data: bytes) -> list[tuple[str, tuple[str, int], tuple[str, int], int, bytes]]:
    """(proto, src, dst, tcp flags, payload) of every packet; asserts every checksum."""
    assert struct.unpack_from("<I", data)[0] == 0xA1B2C3D4
    at, out = 24, []
    while at < len(data):
        _, _, incl, orig = struct.unpack_from("<IIII", data, at)
        frame = data[at + 16 : at + 16 + incl]
        assert incl == orig == len(frame)
        at += 16 + incl
        ethertype = struct.unpack_from("!H", frame, 12)[0]
        ip = frame[14:]
        if ethertype == 0x0800:
            assert _sum(ip[:20]) == 0xFFFF  # the header checksum verifies
            total, proto = struct.unpack_from("!H", ip, 2)[0], ip[9]
            assert total == len(ip)
            src, dst, body = ip[12:16], ip[16:20], ip[20:]
            pseudo = src + dst + struct.pack("!xBH", proto, len(body))
        else:
            assert ethertype == 0x86DD
            length, proto = struct.unpack_from("!H", ip, 4)[0], ip[6]
            src, dst, body = ip[8:24], ip[24:40], ip[40:]
            assert length == len(body)
            pseudo = src + dst + struct.pack("!IxxxB", len(body), proto)
        assert _sum(pseudo + body) == 0xFFFF  # the UDP/TCP checksum verifies
        sport, dport = struct.unpack_from("!HH", body)
        if proto == 17:
            assert struct.unpack_from("!H", body, 4)[0] == len(body)
            flags, content = 0, body[8:]
        else:
            flags, content = body[13], body[(body[12] >> 4) * 4 :]
        a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
        out.append(("udp" if proto == 17 else "tcp", (str(a), sport), (str(b), dport), flags,
                    content))  # fmt: skip
    return out


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.tuples(v4, v4), st.tuples(v6, v6)), ports, ports, times, payload,
       st.sampled_from(["UDP", "TCP", "TLS"]), st.booleans(), st.integers(0, 0xFFFFFFFF),
       st.one_of(st.none(), st.text(min_size=1, max_size=20)))  # fmt: skip
def test_hep_round_trip(
    hosts: tuple[str, str], sport: int, dport: int, t: float, data: bytes, transport: str,
    outgoing: bool, capture_id: int, password: str | None,
) -> None:  # fmt: skip
    message = Captured(t, transport, (hosts[0], sport), (hosts[1], dport), data, outgoing)
    hep = decode(encode_hep(message, "call@x", HepOptions(capture_id, password)))
    assert (hep.src, hep.dst) == (str(ipaddress.ip_address(hosts[0])),
                                  str(ipaddress.ip_address(hosts[1])))  # fmt: skip
    assert (hep.sport, hep.dport, hep.payload, hep.capture_id) == (sport, dport, data, capture_id)
    assert hep.proto == (17 if transport == "UDP" else 6)
    assert hep.auth == (password.encode() if password else None)
    assert abs(hep.seconds + hep.micros / 1e6 - t) <= 1e-6 * max(1.0, t) + 1e-6


@settings(max_examples=40, deadline=None)
@given(st.one_of(st.tuples(v4, v4), st.tuples(v6, v6)), ports, ports,
       st.lists(st.tuples(st.booleans(), payload), min_size=1, max_size=6))  # fmt: skip
def test_pcap_round_trip_udp(hosts: tuple[str, str], sport: int, dport: int,
                             items: list[tuple[bool, bytes]]) -> None:  # fmt: skip
    a, b = (hosts[0], sport), (hosts[1], dport)
    messages = [Captured(float(i), "UDP", a if fwd else b, b if fwd else a, d, True)
                for i, (fwd, d) in enumerate(items)]  # fmt: skip
    packets = read_pcap(pcap_bytes(messages))
    assert [p[4] for p in packets] == [d for _, d in items]
    assert all(p[0] == "udp" for p in packets)


@settings(max_examples=40, deadline=None)
@given(st.one_of(st.tuples(v4, v4), st.tuples(v6, v6)), ports, ports,
       st.lists(st.tuples(st.booleans(), st.binary(min_size=1, max_size=70_000)),
                min_size=1, max_size=4))  # fmt: skip
def test_pcap_round_trip_tcp_streams(hosts: tuple[str, str], sport: int, dport: int,
                                     items: list[tuple[bool, bytes]]) -> None:  # fmt: skip
    a, b = (hosts[0], sport), (hosts[1], dport)
    if a == b:
        return
    messages = [Captured(float(i), "TCP", a if fwd else b, b if fwd else a, d, True)
                for i, (fwd, d) in enumerate(items)]  # fmt: skip
    packets = read_pcap(pcap_bytes(messages))
    assert [p[3] for p in packets[:3]] == [0x02, 0x12, 0x10]  # SYN, SYN-ACK, ACK
    first = messages[0].src
    for side in (first, messages[0].dst):  # each direction's bytes, in order, all there
        sent = b"".join(m.data for m in messages if m.src == side)
        got = b"".join(p[4] for p in packets if p[1][1] == side[1] and p[3] == 0x18
                       and str(ipaddress.ip_address(side[0])) == p[1][0])  # fmt: skip
        assert got == sent
