"""HEPv3 packets (trace/hep.py) checked with the tests' own decoder (hep_decode.py)."""

from __future__ import annotations

import pytest
from hep_decode import decode
from trace_helpers import ladder

from hybridvoice.trace.capture import Captured
from hybridvoice.trace.hep import HEP_PROTO_SIP, HepOptions, encode_hep


def test_udp_ipv4_message_with_every_chunk() -> None:
    data = ladder("call-1@host")[0][1]
    msg = Captured(1_700_000_000.123456, "UDP", ("127.0.0.1", 5070), ("127.0.0.2", 5080),
                   data, True)  # fmt: skip
    hep = decode(encode_hep(msg, "call-1@host", HepOptions(capture_id=77, password="s3cret")))
    assert (hep.family, hep.proto, hep.src, hep.dst) == (2, 17, "127.0.0.1", "127.0.0.2")
    assert (hep.sport, hep.dport) == (5070, 5080)
    assert (hep.seconds, hep.micros) == (1_700_000_000, 123456)
    assert (hep.proto_type, hep.capture_id, hep.auth) == (HEP_PROTO_SIP, 77, b"s3cret")
    assert hep.payload == data and hep.correlation == b"call-1@host"


def test_tls_ipv6_message_is_tcp_without_password() -> None:
    msg = Captured(5.5, "TLS", ("::1", 40000), ("::1", 5061), b"SIP/2.0 200 OK\r\n\r\n", False)
    hep = decode(encode_hep(msg, None, HepOptions()))
    assert (hep.family, hep.proto, hep.src, hep.dst) == (10, 6, "::1", "::1")
    assert hep.auth is None and hep.correlation is None and hep.capture_id == 2001
    assert (hep.seconds, hep.micros) == (5, 500000)


def test_capture_id_must_fit_32_bits() -> None:
    with pytest.raises(ValueError, match="capture_id"):
        HepOptions(capture_id=1 << 32)


def test_too_large_a_message_is_refused_with_the_reason() -> None:
    msg = Captured(1.0, "TCP", ("127.0.0.1", 1), ("127.0.0.1", 2), b"x" * 70_000, True)
    with pytest.raises(ValueError, match="65535"):
        encode_hep(msg, "c", HepOptions())
