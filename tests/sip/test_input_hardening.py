"""Hostile input classes (issue 9, "SIP input"): bare CR/LF in the head, line ends put on
the wire by code, bracketed hosts that are not IPv6 addresses, numbers of any length.

Every class is refused by the parser with a ``ParseError`` (400 for a request) carrying
its ``kind`` (the drop-counter label), or, for delta-seconds, capped at 2**32-1 (§20.19).
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridvoice.sip import (
    Address,
    Headers,
    LocalProtocolError,
    ParseError,
    Request,
    Response,
    SipUri,
    StreamParser,
    parse_message,
)
from hybridvoice.sip.uri import AbsoluteUri

HEAD = (
    "INVITE sip:bob@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n"
    "Max-Forwards: 70\r\n"
    "To: <sip:bob@example.com>\r\n"
    "From: <sip:alice@example.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:alice@192.0.2.1>\r\n"
)


def message(extra: str = "", head: str = HEAD) -> bytes:
    return (head + extra + "Content-Length: 0\r\n\r\n").encode("utf-8", "surrogateescape")


def refused(data: bytes) -> ParseError:
    """The datagram parser and the stream parser refuse ``data`` alike; the datagram error."""
    with pytest.raises(ParseError) as datagram:
        parse_message(data)
    with pytest.raises(ParseError) as stream:
        StreamParser().feed(data)
    assert stream.value.kind == datagram.value.kind
    return datagram.value


# --- bare CR / LF ---------------------------------------------------------------------------

BARE = {
    "LF in a value (an injected Via)": "Subject: hi\nVia: SIP/2.0/UDP 203.0.113.9\r\n",
    "CR in a value": "Subject: hi\rVia: SIP/2.0/UDP 203.0.113.9\r\n",
    "LF then whitespace (folding needs CRLF)": "Subject: hi\n there\r\n",
    "CR then whitespace": "Subject: hi\r there\r\n",
    "LF ending one line of a CRLF head": "Subject: hi\nUser-Agent: x\r\n",
    "LF LF inside the head": "Subject: hi\n\nVia: SIP/2.0/UDP 203.0.113.9\r\n",
}


@pytest.mark.parametrize("extra", BARE.values(), ids=BARE.keys())
def test_bare_cr_or_lf_in_the_head_is_refused(extra: str) -> None:
    error = refused(message(extra))
    assert error.kind == "bare_cr_lf"
    assert error.status_hint == 400
    assert "CR or LF" in error.reason or "bare CR" in error.reason


def test_bare_cr_in_the_request_line_is_refused() -> None:
    head = HEAD.replace("SIP/2.0\r\n", "SIP/2.0\r\rX: y\r\n", 1)
    assert refused(message(head=head)).kind == "bare_cr_lf"


def test_lf_only_framing_and_crlf_folding_still_parse() -> None:
    folded = parse_message(message("Subject: one\r\n two\r\n\tthree\r\n"))
    assert folded.headers.get("Subject") == "one two three"
    lf_only = message().replace(b"\r\n", b"\n")
    assert parse_message(lf_only).call_id == "a84b4c76e66710"


def test_a_response_with_a_bare_lf_is_refused_too() -> None:
    head = HEAD.replace("INVITE sip:bob@example.com SIP/2.0", "SIP/2.0 200 OK", 1)
    assert refused(message("Subject: x\ny: z\r\n", head=head)).kind == "bare_cr_lf"


@pytest.mark.parametrize(
    "build",
    [
        lambda: Headers().add("Subject", "hi\r\nVia: SIP/2.0/UDP evil"),
        lambda: Headers().add("Subject", "hi\nVia: x"),
        lambda: Headers().set("Subject", "hi\rVia: x"),
        lambda: Headers().prepend("Via", "SIP/2.0/UDP a\nX: y"),
        lambda: Headers().add("From", Address(SipUri("example.com"), '"Eve\nVia: x"')),
        lambda: Headers().add("To", Address(SipUri("example.com", user="a\r\nb"))),
    ],
    ids=["crlf", "lf", "set-cr", "prepend-lf", "display-name", "uri-user"],
)
def test_values_built_by_code_with_a_line_end_are_refused(build: object) -> None:
    with pytest.raises(LocalProtocolError, match="CR or LF"):
        build()  # type: ignore[operator]


def test_start_lines_built_by_code_with_a_line_end_are_refused() -> None:
    with pytest.raises(LocalProtocolError):
        bytes(Response(400, "Bad\r\nVia: x"))
    with pytest.raises(LocalProtocolError):
        bytes(Request("OPTIONS", AbsoluteUri("urn", "x\ny")))


_BARE = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_TEXT = st.text(st.characters(codec="utf-8"), max_size=20) | st.sampled_from(
    ["\r", "\n", "\r\n", "a\rb", "a\nb", "x\r\n y"]
)


@settings(max_examples=300, deadline=None)
@given(display=_TEXT, user=_TEXT, subject=_TEXT, reason=_TEXT, param=_TEXT, method=_TEXT)
def test_no_serialised_message_contains_a_bare_cr_or_lf(
    display: str, user: str, subject: str, reason: str, param: str, method: str
) -> None:
    """Whatever text code puts into a message, it is refused or serialised without a CR or
    LF that is not a CRLF line end (the head) — so no next hop sees an injected header."""
    try:
        address = Address(SipUri("example.com", user=user or None), f'"{display}"')
        headers = Headers.of([("From", address), ("Subject", subject), ("X-P", f"a;p={param}")])
        wire = [
            bytes(Request(method or "OPTIONS", SipUri("example.com", user=user or None), headers)),
            bytes(Response(200, reason, headers.copy())),
        ]
    except LocalProtocolError:
        return
    for data in wire:
        head = data[: data.index(b"\r\n\r\n") + 4]
        assert _BARE.search(head) is None, head


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["\r", "\n", "\r\n", " ", "\t", "x", ":"]), max_size=12))
def test_whatever_parses_serialises_without_a_bare_cr_or_lf(noise: list[str]) -> None:
    data = message(f"Subject: a{''.join(noise)}b\r\n")
    try:
        parsed = parse_message(data)
    except ParseError:
        return
    out = bytes(parsed)
    assert _BARE.search(out[: out.index(b"\r\n\r\n") + 4]) is None


# --- bracketed hosts --------------------------------------------------------------------------

BAD_V6 = ["[::1::2]", "[1:2:3:4:5:6:7:8:9]", "[12345::1]", "[1.2.3.4]", "[:]", "[::1.2.3]"]


@pytest.mark.parametrize("host", BAD_V6)
@pytest.mark.parametrize(
    "where",
    [
        "request-uri",
        "via-host",
        "via-received",
        "via-maddr",
        "contact",
        "to",
        "uri-maddr",
    ],
)
def test_bracketed_hosts_must_be_ipv6_addresses(host: str, where: str) -> None:
    head = HEAD
    via = "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds"
    replace = {
        "request-uri": ("INVITE sip:bob@example.com", f"INVITE sip:bob@{host}"),
        "via-host": (via, f"Via: SIP/2.0/UDP {host}:5060;branch=z9hG4bK776asdhds"),
        "via-received": (via, f"{via};received={host}"),
        "via-maddr": (via, f"{via};maddr={host}"),
        "contact": ("Contact: <sip:alice@192.0.2.1>", f"Contact: <sip:alice@{host}>"),
        "to": ("To: <sip:bob@example.com>", f"To: <sip:bob@{host}:5060>"),
        "uri-maddr": ("Contact: <sip:alice@192.0.2.1>", f"Contact: <sip:a@b.c;maddr={host}>"),
    }[where]
    head = head.replace(*replace, 1)
    error = refused(message(head=head))
    assert error.kind == "bad_host"
    assert error.status_hint == 400


def test_real_ipv6_references_parse() -> None:
    head = HEAD.replace("sip:bob@example.com SIP", "sip:bob@[2001:db8::1]:5070 SIP", 1).replace(
        "192.0.2.1:5060;branch", "[::ffff:192.0.2.1];received=2001:db8::9;branch", 1
    )
    request = parse_message(message(head=head))
    assert isinstance(request, Request)
    assert isinstance(request.uri, SipUri) and request.uri.host == "[2001:db8::1]"
    assert request.top_via is not None and request.top_via.received == "2001:db8::9"


# --- numbers of any length ----------------------------------------------------------------------

HUGE = "9" * 5000
MAX32 = 2**32 - 1

#: (name, header line with {n}) for the delta-seconds values: capped at 2**32-1 (§20.19)
CAPPED = {
    "Expires": "Expires: {n}\r\n",
    "Min-Expires": "Min-Expires: {n}\r\n",
    "Retry-After": "Retry-After: {n} (lunch)\r\n",
    "Session-Expires": "Session-Expires: {n};refresher=uac\r\n",
    "x (Session-Expires)": "x: {n}\r\n",
    "Min-SE": "Min-SE: {n}\r\n",
}

#: numbers that are not delta-seconds: a value out of range is a 400 naming the header
REFUSED = {
    "Content-Length": ("Content-Length: {n}\r\n", "Content-Length"),
    "l (Content-Length)": ("l: {n}\r\n", "Content-Length"),
    "Max-Forwards": ("Max-Forwards: {n}\r\n", "Max-Forwards"),
    "CSeq": ("CSeq: {n} INVITE\r\n", "CSeq"),
    "RSeq": ("RSeq: {n}\r\n", "RSeq"),
    "RAck response-num": ("RAck: {n} 1 INVITE\r\n", "RAck"),
    "RAck CSeq-num": ("RAck: 1 {n} INVITE\r\n", "RAck"),
    "Retry-After duration": ("Retry-After: 5;duration={n}\r\n", "duration"),
    "Subscription-State expires": ("Subscription-State: active;expires={n}\r\n", "expires"),
    "Via port": ("Via: SIP/2.0/UDP 192.0.2.2:{n};branch=z9hG4bKa\r\n", "port"),
    "Via rport": ("Via: SIP/2.0/UDP 192.0.2.2;rport={n};branch=z9hG4bKa\r\n", "rport"),
    "Via ttl": ("Via: SIP/2.0/UDP 192.0.2.2;ttl={n};branch=z9hG4bKa\r\n", "ttl"),
    "Contact URI port": ("Contact: <sip:a@b.example.com:{n}>\r\n", "port"),
    "URI ttl": ("Contact: <sip:a@b.example.com;ttl={n};maddr=239.1.1.1>\r\n", "ttl"),
    "q": ("Contact: <sip:a@b.example.com>;q={n}\r\n", "q"),
}


def _with(line: str) -> bytes:
    name = line.partition(":")[0].lower()
    single = {"content-length": "Content-Length", "l": "Content-Length", "cseq": "CSeq"}
    single |= {"max-forwards": "Max-Forwards", "contact": "Contact"}
    head = HEAD
    if name in single:  # replace the line rather than add a second one
        head = re.sub(rf"(?im)^{single[name]}:[^\r]*\r\n", "", head)
    data = message(line, head=head)
    if name in ("content-length", "l"):
        data = data.replace(b"Content-Length: 0\r\n", b"", 1)
    return data


@pytest.mark.parametrize("line", CAPPED.values(), ids=CAPPED.keys())
def test_huge_delta_seconds_are_capped(line: str) -> None:
    request = parse_message(_with(line.format(n=HUGE)))
    name = line.partition(":")[0]
    value = request.headers.get(name) or ""
    assert value.startswith(str(MAX32)), value
    assert len(bytes(request)) < 1000  # the 5,000 digits are not sent on


@pytest.mark.parametrize("digits", [HUGE, "0" * 4990 + "3600"])
def test_contact_expires_parameter_is_capped(digits: str) -> None:
    request = parse_message(_with(f"Contact: <sip:a@b.example.com>;expires={digits}\r\n"))
    expected = str(MAX32) if digits == HUGE else "3600"
    assert request.contact[0].param("expires") == expected


@pytest.mark.parametrize(("line", "named"), REFUSED.values(), ids=REFUSED.keys())
def test_huge_numbers_are_a_400_naming_the_header(line: str, named: str) -> None:
    error = refused(_with(line.format(n=HUGE)))
    assert error.status_hint == 400
    assert named.lower() in error.reason.lower()
    assert error.kind in ("bad_number", "bad_content_length")


def test_huge_route_port_is_refused_by_the_route_view() -> None:
    """Route is parsed when read (a proxy reads it): the same ParseError, not a 500."""
    request = parse_message(_with(f"Route: <sip:p.example.com:{HUGE};lr>\r\n"))
    with pytest.raises(ParseError, match="port"):
        _ = request.route


@pytest.mark.parametrize("line", [*CAPPED.values(), *(v[0] for v in REFUSED.values())])
def test_in_range_numbers_still_parse(line: str) -> None:
    n = "1" if "q=" in line else "0" if line.startswith(("l:", "Content-Length")) else "60"
    parse_message(_with(line.format(n=n)))


def test_leading_zeros_are_not_digits_too_many() -> None:
    request = parse_message(_with("Max-Forwards: " + "0" * 5000 + "70\r\n"))
    assert request.max_forwards == 70
