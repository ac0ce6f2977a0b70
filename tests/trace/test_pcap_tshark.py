"""The pcap export (trace/pcap.py) read back by Debian's tshark: every SIP message of a call
over UDP (IPv4, IPv6) and over TCP (a synthesized connection, a message split over segments
reassembled), checksums verified, nothing malformed. tshark is stopped by PID."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from trace_helpers import ladder, sip

from hybridvoice.trace.capture import Captured
from hybridvoice.trace.pcap import LINKTYPE_ETHERNET, PCAP_MAGIC, pcap_bytes

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed"),
]

CHECKS = [
    "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
    "-o", "tcp.check_checksum:TRUE",
]  # fmt: skip
LADDER = ["INVITE", "100", "180", "200", "ACK", "BYE", "200"]


def tshark(path: Path, *args: str) -> list[str]:
    """Lines of ``tshark -r path args`` (run with a deadline, stopped by PID)."""
    proc = subprocess.Popen(
        ["tshark", "-n", "-r", str(path), *CHECKS, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    return [line for line in out.splitlines() if line.strip()]


def sip_ladder(path: Path) -> list[str]:
    rows = tshark(path, "-Y", "sip", "-T", "fields", "-e", "sip.Method", "-e", "sip.Status-Code")
    return [row.strip() for row in rows]


def problems(path: Path) -> list[str]:
    bad = "_ws.malformed || _ws.expert.severity >= warning || ip.checksum.status == 2"
    bad += " || udp.checksum.status == 2 || tcp.checksum.status == 2"
    return tshark(path, "-Y", bad)


def capture(transport: str, a: tuple[str, int], b: tuple[str, int], call: str) -> list[Captured]:
    return [
        Captured(
            1_700_000_000.25 + i / 10,
            transport,
            a if caller else b,
            b if caller else a,
            data,
            caller,
        )
        for i, (caller, data) in enumerate(ladder(call))
    ]


def test_a_bad_checksum_would_be_seen(tmp_path: Path) -> None:
    data = bytearray(pcap_bytes(capture("UDP", ("127.0.0.1", 1), ("127.0.0.1", 2), "c")[:1]))
    data[-1] ^= 0xFF  # last payload byte: the UDP checksum no longer holds
    path = tmp_path / "bad.pcap"
    path.write_bytes(bytes(data))
    assert problems(path) != []


def test_file_header_is_classic_libpcap_ethernet() -> None:
    data = pcap_bytes([])
    magic, major, minor, _, _, snaplen, link = struct.unpack("<IHHiIII", data)
    assert (magic, major, minor, link) == (PCAP_MAGIC, 2, 4, LINKTYPE_ETHERNET)
    assert snaplen >= 65535


@pytest.mark.parametrize(
    ("a", "b"),
    [(("127.0.0.1", 5070), ("127.0.0.1", 5080)), (("::1", 5070), ("::1", 15080))],
    ids=["ipv4", "ipv6"],
)
def test_udp_call_decodes_with_every_message(tmp_path: Path, a: tuple[str, int],
                                             b: tuple[str, int]) -> None:  # fmt: skip
    path = tmp_path / "udp.pcap"
    path.write_bytes(pcap_bytes(capture("UDP", a, b, "udp-call")))
    assert sip_ladder(path) == LADDER
    assert problems(path) == []


def test_tls_carried_sip_on_5061_is_read_as_sip(tmp_path: Path) -> None:
    """Decrypted SIP over TLS, on the TLS port: tshark finds SIP there, nothing malformed."""
    path = tmp_path / "tls.pcap"
    path.write_bytes(pcap_bytes(capture("TLS", ("127.0.0.1", 40100), ("127.0.0.1", 5061), "t")))
    assert sip_ladder(path) == LADDER
    assert problems(path) == []


def test_tcp_call_reassembles_over_synthesized_segments(tmp_path: Path) -> None:
    a, b = ("127.0.0.1", 40123), ("127.0.0.1", 5090)
    messages = capture("TLS", a, b, "tcp-call")
    # one message larger than a synthesized segment: tshark must reassemble it
    big = sip("MESSAGE sip:bob@127.0.0.1 SIP/2.0", "tcp-call", "3 MESSAGE", body="x" * 50_000,
              extra="Content-Type: text/plain\r\n")  # fmt: skip
    messages.append(Captured(1_700_000_009.0, "TCP", a, b, big, True))
    path = tmp_path / "tcp.pcap"
    path.write_bytes(pcap_bytes(messages))
    assert sip_ladder(path) == [*LADDER, "MESSAGE"]
    assert problems(path) == []
    # no retransmission, no lost segment, no out-of-order data
    assert tshark(path, "-Y", "tcp.analysis.flags") == []
    assert len(tshark(path, "-Y", "tcp.flags.syn == 1")) == 2  # one handshake: SYN, SYN-ACK
