"""SDES a=crypto (RFC 4568) and SRTP contexts (RFC 3711) over libsrtp."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from hybridvoice.media.srtp import (
    CryptoAttribute,
    CryptoError,
    CryptoSuite,
    SrtpStream,
    generate_crypto,
    pick_crypto,
)

# RFC 3711 Appendix B.3 master key and salt, and the session keys it derives.
MASTER = bytes.fromhex("E1F97A0D3E018BE0D64FA32C06DE41390EC675AD498AFEEBB6960B3AABE6")
B3_CIPHER_KEY = bytes.fromhex("C61E7A93744F39EE10734AFE3FF7A087")
B3_CIPHER_SALT = bytes.fromhex("30CBBC08863D8C85D49DB34A9AE1")
B3_AUTH_KEY = bytes.fromhex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
# libsrtp's srtp_driver known-answer packet under that master key (AES_CM_128_HMAC_SHA1_80)
KAT_PLAIN = bytes.fromhex("800f1234decafbadcafebabe" + "ab" * 16)
KAT_SRTP = bytes.fromhex(
    "800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb"
)


def _aes_cm(key: bytes, iv: bytes, length: int) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.CTR(iv + b"\0\0")).encryptor()
    return enc.update(b"\0" * length) + enc.finalize()


def _derive(label: int, length: int) -> bytes:
    """RFC 3711 §4.3.1 with kdr 0: x = label << 48 XOR master salt, AES-CM with the master key."""
    key, salt = MASTER[:16], MASTER[16:]
    x = int.from_bytes(salt, "big") ^ (label << 48)
    return _aes_cm(key, x.to_bytes(14, "big"), length)


def _reference_protect(packet: bytes, tag_len: int) -> bytes:
    """RFC 3711 §3.3 for ROC 0, written from the RFC: AES-CM payload, HMAC-SHA1 tag."""
    ckey, csalt, akey = _derive(0, 16), _derive(2, 14), _derive(1, 20)
    seq, ssrc = struct.unpack_from("!H4xI", packet, 2)
    iv = int.from_bytes(csalt, "big") ^ (ssrc << 48) ^ seq  # (IV >> 16), §4.1.1
    body = packet[12:]
    stream = _aes_cm(ckey, iv.to_bytes(14, "big"), len(body))
    out = packet[:12] + bytes(a ^ b for a, b in zip(body, stream, strict=True))
    tag = hmac.new(akey, out + b"\0\0\0\0", hashlib.sha1).digest()[:tag_len]
    return out + tag


def test_rfc3711_b3_key_derivation_of_the_reference() -> None:
    assert _derive(0, 16) == B3_CIPHER_KEY
    assert _derive(2, 14) == B3_CIPHER_SALT
    assert _derive(1, 20) == B3_AUTH_KEY


@pytest.mark.parametrize(
    ("suite", "tag"),
    [(CryptoSuite.AES_CM_128_HMAC_SHA1_80, 10), (CryptoSuite.AES_CM_128_HMAC_SHA1_32, 4)],
)
def test_protect_matches_rfc3711_reference(suite: CryptoSuite, tag: int) -> None:
    crypto = CryptoAttribute(1, suite, MASTER)
    out = SrtpStream(crypto, outbound=True).rtp(KAT_PLAIN)
    assert out == _reference_protect(KAT_PLAIN, tag)
    if suite is CryptoSuite.AES_CM_128_HMAC_SHA1_80:
        assert out == KAT_SRTP  # libsrtp's own known answer
    assert SrtpStream(crypto, outbound=False).rtp(out) == KAT_PLAIN  # type: ignore[arg-type]


def test_unprotect_known_answer() -> None:
    rx = SrtpStream(CryptoAttribute(1, CryptoSuite.AES_CM_128_HMAC_SHA1_80, MASTER), outbound=False)
    assert rx.rtp(KAT_SRTP) == KAT_PLAIN


def _rtp(seq: int, payload: bytes = b"\xd5" * 160, ssrc: int = 0x11223344) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + payload


def test_auth_failure_and_replay_are_counted_not_raised() -> None:
    crypto = generate_crypto(random.Random(1).randbytes)
    tx, rx = SrtpStream(crypto, outbound=True), SrtpStream(crypto, outbound=False)
    first = tx.rtp(_rtp(1))
    assert first is not None
    assert rx.rtp(first) == _rtp(1)
    assert rx.rtp(first) is None  # the same packet again: a replay (RFC 3711 §3.3.2)
    assert rx.replays == 1
    second = bytearray(tx.rtp(_rtp(2)) or b"")
    second[20] ^= 1
    assert rx.rtp(bytes(second)) is None
    assert rx.auth_failures == 1
    wrong = SrtpStream(generate_crypto(random.Random(2).randbytes), outbound=False)
    assert wrong.rtp(tx.rtp(_rtp(3)) or b"") is None
    assert wrong.auth_failures == 1
    assert rx.rtp(b"\x80") is None  # too short: an error, counted
    assert rx.errors == 1
    assert rx.rtp(_rtp(9, b"\0" * 1600)) is None  # longer than libsrtp's buffer: counted too
    assert tx.rtp(_rtp(9, b"\0" * 1600)) is None
    assert (rx.errors, tx.errors, tx.last_error) == (2, 1, "packet is too long")


def test_srtcp_round_trip() -> None:
    crypto = generate_crypto(random.Random(3).randbytes)
    tx, rx = SrtpStream(crypto, outbound=True), SrtpStream(crypto, outbound=False)
    rr = struct.pack("!BBHI", 0x80, 201, 1, 0x11223344)  # an empty receiver report
    protected = tx.rtcp(rr)
    assert protected is not None and protected != rr
    assert rx.rtcp(protected) == rr


def test_parse_and_format() -> None:
    key = base64.b64encode(MASTER).decode()
    attr = CryptoAttribute.parse(f"1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^20")
    assert (attr.tag, attr.suite, attr.key, attr.lifetime) == (
        1,
        CryptoSuite.AES_CM_128_HMAC_SHA1_80,
        MASTER,
        1 << 20,
    )
    assert str(attr) == f"1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^20"
    assert str(CryptoAttribute.parse(f"7 AES_CM_128_HMAC_SHA1_32 inline:{key}")).startswith("7 ")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("1 AES_CM_128_HMAC_SHA1_80", "needs '<tag> <suite> inline:<key>'"),
        ("x AES_CM_128_HMAC_SHA1_80 inline:{k}", "tag 'x' is not 1-9 digits"),
        ("1 F8_128_HMAC_SHA1_80 inline:{k}", "suite 'F8_128_HMAC_SHA1_80' is not supported"),
        ("1 AES_CM_128_HMAC_SHA1_80 uri:{k}", "key method 'uri' is not 'inline'"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:{k}|2^20|1:4", "MKI '1:4' is not supported"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:{k}|1:200", "MKI length 200 is not 1-128"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:{k}|2^60", "exceeds 2^48 packets"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:{k}|forever", "lifetime 'forever' is not a number"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:{k};inline:{k}", "several keys"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:{k} KDR=1", "session parameters 'KDR=1'"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:!!!!", "is not base64"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:QUJD", "key is 3 bytes"),
    ],
)
def test_refused_with_the_reason(value: str, reason: str) -> None:
    with pytest.raises(CryptoError, match=None) as info:
        CryptoAttribute.parse(value.format(k=base64.b64encode(MASTER).decode()))
    assert reason in str(info.value)


def test_pick_skips_unusable_lines() -> None:
    key = base64.b64encode(MASTER).decode()
    found, reasons = pick_crypto(
        [f"1 AES_256_CM_HMAC_SHA1_80 inline:{key}", f"2 AES_CM_128_HMAC_SHA1_80 inline:{key}"]
    )
    assert found is not None and found.tag == 2
    assert len(reasons) == 1 and "AES_256_CM_HMAC_SHA1_80" in reasons[0]
    assert pick_crypto([]) == (None, [])


def test_generate_uses_the_injected_source() -> None:
    a = generate_crypto(random.Random(7).randbytes, tag=3)
    b = generate_crypto(random.Random(7).randbytes, tag=3)
    assert a == b and a.tag == 3 and len(a.key) == 30


attrs = st.builds(
    CryptoAttribute,
    tag=st.integers(0, 999_999_999),
    suite=st.sampled_from(list(CryptoSuite)),
    key=st.binary(min_size=30, max_size=30),
    lifetime=st.none() | st.integers(1, 1 << 48),
)


@given(attrs)
def test_format_parse_round_trip(attr: CryptoAttribute) -> None:
    assert CryptoAttribute.parse(str(attr)) == attr
    assert str(CryptoAttribute.parse(str(attr))) == str(attr)


@given(
    key=st.binary(min_size=30, max_size=30),
    suite=st.sampled_from(list(CryptoSuite)),
    payloads=st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=8),
)
def test_unprotect_protect_round_trip(
    key: bytes, suite: CryptoSuite, payloads: list[bytes]
) -> None:
    crypto = CryptoAttribute(1, suite, key)
    tx, rx = SrtpStream(crypto, outbound=True), SrtpStream(crypto, outbound=False)
    for seq, payload in enumerate(payloads):
        packet = _rtp(seq, payload)
        protected = tx.rtp(packet)
        assert protected is not None
        assert rx.rtp(protected) == packet
    assert (rx.auth_failures, rx.replays, rx.errors) == (0, 0, 0)
