"""SIP/SIPS (RFC 3261 §19.1), tel (RFC 3966) and other URIs; §19.1.4 equivalence."""

from __future__ import annotations

import pytest

from hybridvoice.sip import AbsoluteUri, ParseError, SipUri, TelUri, parse_uri, uri_equal


def sip(text: str) -> SipUri:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri)
    return uri


# --- SIP and SIPS -----------------------------------------------------------------------


def test_full_sip_uri() -> None:
    uri = sip(
        "sip:alice:secret@atlanta.com:5070;transport=TCP;lr?subject=project%20x&priority=urgent"
    )
    assert uri.scheme == "sip" and not uri.secure
    assert (uri.user, uri.password, uri.host, uri.port) == ("alice", "secret", "atlanta.com", 5070)
    assert uri.params == (("transport", "TCP"), ("lr", None))
    assert uri.transport == "tcp" and uri.lr
    assert uri.headers == (("subject", "project%20x"), ("priority", "urgent"))


@pytest.mark.parametrize(
    "text",
    [
        "sip:atlanta.com",
        "sip:192.0.2.4",
        "sip:alice@atlanta.com",
        "sips:alice@atlanta.com:5061",
        "sip:+1-212-555-1212:1234@gateway.com;user=phone",
        "sip:alice;day=tuesday@atlanta.com",
        "sip:alice@192.0.2.4;maddr=239.255.255.1;ttl=15",
        "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
        "sip:[2001:db8::10]",
        "sip:bob@[2001:db8::10]:5070;transport=tls",
        "sip:[::ffff:192.0.2.1]:5060",
        "sip:user@host_with_underscore.example.com",
        "sip:%61lice@atlanta.com",
    ],
)
def test_sip_uris_round_trip(text: str) -> None:
    assert str(parse_uri(text)) == text


def test_ipv6_reference() -> None:
    uri = sip("sip:bob@[2001:db8::10]:5070")
    assert uri.host == "[2001:db8::10]" and uri.host_bare == "2001:db8::10"
    assert uri.port == 5070
    assert sip("sip:[2001:db8::10]").port is None


def test_scheme_is_case_insensitive_and_normalised() -> None:
    assert sip("SIP:alice@atlanta.com").scheme == "sip"
    assert sip("SiPs:alice@atlanta.com").secure


def test_user_unescaped_and_params() -> None:
    uri = sip("sip:sips%3Auser%40example.com@example.net;maddr=10.0.0.1")
    assert uri.user_unescaped == "sips:user@example.com"
    assert uri.maddr == "10.0.0.1" and uri.param("MADDR") == "10.0.0.1"
    assert (
        str(uri.with_param("lr")) == "sip:sips%3Auser%40example.com@example.net;maddr=10.0.0.1;lr"
    )
    assert str(uri.without_param("maddr")) == "sip:sips%3Auser%40example.com@example.net"
    assert str(uri.with_param("maddr", "10.0.0.2")).endswith(";maddr=10.0.0.2")


@pytest.mark.parametrize(
    "text",
    [
        "sip:",
        "sip:alice@",
        "sip:alice@atlanta.com:99999",
        "sip:alice@atlanta.com:",
        "sip:alice@atlanta.com:5o60",
        "sip:[2001:db8::1",
        "sip:[2001:db8::1]x",
        "sip:al ice@atlanta.com",
        "sip:alice@atl<anta.com",
        "sip:alice@atlanta.com;=x",
        "sip:alice@atlanta.com?novalue",
        "sip:alice@atlanta.com:\u00b2",
        "alice@atlanta.com",
        "1sip:alice@atlanta.com",
        "",
        ":",
    ],
)
def test_malformed_uris_raise(text: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_uri(text)
    assert info.value.status_hint == 400


# --- tel --------------------------------------------------------------------------------


def test_global_tel_uri() -> None:
    uri = parse_uri("tel:+1-201-555-0123")
    assert isinstance(uri, TelUri)
    assert uri.scheme == "tel" and uri.is_global
    assert uri.number == "+1-201-555-0123" and uri.digits == "+12015550123"
    assert str(uri) == "tel:+1-201-555-0123"


def test_local_tel_uri_with_context() -> None:
    uri = parse_uri("tel:7042;phone-context=example.com")
    assert isinstance(uri, TelUri) and not uri.is_global
    assert uri.params == (("phone-context", "example.com"),)
    assert str(uri) == "tel:7042;phone-context=example.com"


@pytest.mark.parametrize("text", ["tel:", "tel:+1 555", "tel:+1;=x", "tel:abc@host"])
def test_malformed_tel_uris_raise(text: str) -> None:
    with pytest.raises(ParseError):
        parse_uri(text)


# --- other schemes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "scheme", "rest"),
    [
        ("im:alice@atlanta.com", "im", "alice@atlanta.com"),
        ("urn:service:sos", "urn", "service:sos"),
        ("soap.beep://192.0.2.103:3002", "soap.beep", "//192.0.2.103:3002"),
        (
            "nobodyKnowsThisScheme:totallyopaquecontent",
            "nobodyKnowsThisScheme",
            "totallyopaquecontent",
        ),
    ],
)
def test_other_schemes_are_kept_verbatim(text: str, scheme: str, rest: str) -> None:
    uri = parse_uri(text)
    assert uri == AbsoluteUri(scheme, rest)
    assert str(uri) == text


@pytest.mark.parametrize("text", ["im:", "im:with space", "http:<x>", 'x:"q"'])
def test_malformed_other_uris_raise(text: str) -> None:
    with pytest.raises(ParseError):
        parse_uri(text)


# --- §19.1.4 equivalence, the RFC's own examples -----------------------------------------

EQUIVALENT = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    (
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ),
    (
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ),
]

NOT_EQUIVALENT = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
    ("sip:alice:pw1@atlanta.com", "sip:alice:pw2@atlanta.com"),
]


@pytest.mark.parametrize(("a", "b"), EQUIVALENT)
def test_rfc3261_equivalent_uris(a: str, b: str) -> None:
    assert uri_equal(parse_uri(a), parse_uri(b))
    assert uri_equal(parse_uri(b), parse_uri(a))


@pytest.mark.parametrize(("a", "b"), NOT_EQUIVALENT)
def test_rfc3261_non_equivalent_uris(a: str, b: str) -> None:
    assert not uri_equal(parse_uri(a), parse_uri(b))
    assert not uri_equal(parse_uri(b), parse_uri(a))


def test_equivalence_is_not_transitive() -> None:
    # §19.1.4: "sip:carol@chicago.com" equals both, but they differ from each other
    on = parse_uri("sip:carol@chicago.com;security=on")
    off = parse_uri("sip:carol@chicago.com;security=off")
    plain = parse_uri("sip:carol@chicago.com")
    assert uri_equal(plain, on) and uri_equal(plain, off)
    assert not uri_equal(on, off)


def test_tel_equivalence_ignores_visual_separators() -> None:
    assert uri_equal(parse_uri("tel:+1-201-555-0123"), parse_uri("tel:+1.201.555.0123"))
    assert not uri_equal(parse_uri("tel:+12015550123"), parse_uri("tel:+12015550124"))
    local = "tel:7042;phone-context=example.com"
    assert uri_equal(parse_uri(local), parse_uri("tel:7042;PHONE-CONTEXT=Example.com"))
    assert not uri_equal(parse_uri(local), parse_uri("tel:7042;phone-context=example.org"))


def test_different_kinds_are_never_equal() -> None:
    assert not uri_equal(parse_uri("tel:+12015550123"), parse_uri("sip:+12015550123@h"))
    assert not uri_equal(parse_uri("im:a@b"), parse_uri("sip:a@b"))
    assert uri_equal(parse_uri("IM:a@b"), parse_uri("im:a@b"))
