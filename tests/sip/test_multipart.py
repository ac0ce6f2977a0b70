"""Multipart bodies (:mod:`hybridvoice.sip.multipart`): cut into parts, joined back byte for
byte, one part changed without touching the others; malformed bodies refused, never raised."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridvoice.sip.multipart import Part, boundary_of, split

SDP1 = (
    b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\n"
)
ISUP = b"\x01\x00\x49\x00\x00\x03\x02\x00\x07\x04\x10\x00\x33\x63\x21\x43\x00"
MIXED = (
    b"--unique-boundary-1\r\n"
    b"Content-Type: application/sdp\r\n"
    b"\r\n" + SDP1 + b"\r\n"
    b"--unique-boundary-1\r\n"
    b"Content-Type: application/ISUP; version=nxv3; base=etsi121\r\n"
    b"Content-Disposition: signal; handling=optional\r\n"
    b"\r\n" + ISUP + b"\r\n"
    b"--unique-boundary-1--\r\n"
)  # RFC 3204 §5's example, shortened
MIXED_TYPE = "multipart/mixed; boundary=unique-boundary-1"


def test_rfc3204_mixed_body_splits_into_its_parts_and_joins_back() -> None:
    found = split(MIXED_TYPE, MIXED)
    assert found is not None
    assert [p.content_type for p in found.parts] == ["application/sdp", "application/isup"]
    assert found.parts[0].body == SDP1 and found.parts[1].body == ISUP
    assert found.parts[1].header(b"content-disposition") == "signal; handling=optional"
    assert found.join() == MIXED


def test_a_changed_part_leaves_the_others_byte_for_byte_and_fixes_its_length() -> None:
    body = MIXED.replace(
        b"Content-Type: application/sdp\r\n",
        b"Content-Type: application/sdp\r\nContent-Length: 79\r\n",
    )
    found = split(MIXED_TYPE, body)
    assert found is not None
    found.parts[0].body = b"v=0\r\n"
    joined = found.join()
    assert b"Content-Length: 5\r\n\r\nv=0\r\n\r\n--unique-boundary-1\r\n" in joined
    assert joined.endswith(b"\r\n" + ISUP + b"\r\n--unique-boundary-1--\r\n")


def test_preamble_padding_epilogue_and_quoted_boundaries_survive() -> None:
    body = (
        b"This is the preamble.\r\n--b;1 \t\r\n\r\nno headers\r\n--b;1\r\n"
        b"Content-Type: text/plain\r\n  ; charset=utf-8\r\n\r\nfolded\r\n--b;1--  \r\nepilogue"
    )
    found = split('multipart/alternative; boundary="b;1"', body)
    assert found is not None
    assert found.preamble == b"This is the preamble.\r\n" and found.epilogue == b"epilogue"
    assert [p.content_type for p in found.parts] == ["text/plain", "text/plain"]
    assert found.parts[0].body == b"no headers"
    assert found.parts[1].header(b"content-type") == "text/plain ; charset=utf-8"
    assert found.join() == body


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/sdp", MIXED),  # not multipart
        ("multipart/mixed", MIXED),  # no boundary
        ("multipart/mixed; boundary=" + "x" * 71, MIXED),  # longer than RFC 2046 allows
        ("multipart/mixed; boundary=other", MIXED),  # no delimiter
        (MIXED_TYPE, MIXED.replace(b"--unique-boundary-1--\r\n", b"")),  # never closed
        (MIXED_TYPE, MIXED.replace(b"\r\n\r\nv=0", b"\r\nv=0")),  # headers never end
        (MIXED_TYPE, b"--unique-boundary-1--\r\n"),  # no part at all
        (MIXED_TYPE, b"--unique-boundary-1x\r\n\r\nx\r\n--unique-boundary-1--"),  # not a line
    ],
)
def test_malformed_bodies_are_refused(content_type: str, body: bytes) -> None:
    assert split(content_type, body) is None


def test_boundary_parameter() -> None:
    assert boundary_of("Multipart/Mixed ; charset=x; BOUNDARY=abc") == "abc"
    assert boundary_of('multipart/mixed; boundary=""') is None
    assert boundary_of("text/plain; boundary=abc") is None


_content = st.binary(max_size=60).filter(lambda b: b"--bnd" not in b)
_parts = st.lists(
    st.tuples(st.sampled_from([b"", b"Content-Type: application/sdp\r\n"]), _content),
    min_size=1,
    max_size=4,
)
_outside = st.binary(max_size=20).filter(lambda b: b"-" not in b)  # no delimiter in it


@given(_parts, _outside, _outside)
def test_any_well_formed_body_round_trips(
    parts: list[tuple[bytes, bytes]], preamble: bytes, epilogue: bytes
) -> None:
    body = preamble + b"\r\n" if preamble else b""
    for headers, content in parts:
        body += b"--bnd\r\n" + headers + b"\r\n" + content + b"\r\n"
    body += b"--bnd--\r\n" + epilogue
    found = split("multipart/mixed;boundary=bnd", body)
    assert found is not None
    assert [p.body for p in found.parts] == [c for _, c in parts]
    assert found.join() == body
    found.parts[0].body = b"changed"
    again = split("multipart/mixed;boundary=bnd", found.join())
    assert again is not None and again.parts[0].body == b"changed"
    assert [p.body for p in again.parts[1:]] == [c for _, c in parts[1:]]


@given(st.binary(max_size=300))
def test_any_bytes_split_or_refuse_never_raise(body: bytes) -> None:
    found = split("multipart/mixed; boundary=bnd", body)
    if found is not None:
        assert found.join() == body
        assert all(isinstance(p, Part) for p in found.parts)
