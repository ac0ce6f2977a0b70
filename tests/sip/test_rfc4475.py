"""The 49 RFC 4475 torture messages as a table with the verdict the RFC asks for.

Every message is fed whole to ``parse_message``, whole and one byte at a time to
``StreamParser``, and with trailing data (a second message, or garbage). Valid ones must
round-trip; invalid ones must raise ``ParseError`` with the status a server would send;
the application-level ones (RFC 4475 §3.3) go through ``hybridvoice.sip.validate``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from hybridvoice.sip import (
    AbsoluteUri,
    KeepAlive,
    ParseError,
    Request,
    Response,
    SipUri,
    StreamParser,
    parse_message,
)
from hybridvoice.sip.auth import AuthValue, Credentials, UnsupportedSchemeError
from hybridvoice.sip.validate import (
    UasPolicy,
    check_proxy_request,
    check_request,
    check_response,
)

DATA = Path(
    os.environ.get(
        "HV_RFC4475_DIR",
        Path(__file__).resolve().parents[1] / "fixtures" / "rfc4475",
    )
)

VALID = "valid"  # parses, round-trips
INVALID = "invalid"  # ParseError with a status hint
APP = "application"  # parses; the verdict is the application's (validate.py)


@dataclass(frozen=True)
class Case:
    name: str
    section: str
    verdict: str
    hint: int | None = None  # ParseError.status_hint for INVALID


CASES = [
    # 3.1.1 valid messages
    Case("wsinv", "3.1.1.1", VALID),
    Case("intmeth", "3.1.1.2", VALID),
    Case("esc01", "3.1.1.3", VALID),
    Case("escnull", "3.1.1.4", VALID),
    Case("esc02", "3.1.1.5", VALID),
    Case("lwsdisp", "3.1.1.6", VALID),
    Case("longreq", "3.1.1.7", VALID),
    Case("dblreq", "3.1.1.8", VALID),
    Case("semiuri", "3.1.1.9", VALID),
    Case("transports", "3.1.1.10", VALID),
    Case("mpart01", "3.1.1.11", VALID),
    Case("unreason", "3.1.1.12", VALID),
    Case("noreason", "3.1.1.13", VALID),
    # 3.1.2 invalid messages
    Case("badinv01", "3.1.2.1", INVALID, 400),
    Case("clerr", "3.1.2.2", INVALID, 400),
    Case("ncl", "3.1.2.3", INVALID, 400),
    Case("scalar02", "3.1.2.4", INVALID, 400),
    Case("scalarlg", "3.1.2.5", INVALID, 400),  # a response: dropped
    Case("quotbal", "3.1.2.6", INVALID, 400),
    Case("ltgtruri", "3.1.2.7", INVALID, 400),
    Case("lwsruri", "3.1.2.8", INVALID, 400),
    Case("lwsstart", "3.1.2.9", INVALID, 400),
    Case("trws", "3.1.2.10", INVALID, 400),
    Case("escruri", "3.1.2.11", INVALID, 400),
    Case("baddate", "3.1.2.12", INVALID, 400),
    Case("regbadct", "3.1.2.13", INVALID, 400),
    Case("badaspec", "3.1.2.14", INVALID, 400),
    Case("baddn", "3.1.2.15", INVALID, 400),
    Case("badvers", "3.1.2.16", INVALID, 505),
    Case("mismatch01", "3.1.2.17", INVALID, 400),
    Case("mismatch02", "3.1.2.18", INVALID, 400),
    Case("bigcode", "3.1.2.19", INVALID, 400),  # a response: dropped
    # 3.2 transaction layer
    Case("badbranch", "3.2.1", VALID),
    # 3.3 application layer
    Case("insuf", "3.3.1", APP),
    Case("unkscm", "3.3.2", APP),
    Case("novelsc", "3.3.3", APP),
    Case("unksm2", "3.3.4", APP),
    Case("bext01", "3.3.5", APP),
    Case("invut", "3.3.6", APP),
    Case("regaut01", "3.3.7", APP),
    Case("multi01", "3.3.8", APP),
    # §3.3.9: conflicting Content-Length values make framing impossible; the parser
    # already answers 400 (the RFC: "respond with an error").
    Case("mcl01", "3.3.9", INVALID, 400),
    Case("bcast", "3.3.10", APP),
    Case("zeromf", "3.3.11", APP),
    Case("cparam01", "3.3.12", APP),
    Case("cparam02", "3.3.13", APP),
    Case("regescrt", "3.3.14", APP),
    Case("sdp01", "3.3.15", APP),
    # 3.4 backward compatibility
    Case("inv2543", "3.4.1", VALID),
]
BY_NAME = {case.name: case for case in CASES}
PARSEABLE = [c.name for c in CASES if c.verdict != INVALID]
UNPARSEABLE = [c.name for c in CASES if c.verdict == INVALID]

#: A message to put after another one on a stream or in a datagram.
SECOND = (
    b"OPTIONS sip:second@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 192.0.2.9;branch=z9hG4bKsecond\r\n"
    b"Max-Forwards: 70\r\nTo: <sip:second@example.com>\r\n"
    b"From: <sip:first@example.com>;tag=1\r\nCall-ID: second@192.0.2.9\r\n"
    b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
)
GARBAGE = b"\x00\xff not SIP at all \x7f\r\n\r\n"

UAS = UasPolicy()
REGISTRAR = UasPolicy(allowed_methods=("REGISTER", "OPTIONS", "ACK", "CANCEL"))


def load(name: str) -> bytes:
    return (DATA / f"{name}.dat").read_bytes()


def parse(name: str) -> Request | Response:
    return parse_message(load(name))


def request(name: str) -> Request:
    message = parse(name)
    assert isinstance(message, Request)
    return message


def feed_bytewise(parser: StreamParser, data: bytes) -> list[Request | Response | KeepAlive]:
    out: list[Request | Response | KeepAlive] = []
    for i in range(len(data)):
        out += parser.feed(data[i : i + 1])
    return out


def same_head(a: Request | Response | KeepAlive, b: Request | Response | KeepAlive) -> bool:
    """Start line and headers equal (bodies may differ when framing differs)."""
    if isinstance(a, KeepAlive) or isinstance(b, KeepAlive):
        return a == b
    return bytes(a).split(b"\r\n\r\n")[0] == bytes(b).split(b"\r\n\r\n")[0]


# --- the table itself ------------------------------------------------------------------


def test_the_table_covers_every_file_and_the_manifest() -> None:
    files = {p.stem for p in DATA.glob("*.dat")}
    assert len(files) == 49
    assert files == set(BY_NAME)
    manifest = (DATA / "MANIFEST.md").read_text()
    rows = dict(re.findall(r"^\| (\w+)\.dat \| ([0-9.]+) ", manifest, re.MULTILINE))
    assert rows == {c.name: c.section for c in CASES}


# --- datagrams -----------------------------------------------------------------------


@pytest.mark.parametrize("name", PARSEABLE)
def test_valid_messages_parse_and_round_trip(name: str) -> None:
    message = parse(name)
    again = parse_message(bytes(message))
    assert again == message
    assert bytes(again) == bytes(message)


@pytest.mark.parametrize("name", UNPARSEABLE)
def test_invalid_messages_raise_with_status_hint(name: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(name)
    assert info.value.status_hint == BY_NAME[name].hint


@pytest.mark.parametrize("name", PARSEABLE)
def test_datagram_ignores_bytes_after_content_length(name: str) -> None:
    message = parse(name)
    for trailer in (SECOND, GARBAGE):
        with_trailer = parse_message(load(name) + trailer)
        if message.content_length is None:
            # §18.3: without Content-Length the body runs to the end of the datagram
            assert same_head(with_trailer, message)
            assert with_trailer.body == message.body + trailer
        else:
            assert with_trailer == message


@pytest.mark.parametrize("name", [n for n in UNPARSEABLE if n != "clerr"])
def test_invalid_stays_invalid_with_trailing_bytes(name: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_message(load(name) + SECOND)
    assert info.value.status_hint == BY_NAME[name].hint


def test_clerr_content_length_beyond_the_datagram() -> None:
    # §3.1.2.2: Content-Length 9999 on a datagram of a few hundred bytes
    with pytest.raises(ParseError, match="larger than"):
        parse("clerr")


# --- streams -------------------------------------------------------------------------


def stream_whole(data: bytes) -> tuple[list[Request | Response | KeepAlive], ParseError | None]:
    """Feed ``data`` at once; the messages and the error the stream ends with, if any."""
    parser = StreamParser()
    try:
        out = parser.feed(data)
    except ParseError as exc:
        return [], exc
    try:
        parser.feed(b"")  # raises the error of bytes after the messages, if any
    except ParseError as exc:
        return out, exc
    return out, None


@pytest.mark.parametrize("name", [n for n in PARSEABLE if n not in ("dblreq", "inv2543")])
def test_stream_frames_one_message(name: str) -> None:
    data = load(name)
    whole = StreamParser()
    assert whole.feed(data) == [parse_message(data)]
    assert len(whole) == 0
    bytewise = StreamParser()
    assert feed_bytewise(bytewise, data) == [parse_message(data)]
    assert len(bytewise) == 0


@pytest.mark.parametrize("name", [n for n in PARSEABLE if n not in ("dblreq", "inv2543")])
def test_stream_with_a_second_message(name: str) -> None:
    data = load(name)
    expected = [parse_message(data), parse_message(SECOND)]
    assert StreamParser().feed(data + SECOND) == expected
    assert feed_bytewise(StreamParser(), data + SECOND) == expected


@pytest.mark.parametrize("name", [n for n in PARSEABLE if n not in ("dblreq", "inv2543")])
def test_stream_with_trailing_garbage(name: str) -> None:
    data = load(name)
    out, error = stream_whole(data + GARBAGE)
    assert out == [parse_message(data)]
    assert error is not None and error.status_hint == 400
    parser = StreamParser()
    with pytest.raises(ParseError):
        feed_bytewise(parser, data + GARBAGE)
    with pytest.raises(ParseError):
        parser.feed(SECOND)  # the stream is dead: close the connection


def test_stream_dblreq_is_two_requests_and_a_stray_octet() -> None:
    # On a stream the trailing INVITE of §3.1.1.8 is a second message. Its Content-Length
    # (150) ends five octets before the data does: "C\r\n\r\n" cannot start a message.
    data = load("dblreq")
    out, error = stream_whole(data)
    assert [type(m).__name__ for m in out] == ["Request", "KeepAlive", "Request"]
    register, pong, invite = out
    assert register == parse_message(data)
    assert pong == KeepAlive(ping=False)  # the CRLF after the REGISTER
    assert isinstance(invite, Request) and invite.method == "INVITE"
    assert invite.body.endswith(b"a=rtpmap:31 LP")
    assert error is not None and error.status_hint == 400
    parser = StreamParser()
    collected: list[Request | Response | KeepAlive] = []
    with pytest.raises(ParseError):
        for i in range(len(data)):
            collected += parser.feed(data[i : i + 1])
    assert collected == out


def test_stream_inv2543_without_content_length_has_an_empty_body() -> None:
    # §18.3: Content-Length is mandatory on streams; without it the body is empty and
    # what follows is waited on as the start of the next message.
    data = load("inv2543")
    parser = StreamParser()
    (message,) = parser.feed(data)
    assert isinstance(message, Request) and message.body == b""
    assert same_head(message, parse_message(data))
    sdp = parse_message(data).body
    assert sdp.startswith(b"v=0") and len(parser) == len(sdp)
    bytewise = StreamParser()
    assert feed_bytewise(bytewise, data) == [message]
    assert len(bytewise) == len(sdp)
    # the SDP then glued to a second message is not a start line: the stream is dead
    with pytest.raises(ParseError):
        parser.feed(SECOND)


@pytest.mark.parametrize("name", [n for n in UNPARSEABLE if n != "clerr"])
def test_stream_rejects_invalid(name: str) -> None:
    data = load(name)
    for feed in (lambda p: p.feed(data), lambda p: feed_bytewise(p, data)):
        parser = StreamParser()
        with pytest.raises(ParseError) as info:
            feed(parser)
        assert info.value.status_hint == BY_NAME[name].hint


def test_stream_clerr_waits_for_the_announced_body() -> None:
    # on a stream a large Content-Length is not an error, only a body still to come
    data = load("clerr")
    parser = StreamParser()
    assert parser.feed(data) == []
    assert len(parser) == len(data)
    assert feed_bytewise(StreamParser(), data) == []


# --- typed values the RFC calls out --------------------------------------------------


def test_wsinv_folded_and_spaced_headers() -> None:
    m = request("wsinv")
    assert m.method == "INVITE"
    assert m.to is not None and m.to.tag == "1918181833n"
    assert m.from_ is not None and m.from_.display_name == 'J Rosenberg \\"'
    assert m.from_.tag == "98asjd8"
    assert m.max_forwards == 68
    assert m.cseq is not None and (m.cseq.seq, m.cseq.method) == (9, "INVITE")
    assert [(v.transport, v.host, v.branch) for v in m.via] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert m.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert m.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert m.headers.get("Subject") == ""
    (contact,) = m.contact
    assert contact.display_name == 'Quoted string ""'
    assert contact.param("newparam") == "newvalue" and contact.param("q") == "0.33"
    (route,) = m.route
    assert isinstance(route.uri, SipUri) and route.uri.lr
    assert len(m.body) == 150


def test_intmeth_unusual_characters() -> None:
    m = request("intmeth")
    assert m.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert m.cseq is not None and m.cseq.method == m.method
    assert m.to is not None and m.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert m.from_ is not None and m.from_.display == "token1~` token2'+_ token3*%!.-"
    assert m.from_.tag == "_token~1'+`*%!-."
    assert m.from_.param("fromParam''~+*_!.-%") == '"работающий"'
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert isinstance(m.uri, SipUri) and m.uri.host == "example.com"
    assert m.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert m.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"
    assert m.max_forwards == 255


def test_esc01_escapes_kept_and_resolved() -> None:
    m = request("esc01")
    assert isinstance(m.uri, SipUri)
    assert m.uri.user == "sips%3Auser%40example.com"
    assert m.uri.user_unescaped == "sips:user@example.com"
    assert m.to is not None and isinstance(m.to.uri, SipUri)
    assert m.to.uri.user_unescaped == "user"
    assert m.from_ is not None and isinstance(m.from_.uri, SipUri)
    assert m.from_.uri.user_unescaped == "I have spaces"
    (contact,) = m.contact
    assert isinstance(contact.uri, SipUri) and contact.uri.user_unescaped == "caller"
    assert contact.uri.params == (("%6C%72", None), ("n%61me", "v%61lue%25%34%31"))


def test_escnull_escaped_nulls() -> None:
    m = request("escnull")
    assert m.to is not None and isinstance(m.to.uri, SipUri)
    assert m.to.uri.user_unescaped == "null-\x00-null"
    assert [c.uri.user for c in m.contact if isinstance(c.uri, SipUri)] == ["%00", "%00%00"]


def test_esc02_percent_that_is_not_an_escape() -> None:
    m = request("esc02")
    assert m.method == "RE%47IST%45R"  # not REGISTER: methods are not unescaped
    assert m.to is not None and m.to.display_name == "%Z%45"
    assert m.top_via is not None and m.top_via.branch == "z9hG4bK209%fzsnel234"
    # "C%6Fntact" is an unknown header, not a third Contact
    assert len(m.contact) == 2
    assert m.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_lwsdisp_display_name_without_space() -> None:
    m = request("lwsdisp")
    assert m.from_ is not None and m.from_.display_name == "caller"
    assert m.from_.tag == "323"


def test_longreq_long_values() -> None:
    m = request("longreq")
    assert len(m.via) == 34
    assert m.to is not None and m.to.display is not None and len(m.to.display) > 100
    assert any(len(name) > 80 for name, _ in m.headers)


def test_dblreq_ignores_the_trailing_invite() -> None:
    m = request("dblreq")
    assert m.method == "REGISTER" and m.body == b""
    assert m.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"  # the compact "I:"
    assert b"INVITE" not in bytes(m)


def test_semiuri_semicolon_in_user() -> None:
    m = request("semiuri")
    assert isinstance(m.uri, SipUri)
    assert m.uri.user == "user;par=u%40example.net" and m.uri.params == ()
    assert m.headers.values("Accept")[-1] == "message/sipfrag"


def test_transports_five_vias() -> None:
    m = request("transports")
    assert [v.transport for v in m.via] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert [v.host for v in m.via] == [f"t{i}.example.com" for i in range(1, 6)]


def test_mpart01_binary_multipart_body() -> None:
    m = request("mpart01")
    assert m.content_type == "multipart/mixed"
    assert len(m.body) == m.content_length == 553
    assert m.body.startswith(b"--7a9cbec02ceef655\r\n")


def test_noreason_and_unreason() -> None:
    empty = parse("noreason")
    assert isinstance(empty, Response)
    assert (empty.status, empty.reason) == (100, "")
    assert bytes(empty).startswith(b"SIP/2.0 100 \r\n")
    utf8 = parse("unreason")
    assert isinstance(utf8, Response)
    assert utf8.status == 200
    assert utf8.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"


def test_badbranch_only_the_magic_cookie() -> None:
    # §3.2.1: the branch is the bare cookie; the transaction layer matches per RFC 2543
    m = request("badbranch")
    assert m.top_via is not None and m.top_via.branch == "z9hG4bK"


def test_inv2543_rfc2543_syntax() -> None:
    m = request("inv2543")
    assert m.top_via is not None and m.top_via.branch is None
    assert m.max_forwards is None and m.content_length is None
    assert m.from_ is not None and m.from_.tag is None
    assert m.body.startswith(b"v=0")
    assert check_request(m, policy=UAS) is None  # accepted (§3.4.1)


# --- application-level verdicts (RFC 4475 §3.3) through validate.py -------------------


def test_insuf_missing_headers_400() -> None:
    response = check_request(request("insuf"), policy=UAS, to_tag="t")
    assert response is not None and response.status == 400
    assert response.reason == "Missing To, From, Call-ID"


@pytest.mark.parametrize("name", ["unkscm", "novelsc"])
def test_unknown_request_uri_scheme_416(name: str) -> None:
    m = request(name)
    assert isinstance(m.uri, AbsoluteUri)
    response = check_request(m, policy=UAS, to_tag="t")
    assert response is not None and response.status == 416
    response = check_proxy_request(m, policy=UAS)
    assert response is not None and response.status == 416


def test_novelsc_accepted_by_who_routes_it() -> None:
    m = request("novelsc")
    assert m.uri == AbsoluteUri("soap.beep", "//192.0.2.103:3002")
    policy = UasPolicy(schemes=("sip", "sips", "soap.beep"))
    assert check_request(m, policy=policy) is None


def test_unksm2_unknown_schemes_in_headers_parse() -> None:
    m = request("unksm2")
    assert m.to is not None and m.to.uri == AbsoluteUri("isbn", "2983792873")
    assert m.from_ is not None and m.from_.uri == AbsoluteUri("http", "//www.example.com")
    assert [str(c.uri) for c in m.contact] == ["name:John_Smith"]
    assert check_request(m, policy=REGISTRAR) is None  # the registrar decides on the AOR


def test_bext01_require_and_proxy_require_420() -> None:
    m = request("bext01")
    uas = check_request(m, policy=UAS, to_tag="t")
    assert uas is not None and uas.status == 420
    assert uas.headers.values("Unsupported") == ["nothingSupportsThis", "nothingSupportsThisEither"]
    proxy = check_proxy_request(m, policy=UAS)
    assert proxy is not None and proxy.status == 420
    assert proxy.headers.values("Unsupported") == [
        "noProxiesSupportThis",
        "norDoAnyProxiesSupportThis",
    ]


def test_invut_unknown_content_type_415_with_accept() -> None:
    response = check_request(request("invut"), policy=UAS, to_tag="t")
    assert response is not None and response.status == 415
    assert response.headers.get("Accept") == "application/sdp"


def test_regaut01_unknown_authorization_scheme_is_visible() -> None:
    m = request("regaut01")
    assert check_request(m, policy=REGISTRAR) is None  # 401 is the registrar's call
    authorization = m.headers.get("Authorization")
    assert authorization is not None
    assert AuthValue.parse(authorization).scheme == "NoOneKnowsThisScheme"
    with pytest.raises(UnsupportedSchemeError):  # what makes the registrar answer 401
        Credentials.parse(authorization)


def test_multi01_several_values_in_single_value_headers_400() -> None:
    response = check_request(request("multi01"), policy=UAS, to_tag="t")
    assert response is not None and response.status == 400
    for name in ("To", "From", "Call-ID", "CSeq", "Max-Forwards"):
        assert name in response.reason


def test_bcast_response_is_dropped() -> None:
    m = parse("bcast")
    assert isinstance(m, Response)
    # not ours at all: §18.1.2
    assert not check_response(m, local_sent_by=[("192.0.2.1", 5060)])
    # ours, but the next hop is the broadcast address: §3.3.10
    assert not check_response(m, local_sent_by=[("192.0.2.198", 5060)])


def test_zeromf_max_forwards_zero() -> None:
    m = request("zeromf")
    assert m.max_forwards == 0
    assert check_request(m, policy=UAS) is None  # an endpoint processes it
    answered = check_proxy_request(m, policy=UAS, to_tag="t")
    assert answered is not None and answered.status == 200  # OPTIONS: answered, §11
    assert answered.headers.get("Allow") is not None
    invite = parse_message(load("zeromf").replace(b"OPTIONS", b"INVITE"))
    assert isinstance(invite, Request)
    response = check_proxy_request(invite, policy=UAS, to_tag="t")
    assert response is not None and response.status == 483


def test_cparam01_contact_parameter() -> None:
    m = request("cparam01")
    (contact,) = m.contact
    assert contact.params == (("unknownparam", None),)
    assert isinstance(contact.uri, SipUri) and contact.uri.params == ()
    assert check_request(m, policy=REGISTRAR) is None


def test_cparam02_uri_parameter() -> None:
    m = request("cparam02")
    (contact,) = m.contact
    assert contact.params == ()
    assert isinstance(contact.uri, SipUri) and contact.uri.params == (("unknownparam", None),)
    assert check_request(m, policy=REGISTRAR) is None


def test_regescrt_escaped_header_in_contact() -> None:
    m = request("regescrt")
    (contact,) = m.contact
    assert isinstance(contact.uri, SipUri)
    assert contact.uri.headers == (("Route", "%3Csip:sip.example.com%3E"),)
    assert check_request(m, policy=REGISTRAR) is None


def test_sdp01_unacceptable_accept_406() -> None:
    response = check_request(request("sdp01"), policy=UAS, to_tag="t")
    assert response is not None and response.status == 406
    assert (response.headers.get("Warning") or "").startswith("399 ")
