"""STUN codec (RFC 8489) on the RFC 5769 test vectors, round trips and byte-level fuzz."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridvoice.media.stun import (
    Attr,
    Method,
    StunClass,
    StunError,
    StunMessage,
    channel_data,
    decode_address,
    decode_error_code,
    decode_unknown_attributes,
    decode_xor_address,
    encode,
    encode_address,
    encode_error_code,
    encode_unknown_attributes,
    encode_xor_address,
    fingerprint_ok,
    integrity_ok,
    is_channel_data,
    is_stun,
    long_term_key,
    parse,
    parse_channel_data,
)

# RFC 5769 §2.1-§2.4 (the bytes of the RFC, written out in hex).
SAMPLE_REQUEST = bytes.fromhex(
    "000100582112a442b7e7a701bc34d686fa87dfae"
    "80220010" + b"STUN test client".hex() + "002400046e0001ff"
    "80290008932ff9b151263b36"
    "00060009" + b"evtj:h6vY".hex() + "202020"
    "000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2"
    "80280004e57a3bcf"
)
SAMPLE_IPV4_RESPONSE = bytes.fromhex(
    "0101003c2112a442b7e7a701bc34d686fa87dfae"
    "8022000b" + b"test vector".hex() + "20"
    "002000080001a147e112a643"
    "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7"
    "80280004c07d4c96"
)
SAMPLE_IPV6_RESPONSE = bytes.fromhex(
    "010100482112a442b7e7a701bc34d686fa87dfae"
    "8022000b" + b"test vector".hex() + "20"
    "002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9"
    "00080014a382954e4be67bf11784c97c8292c275bfe3ed41"
    "80280004c8fb0b4c"
)
SAMPLE_LONG_TERM = bytes.fromhex(
    "000100602112a44278ad3433c6ad72c029da412e"
    "00060012e3839ee38388e383aae38383e382afe382b90000"
    "0015001c" + b"f//499k954d6OL34oL9FSTvy64sA".hex() + "0014000b"
    "6578616d706c652e6f726700"
    "00080014f67024656dd64a3e02b8e0712e85c9a28ca89666"
)
SHORT_TERM_KEY = b"VOkJxbRl1RmTxUk/WvJxBt"
TID = bytes.fromhex("b7e7a701bc34d686fa87dfae")


def test_sample_request() -> None:
    msg = parse(SAMPLE_REQUEST)
    assert (msg.method, msg.cls, msg.transaction_id) == (Method.BINDING, StunClass.REQUEST, TID)
    assert msg.text(Attr.SOFTWARE) == "STUN test client"
    assert msg.text(Attr.USERNAME) == "evtj:h6vY"
    assert msg.get(Attr.PRIORITY) == bytes.fromhex("6e0001ff")
    assert integrity_ok(msg, SHORT_TERM_KEY)
    assert not integrity_ok(msg, b"wrong")
    assert fingerprint_ok(msg)


def test_sample_request_encodes_to_the_vector() -> None:
    msg = parse(SAMPLE_REQUEST)
    bare = StunMessage(
        msg.method,
        msg.cls,
        msg.transaction_id,
        tuple(a for a in msg.attributes if a[0] not in (Attr.MESSAGE_INTEGRITY, Attr.FINGERPRINT)),
    )
    assert encode(bare, SHORT_TERM_KEY, fingerprint=True, pad=b" ") == SAMPLE_REQUEST


@pytest.mark.parametrize(
    ("data", "address"),
    [
        (SAMPLE_IPV4_RESPONSE, ("192.0.2.1", 32853)),
        (SAMPLE_IPV6_RESPONSE, ("2001:db8:1234:5678:11:2233:4455:6677", 32853)),
    ],
)
def test_sample_responses(data: bytes, address: tuple[str, int]) -> None:
    msg = parse(data)
    assert (msg.method, msg.cls) == (Method.BINDING, StunClass.SUCCESS)
    assert msg.text(Attr.SOFTWARE) == "test vector"
    assert msg.xor_address(Attr.XOR_MAPPED_ADDRESS) == address
    assert integrity_ok(msg, SHORT_TERM_KEY)
    assert fingerprint_ok(msg)
    rebuilt = StunMessage(
        Method.BINDING,
        StunClass.SUCCESS,
        TID,
        (
            (Attr.SOFTWARE, b"test vector"),
            (Attr.XOR_MAPPED_ADDRESS, encode_xor_address(address, TID)),
        ),
    )
    assert encode(rebuilt, SHORT_TERM_KEY, fingerprint=True, pad=b" ") == data


def test_sample_long_term_request() -> None:
    msg = parse(SAMPLE_LONG_TERM)
    username = "\u30de\u30c8\u30ea\u30c3\u30af\u30b9"
    assert msg.text(Attr.USERNAME) == username
    assert msg.text(Attr.NONCE) == "f//499k954d6OL34oL9FSTvy64sA"
    assert msg.text(Attr.REALM) == "example.org"
    key = long_term_key(username, "example.org", "TheMatrIX")
    assert integrity_ok(msg, key)
    assert not fingerprint_ok(msg)
    assert not integrity_ok(msg, long_term_key(username, "example.org", "TheMatrix"))


def test_sha256_integrity_round_trip() -> None:
    msg = StunMessage(Method.ALLOCATE, StunClass.REQUEST, TID, ((Attr.USERNAME, b"u"),))
    data = encode(msg, b"key", sha256=True, fingerprint=True)
    parsed = parse(data)
    assert integrity_ok(parsed, b"key") and fingerprint_ok(parsed)
    assert not integrity_ok(parsed, b"other")
    assert parsed.get(Attr.USERNAME) == b"u"


def test_attributes_after_integrity_are_ignored() -> None:
    msg = StunMessage(Method.BINDING, StunClass.REQUEST, TID, ((Attr.USERNAME, b"u"),))
    data = bytearray(encode(msg, b"k"))
    data += bytes.fromhex("80220004") + b"late"
    data[2:4] = (len(data) - 20).to_bytes(2, "big")
    parsed = parse(bytes(data))
    assert not parsed.has(Attr.SOFTWARE)
    assert integrity_ok(parsed, b"k")


def test_typed_attributes() -> None:
    assert decode_address(encode_address(("10.1.2.3", 5060))) == ("10.1.2.3", 5060)
    assert decode_address(encode_address(("::1", 1))) == ("::1", 1)
    assert decode_error_code(encode_error_code(438, "Stale Nonce")) == (438, "Stale Nonce")
    assert decode_unknown_attributes(encode_unknown_attributes((0x1234, 0x7FFF))) == (
        0x1234,
        0x7FFF,
    )
    with pytest.raises(StunError):
        encode_error_code(200, "OK")
    with pytest.raises(StunError):
        decode_error_code(b"\x00\x00\x02\x00")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        SAMPLE_REQUEST[:19],
        b"\x80" + SAMPLE_REQUEST[1:],  # first bits set
        SAMPLE_REQUEST[:4] + b"\x00\x00\x00\x00" + SAMPLE_REQUEST[8:],  # no cookie
        SAMPLE_REQUEST[:-1],  # length mismatch
        SAMPLE_REQUEST + b"\x00\x00\x00\x00",
        bytes.fromhex("00010004") + SAMPLE_REQUEST[4:20] + bytes.fromhex("00060010"),
        bytes.fromhex("00010008") + SAMPLE_REQUEST[4:20] + bytes.fromhex("000d000300000000"),
        bytes.fromhex("00010003") + SAMPLE_REQUEST[4:20] + b"\x00\x06\x00",
    ],
    ids=["empty", "short", "bits", "cookie", "truncated", "trailing", "overrun", "size", "len%4"],
)
def test_malformed_messages_raise_stun_error(data: bytes) -> None:
    with pytest.raises(StunError):
        parse(data)


def test_fingerprint_must_be_last() -> None:
    msg = StunMessage(Method.BINDING, StunClass.REQUEST, TID)
    data = bytearray(encode(msg, fingerprint=True))
    data += bytes.fromhex("80220000")
    data[2:4] = (len(data) - 20).to_bytes(2, "big")
    with pytest.raises(StunError, match="last"):
        parse(bytes(data))


def test_channel_data() -> None:
    frame = channel_data(0x4001, b"hello")
    assert is_channel_data(frame) and not is_stun(frame)
    assert parse_channel_data(frame + b"\x00\x00\x00") == (0x4001, b"hello")
    assert is_stun(SAMPLE_REQUEST) and not is_channel_data(SAMPLE_REQUEST)
    for bad in (b"\x40\x00\x00", b"\x3f\xff\x00\x00", b"\x40\x00\x00\x09abc"):
        with pytest.raises(StunError):
            parse_channel_data(bad)
    with pytest.raises(StunError):
        channel_data(0x8000, b"")


addresses = st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str)).flatmap(
    lambda host: st.tuples(st.just(host), st.integers(0, 65535))
)


@given(addr=addresses, tid=st.binary(min_size=12, max_size=12))
def test_xor_address_round_trip(addr: tuple[str, int], tid: bytes) -> None:
    assert decode_xor_address(encode_xor_address(addr, tid), tid) == addr


_plain_attribute = st.tuples(
    st.integers(0, 0xFFFF).filter(
        lambda k: (
            k
            not in (
                Attr.MESSAGE_INTEGRITY,
                Attr.MESSAGE_INTEGRITY_SHA256,
                Attr.FINGERPRINT,
                Attr.LIFETIME,
                Attr.CHANNEL_NUMBER,
                Attr.REQUESTED_TRANSPORT,
                Attr.REQUESTED_ADDRESS_FAMILY,
                Attr.EVEN_PORT,
                Attr.DONT_FRAGMENT,
                Attr.RESERVATION_TOKEN,
            )
        )
    ),
    st.binary(max_size=40),
)


@given(
    method=st.integers(0, 0xFFF),
    cls=st.integers(0, 3),
    tid=st.binary(min_size=12, max_size=12),
    attributes=st.lists(_plain_attribute, max_size=6).map(tuple),
    key=st.one_of(st.none(), st.binary(min_size=1, max_size=20)),
    sha256=st.booleans(),
    fingerprint=st.booleans(),
)
def test_round_trip(
    method: int,
    cls: int,
    tid: bytes,
    attributes: tuple[tuple[int, bytes], ...],
    key: bytes | None,
    sha256: bool,
    fingerprint: bool,
) -> None:
    msg = StunMessage(method, cls, tid, attributes)
    data = encode(msg, key, sha256=sha256, fingerprint=fingerprint)
    parsed = parse(data)
    plain = tuple(
        a
        for a in parsed.attributes
        if a[0] not in (Attr.MESSAGE_INTEGRITY, Attr.MESSAGE_INTEGRITY_SHA256, Attr.FINGERPRINT)
    )
    assert (parsed.method, parsed.cls, parsed.transaction_id, plain) == (
        method,
        cls,
        tid,
        attributes,
    )
    assert fingerprint_ok(parsed) == fingerprint
    if key is not None:
        assert integrity_ok(parsed, key)
    assert encode(StunMessage(method, cls, tid, plain), key, sha256=sha256,
                  fingerprint=fingerprint) == data  # fmt: skip


def _exercise(data: bytes) -> None:
    try:
        msg = parse(data)
    except StunError:
        pass
    else:
        integrity_ok(msg, b"k")
        fingerprint_ok(msg)
        for kind, value in msg.attributes:
            for decode in (
                lambda v: decode_xor_address(v, msg.transaction_id),
                decode_address,
                decode_error_code,
                decode_unknown_attributes,
            ):
                with contextlib.suppress(StunError):
                    decode(value)
            with contextlib.suppress(StunError):
                msg.text(kind)
    with contextlib.suppress(StunError):
        parse_channel_data(data)


@settings(max_examples=500)
@given(st.binary(max_size=120))
def test_fuzz_random_bytes_raise_only_stun_error(data: bytes) -> None:
    _exercise(data)


@settings(max_examples=500)
@given(
    base=st.sampled_from([SAMPLE_REQUEST, SAMPLE_IPV4_RESPONSE, SAMPLE_IPV6_RESPONSE,
                          SAMPLE_LONG_TERM]),
    flips=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6),
    cut=st.integers(0, 120),
)  # fmt: skip
def test_fuzz_mutated_vectors_raise_only_stun_error(
    base: bytes, flips: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(base)
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    _exercise(bytes(data[: len(data) - cut % 8]))
