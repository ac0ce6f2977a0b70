"""Interop: Wireshark's SIP dissector reads what we serialise.

The test builds messages with our own code (requests, ``make_response``, ``make_cancel``,
``make_ack``, and every valid RFC 4475 message re-serialised), writes them into a pcap of
UDP/IPv4 datagrams on 127.0.0.1:5060 with ``struct``, and asks tshark to dissect it: every
frame must be SIP (the method or status code we sent) and none may be flagged malformed
or carry an expert warning.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from hybridvoice.sip import (
    Headers,
    Message,
    ParseError,
    Request,
    Response,
    make_ack,
    make_cancel,
    make_response,
    parse_message,
    parse_uri,
)

pytestmark = pytest.mark.interop

TSHARK = shutil.which("tshark")
if TSHARK is None and os.environ.get("CI") != "true":
    pytest.skip("tshark is not installed (apt-get install tshark)", allow_module_level=True)

RFC4475 = Path(
    os.environ.get(
        "HV_RFC4475_DIR",
        Path(__file__).resolve().parents[1] / "fixtures" / "rfc4475",
    )
)

SDP = (
    b"v=0\r\no=- 20518 0 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n"
)


def invite() -> Request:
    headers = Headers.of(
        [
            ("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-hv-1;rport"),
            ("Max-Forwards", 70),
            ("From", '"Alice" <sip:alice@127.0.0.1>;tag=a-1'),
            ("To", "<sip:bob@127.0.0.1>"),
            ("Call-ID", "tshark-1@127.0.0.1"),
            ("CSeq", "1 INVITE"),
            ("Contact", "<sip:alice@127.0.0.1:5060>"),
            ("Route", "<sip:127.0.0.1:5060;lr>"),
            ("Record-Route", "<sip:proxy.invalid;lr>"),
            ("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS"),
            ("Supported", "timer, replaces"),
        ]
    )
    request = Request("INVITE", parse_uri("sip:bob@127.0.0.1:5060"), headers)
    request.set_body(SDP, "application/sdp")
    return request


def simple(method: str, cseq: int) -> Request:
    headers = Headers.of(
        [
            ("v", f"SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-hv-{method}"),
            ("Max-Forwards", 70),
            ("f", "<sip:alice@127.0.0.1>;tag=a-1"),
            ("t", "<sip:bob@127.0.0.1>;tag=b-1"),
            ("i", "tshark-1@127.0.0.1"),
            ("CSeq", f"{cseq} {method}"),
        ]
    )
    request = Request(method, parse_uri("sip:bob@127.0.0.1:5060"), headers)
    request.body = b""
    return request


def corpus() -> list[tuple[str, Message]]:
    inv = invite()
    ringing = make_response(inv, 180, to_tag="b-1", headers=[("Contact", "<sip:bob@127.0.0.1>")])
    ok = make_response(inv, 200, to_tag="b-1", body=SDP, content_type="application/sdp")
    busy = make_response(inv, 486, to_tag="b-1")
    register = simple("REGISTER", 3)
    register.headers.add(
        "Authorization",
        'Digest username="alice", realm="127.0.0.1", nonce="abc", uri="sip:127.0.0.1", '
        'response="0123456789abcdef0123456789abcdef", algorithm=MD5',
    )
    messages: list[tuple[str, Message]] = [
        ("INVITE", inv),
        ("100", make_response(inv, 100)),
        ("180", ringing),
        ("200", ok),
        ("486", busy),
        ("CANCEL", make_cancel(inv)),
        ("ACK", make_ack(inv, busy)),
        ("BYE", simple("BYE", 2)),
        ("OPTIONS", simple("OPTIONS", 4)),
        ("REGISTER", register),
        ("405", make_response(register, 405, headers=[("Allow", "INVITE, ACK")])),
    ]
    for path in sorted(RFC4475.glob("*.dat")):
        try:
            message = parse_message(path.read_bytes())
        except ParseError:
            continue  # the invalid ones (test_rfc4475 checks which)
        messages.append((path.stem, parse_message(bytes(message))))
    assert len(messages) > 30
    return messages


def _checksum(data: bytes) -> int:
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(payload: bytes, ident: int) -> bytes:
    """Ethernet + IPv4 + UDP, 127.0.0.1:5060 -> 127.0.0.1:5060 (UDP checksum 0: none)."""
    udp = struct.pack("!HHHH", 5060, 5060, 8 + len(payload), 0) + payload
    loopback = bytes([127, 0, 0, 1])
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident, 0, 64, 17, 0, loopback, loopback
    )
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    ethernet = b"\x00" * 12 + b"\x08\x00"
    return ethernet + ip + udp


def write_pcap(path: Path, payloads: list[bytes]) -> None:
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))  # LINKTYPE_ETHERNET
        for i, payload in enumerate(payloads):
            frame = udp_frame(payload, i + 1)
            f.write(struct.pack("<IIII", 1_700_000_000 + i, 0, len(frame), len(frame)))
            f.write(frame)


def tshark(*args: str) -> list[list[str]]:
    assert TSHARK is not None, "tshark is required when CI=true"
    result = subprocess.run(
        [TSHARK, "-n", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "HOME": os.environ.get("HOME", "/tmp")},
    )
    return [line.split("\t") for line in result.stdout.splitlines()]


def test_wireshark_dissects_every_message_as_valid_sip(tmp_path: Path) -> None:
    messages = corpus()
    pcap = tmp_path / "hybridvoice.pcap"
    write_pcap(pcap, [bytes(message) for _, message in messages])

    rows = tshark(
        "-r", str(pcap), "-d", "udp.port==5060,sip", "-T", "fields", "-E", "separator=/t",
        "-e", "frame.number", "-e", "sip.Method", "-e", "sip.Status-Code",
        "-e", "_ws.expert.message",
    )  # fmt: skip
    assert len(rows) == len(messages)
    for (name, message), (number, method, status, *expert) in zip(messages, rows, strict=True):
        label = f"frame {number} ({name})"
        if isinstance(message, Request):
            assert method == message.method, label
        else:
            assert isinstance(message, Response)
            assert status == str(message.status), label
        assert "Malformed" not in "".join(expert), f"{label}: {expert}"

    # nothing malformed, and no expert note worse than "chat"/"note" (unknown headers and
    # the odd characters of RFC 4475's intmeth are notes, not warnings)
    flagged = tshark(
        "-r", str(pcap), "-d", "udp.port==5060,sip",
        "-Y", "_ws.malformed || _ws.expert.severity >= warning",
    )  # fmt: skip
    assert flagged == [], flagged
