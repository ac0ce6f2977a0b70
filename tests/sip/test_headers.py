"""Header names, typed values (Via, Address, CSeq) and the ``Headers`` list (RFC 3261 §7.3, §20)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridvoice.sip import Address, CSeq, Headers, ParseError, SipUri, Via, parse_address
from hybridvoice.sip.headers import (
    canonical_name,
    parse_address_list,
    parse_call_id,
    parse_cseq,
    parse_uint,
    parse_via_list,
)
from hybridvoice.sip.uri import AbsoluteUri, parse_uri

# --- names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "key", "emitted"),
    [
        ("Via", "via", "Via"),
        ("v", "via", "Via"),
        ("V", "via", "Via"),
        ("i", "call-id", "Call-ID"),
        ("call-id", "call-id", "Call-ID"),
        ("MaX-fOrWaRdS", "max-forwards", "Max-Forwards"),
        ("l", "content-length", "Content-Length"),
        ("m", "contact", "Contact"),
        ("k", "supported", "Supported"),
        ("cseq", "cseq", "CSeq"),
        ("www-authenticate", "www-authenticate", "WWW-Authenticate"),
        ("X-Custom-Thing", "x-custom-thing", "X-Custom-Thing"),
    ],
)
def test_canonical_names(written: str, key: str, emitted: str) -> None:
    assert canonical_name(written) == (key, emitted)


@pytest.mark.parametrize("name", ["", "Bad Name", "Via:", "X(y)", "Ünïcode"])
def test_bad_header_names(name: str) -> None:
    with pytest.raises(ParseError):
        canonical_name(name)


# --- Via ---------------------------------------------------------------------------------


def test_via_with_branch_received_rport() -> None:
    (via,) = parse_via_list(
        ["SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK776asdhds;received=192.0.2.1;rport=5070"]
    )
    assert (via.protocol, via.transport, via.host, via.port) == (
        "SIP/2.0",
        "UDP",
        "pc33.atlanta.com",
        5066,
    )
    assert via.branch == "z9hG4bK776asdhds"
    assert via.received == "192.0.2.1"
    assert via.rport == 5070 and via.wants_rport
    assert via.sent_by == ("pc33.atlanta.com", 5066)


def test_via_bare_rport_and_maddr() -> None:
    (via,) = parse_via_list(["SIP/2.0/udp 192.0.2.1;rport;maddr=239.1.1.1;branch=z9hG4bKx"])
    assert via.transport == "UDP"  # transport is upper-cased
    assert via.wants_rport and via.rport is None
    assert via.maddr == "239.1.1.1"
    assert str(via.with_param("rport", "5060")) == (
        "SIP/2.0/UDP 192.0.2.1;rport=5060;maddr=239.1.1.1;branch=z9hG4bKx"
    )


def test_via_ipv6_and_whitespace() -> None:
    (via,) = parse_via_list(["SIP / 2.0 / TCP [2001:db8::9]:5061 ; branch = z9hG4bKv6"])
    assert via.host == "[2001:db8::9]" and via.port == 5061
    assert via.branch == "z9hG4bKv6"
    assert str(via) == "SIP/2.0/TCP [2001:db8::9]:5061;branch=z9hG4bKv6"


def test_several_vias_on_one_line_and_several_lines() -> None:
    vias = parse_via_list(
        [
            "SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/TCP b.example.com;branch=z9hG4bK2",
            "SIP/2.0/TLS c.example.com;branch=z9hG4bK3",
        ]
    )
    assert [v.host for v in vias] == ["a.example.com", "b.example.com", "c.example.com"]


def test_via_serialises_and_reparses() -> None:
    via = Via("TCP", "proxy.example.com", 5060, (("branch", "z9hG4bKabc"), ("rport", None)))
    assert str(via) == "SIP/2.0/TCP proxy.example.com:5060;branch=z9hG4bKabc;rport"
    assert parse_via_list([str(via)]) == (via,)


@pytest.mark.parametrize(
    "value",
    [
        "SIP/2.0/UDP",
        "SIP/2.0 192.0.2.1",
        "SIP/2.0/UDP 192.0.2.1:70000",
        "SIP/2.0/UDP 192.0.2.1;;",
        "SIP/2.0/UDP 192.0.2.1;branch=a b",
        "garbage",
    ],
)
def test_malformed_vias(value: str) -> None:
    with pytest.raises(ParseError):
        parse_via_list([value])


# --- Address -----------------------------------------------------------------------------


def test_name_addr_with_quoted_display_and_escapes() -> None:
    address = parse_address(
        '"Alice \\"The Great\\" Liddell" <sip:alice@atlanta.com>;tag=1928301774'
    )
    assert address.display == '"Alice \\"The Great\\" Liddell"'
    assert address.display_name == 'Alice "The Great" Liddell'
    assert address.tag == "1928301774"
    assert address.uri == parse_uri("sip:alice@atlanta.com")
    assert str(address) == '"Alice \\"The Great\\" Liddell" <sip:alice@atlanta.com>;tag=1928301774'


def test_name_addr_with_token_display() -> None:
    address = parse_address("Bob Smith <sip:bob@biloxi.com;transport=tcp>;expires=60")
    assert address.display_name == "Bob Smith"
    assert address.param("expires") == "60"
    assert isinstance(address.uri, SipUri) and address.uri.transport == "tcp"


def test_addr_spec_parameters_belong_to_the_header() -> None:
    # §20.10: in an addr-spec, parameters after the URI are header parameters
    address = parse_address("sip:carol@chicago.com;tag=887s")
    assert address.display is None and address.tag == "887s"
    assert isinstance(address.uri, SipUri) and address.uri.params == ()
    assert str(address) == "<sip:carol@chicago.com>;tag=887s"  # always emitted with <>


def test_address_with_tag_and_other_schemes() -> None:
    address = parse_address("<sip:bob@biloxi.com>").with_tag("a6c85cf")
    assert str(address) == "<sip:bob@biloxi.com>;tag=a6c85cf"
    assert parse_address("<tel:+12015550123>").uri.scheme == "tel"
    other = parse_address("<http://www.example.com>")
    assert other.uri == AbsoluteUri("http", "//www.example.com")
    with pytest.raises(ParseError) as info:
        _ = other.sip_uri
    assert info.value.status_hint == 416


def test_address_list_splits_on_commas_outside_quotes_and_brackets() -> None:
    addresses = parse_address_list(
        ['"Doe, John" <sip:john,doe@example.com>, <sip:jane@example.com>;q=0.5', "sip:x@y"]
    )
    assert [a.display_name for a in addresses] == ["Doe, John", None, None]
    assert addresses[1].param("q") == "0.5"
    with pytest.raises(ParseError):
        parse_address_list(["*"])


@pytest.mark.parametrize(
    "value",
    [
        '"unterminated <sip:a@b>',
        "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
        "<sip:a@b",
        "< sip:a@b >",
        "sip:a@b;;",
        "",
    ],
)
def test_malformed_addresses(value: str) -> None:
    with pytest.raises(ParseError):
        parse_address(value)


# --- CSeq, Call-ID, numbers --------------------------------------------------------------


def test_cseq() -> None:
    cseq = parse_cseq(["4711 INVITE"])
    assert cseq == CSeq(4711, "INVITE") and str(cseq) == "4711 INVITE"
    assert parse_cseq(["0009  \tINVITE"]) == CSeq(9, "INVITE")
    for bad in ("INVITE", "1", "-1 INVITE", f"{2**31} INVITE", "1 IN VITE", "1\u00b2 INVITE"):
        with pytest.raises(ParseError):
            parse_cseq([bad])


def test_call_id_and_uint() -> None:
    assert parse_call_id(["f81d4fae-7dec-11d0-a765-00a0c91e6bf6@foo.bar.com"]).endswith(".com")
    for bad in ("a b", "a@b@c", "", "a@"):
        with pytest.raises(ParseError):
            parse_call_id([bad])
    uint = parse_uint(255)
    assert uint(["0068"]) == 68
    for bad in ("256", "-1", "", "1.5", "\u0661"):
        with pytest.raises(ParseError):
            uint([bad])


# --- the Headers list --------------------------------------------------------------------


def sample() -> Headers:
    return Headers.of(
        [
            ("Via", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2"),
            ("v", "SIP/2.0/UDP c;branch=z9hG4bK3"),
            ("To", "<sip:bob@example.com>"),
            ("X-Thing", "one"),
            ("x-thing", "two"),
            ("CSeq", CSeq(1, "INVITE")),
        ]
    )


def test_lookup_is_case_insensitive_and_folds_compact_forms() -> None:
    h = sample()
    assert h.get("VIA") == "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2"
    assert len(h.get_all("v")) == 2
    assert h.values("Via") == [
        "SIP/2.0/UDP a;branch=z9hG4bK1",
        "SIP/2.0/UDP b;branch=z9hG4bK2",
        "SIP/2.0/UDP c;branch=z9hG4bK3",
    ]
    assert h.count("x-THING") == 2 and h.get_all("X-Thing") == ["one", "two"]
    assert "t" in h and "From" not in h and 42 not in h
    assert h.get("From") is None and h.get("From", "dflt") == "dflt"
    assert h.get("cseq") == "1 INVITE"  # typed values are stored as their text


def test_names_are_emitted_canonically_unknown_ones_as_written() -> None:
    assert [name for name, _ in sample()] == ["Via", "Via", "To", "X-Thing", "x-thing", "CSeq"]


def test_add_prepend_set_remove() -> None:
    h = sample()
    h.prepend("Via", "SIP/2.0/UDP top;branch=z9hG4bK0")
    assert [n for n, _ in h][:3] == ["Via", "Via", "Via"]
    assert h.values("Via")[0] == "SIP/2.0/UDP top;branch=z9hG4bK0"
    h.prepend("Route", "<sip:p1;lr>")
    assert next(iter(h)) == ("Route", "<sip:p1;lr>")  # no Route yet: goes to the top
    h.set("x-thing", "only")
    assert h.get_all("X-Thing") == ["only"]
    assert [n for n, _ in h].index("x-thing") == 5  # where the first one stood, as written
    h.set("Max-Forwards", 70)
    assert list(h)[-1] == ("Max-Forwards", "70")
    assert h.remove("via") == 3 and "Via" not in h
    assert h.remove("via") == 0
    h.add("Subject", "hi")
    assert list(h)[-1] == ("Subject", "hi")


def test_pop_first_value() -> None:
    h = sample()
    assert h.pop_first_value("Via") == "SIP/2.0/UDP a;branch=z9hG4bK1"
    assert h.get_all("Via") == ["SIP/2.0/UDP b;branch=z9hG4bK2", "SIP/2.0/UDP c;branch=z9hG4bK3"]
    assert h.pop_first_value("Via") == "SIP/2.0/UDP b;branch=z9hG4bK2"
    assert h.pop_first_value("Via") == "SIP/2.0/UDP c;branch=z9hG4bK3"
    assert h.pop_first_value("Via") is None


def test_typed_views_are_cached_and_dropped_on_change() -> None:
    h = sample()
    first = h.typed("via", parse_via_list)
    assert first is not None and len(first) == 3
    assert h.typed("via", parse_via_list) is first
    h.pop_first_value("Via")
    again = h.typed("via", parse_via_list)
    assert again is not None and [v.host for v in again] == ["b", "c"]
    assert h.typed("route", parse_address_list) is None


def test_copy_is_independent_and_equality_ignores_spelling() -> None:
    h = sample()
    c = h.copy()
    assert c == h
    c.add("Subject", "x")
    assert c != h and "Subject" not in h
    compact = Headers.of([("v", "SIP/2.0/UDP a"), ("t", "<sip:b@c>")])
    long = Headers.of([("Via", "SIP/2.0/UDP a"), ("To", "<sip:b@c>")])
    assert compact == long
    assert Headers.of([("To", "<sip:b@c>"), ("Via", "SIP/2.0/UDP a")]) != long  # order counts


def test_headers_of_typed_values() -> None:
    to = Address(parse_uri("sip:bob@example.com"), '"Bob"', (("tag", "x"),))
    h = Headers.of([("To", to), ("CSeq", CSeq(2, "BYE"))])
    assert h.get("To") == '"Bob" <sip:bob@example.com>;tag=x'
    assert h.get("CSeq") == "2 BYE"


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("prepend"), st.integers(1, 9)),
            st.tuples(st.just("pop"), st.sampled_from(["Via", "Route"])),
            st.tuples(st.just("read"), st.just(0)),
        ),
        max_size=12,
    )
)
def test_parsed_via_and_route_views_follow_prepends_and_pops(ops: list[tuple[str, object]]) -> None:
    """A proxy prepends and pops Via and Route values; the parsed views it reads between
    (kept up to date instead of re-parsed) always equal a fresh parse of the lines."""
    h = Headers.of([
        ("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa, SIP/2.0/TCP 10.0.0.2;branch=z9hG4bKb"),
        ("Via", "SIP/2.0/UDP 10.0.0.3;branch=z9hG4bKc"),
        ("Route", "<sip:p1.example.com;lr>, <sip:p2.example.com;lr>"),
        ("Route", "<sip:p3.example.com;lr>"),
    ])  # fmt: skip
    for op, arg in ops:
        if op == "prepend":
            h.prepend("Via", f"SIP/2.0/UDP 192.0.2.{arg}:5060;branch=z9hG4bK{arg};rport")
        elif op == "pop":
            h.pop_first_value(str(arg))
        else:
            h.typed("via", parse_via_list)
            h.typed("route", parse_address_list)
        vias = [v for k, _, v in h._items if k == "via"]
        routes = [v for k, _, v in h._items if k == "route"]
        # none left reads as () or None alike (Message.via / .route return ())
        assert (h.typed("via", parse_via_list) or ()) == (parse_via_list(vias) if vias else ())
        assert (h.typed("route", parse_address_list) or ()) == (
            parse_address_list(routes) if routes else ()
        )


_NAMES = ["Via", "v", "Route", "X-Thing", "x-thing", "Subject"]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["add", "prepend", "set", "remove", "pop", "copy"]),
            st.sampled_from(_NAMES),
            st.integers(0, 9),
        ),
        max_size=16,
    )
)
def test_line_operations_match_a_plain_list_model(ops: list[tuple[str, str, int]]) -> None:
    """The scans of the header list (run in C over the list of keys ``Headers`` keeps beside
    its lines, issue 10's performance work) keep the documented behaviour: a plain list of
    (key, value) lines, changed one obvious way, whatever the order of changes and copies."""
    h, model = Headers(), []  # model: [key, value] in order

    def key(name: str) -> str:
        return {"v": "via", "x-thing": "x-thing", "X-Thing": "x-thing"}.get(name, name.lower())

    for op, name, n in ops:
        k, value = key(name), f"SIP/2.0/UDP h{n}" if key(name) == "via" else f"<sip:h{n}>"
        keys = [mk for mk, _ in model]
        if op == "add":
            h.add(name, value)
            model.append((k, value))
        elif op == "prepend":
            h.prepend(name, value)
            model.insert(keys.index(k) if k in keys else 0, (k, value))
        elif op == "set":
            h.set(name, value)
            at = keys.index(k) if k in keys else len(model)
            model = [line for line in model if line[0] != k]
            model.insert(min(at, len(model)), (k, value))
        elif op == "remove":
            assert h.remove(name) == keys.count(k)
            model = [line for line in model if line[0] != k]
        elif op == "pop":
            assert h.pop_first_value(name) == (model.pop(keys.index(k))[1] if k in keys else None)
        else:
            h = h.copy()
        assert h._keys == [mk for mk, _, _ in h._items]
        for probe in _NAMES:
            pk = key(probe)
            assert h.get_all(probe) == [v for mk, v in model if mk == pk]
            assert h.count(probe) == [mk for mk, _ in model].count(pk)
            assert (probe in h) == any(mk == pk for mk, _ in model)
            assert h.get(probe) == next((v for mk, v in model if mk == pk), None)
        assert [v for _, v in h] == [v for _, v in model]
