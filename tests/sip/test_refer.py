"""REFER, its implicit subscription and Replaces, sans-IO (RFC 3515 §2.1/§2.4, RFC 3420,
RFC 3891 §3/§6.1, RFC 3892, RFC 4488): header parsing and building, sipfrag bodies, the
``ReferState`` of a dialog, and REFER/NOTIFY in an ``InviteSession`` over ``session_harness``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from session_harness import Net, statuses

from hybridvoice.sip import Headers, ParseError, Request, parse_address, parse_message, parse_uri
from hybridvoice.sip.dialog import DialogId, DialogTable
from hybridvoice.sip.headers import CSeq
from hybridvoice.sip.refer import (
    SIPFRAG,
    ReferError,
    ReferTo,
    Replaces,
    match_replaces,
    notify_headers,
    parse_refer_to,
    parse_replaces,
    parse_sipfrag,
    referred_by,
    replaces_of,
    sipfrag,
    wants_subscription,
)
from hybridvoice.sip.session import Refer, ReferNotify, ReferResult, State

TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~", min_size=1, max_size=20)


def request(method: str, *headers: tuple[str, str], body: bytes = b"") -> Request:
    h = Headers()
    h.add("From", "<sip:alice@example.com>;tag=a1")
    h.add("To", "<sip:bob@example.com>;tag=b1")
    h.add("Call-ID", "c1@example.com")
    h.add("CSeq", CSeq(5, method))
    for name, value in headers:
        h.add(name, value)
    message = Request(method, parse_uri("sip:bob@example.com"), h)
    message.set_body(body, SIPFRAG if body else None)
    return message


# --- Replaces ----------------------------------------------------------------------------------
def test_replaces_parse_rfc3891_example() -> None:
    text = "425928@bobster.example.org;to-tag=7743;from-tag=6472"
    replaces = parse_replaces(text)
    assert replaces == Replaces("425928@bobster.example.org", "7743", "6472")
    assert str(replaces) == text
    assert parse_replaces(text + ";early-only").early_only
    assert replaces.dialog_id == DialogId("425928@bobster.example.org", "7743", "6472")


@pytest.mark.parametrize("bad", ["", "x@y;to-tag=1", "x@y;from-tag=1", ";to-tag=1;from-tag=2"])
def test_replaces_missing_parts(bad: str) -> None:
    with pytest.raises(ParseError):
        parse_replaces(bad)


@given(TOKEN, TOKEN, TOKEN, st.booleans())
def test_replaces_round_trip(call_id: str, to_tag: str, from_tag: str, early: bool) -> None:
    replaces = Replaces(call_id, to_tag, from_tag, early)
    assert parse_replaces(str(replaces)) == replaces
    # escaped in a Refer-To URI and back (RFC 3891 §6)
    refer = request(
        "REFER", ("Refer-To", str(ReferTo(parse_address("<sip:c@x>"), replaces).address()))
    )
    assert parse_refer_to(refer) == ReferTo(parse_address("<sip:c@x>"), replaces)


def test_replaces_matched_from_the_recipients_side() -> None:
    table: DialogTable[str] = DialogTable()
    ours = DialogId("c1", "local", "remote")
    table.add(ours, "the call")
    # the peer in that dialog names it with its own tags swapped
    assert match_replaces(table, Replaces("c1", "local", "remote")) == "the call"
    assert match_replaces(table, Replaces("c1", "remote", "local")) is None
    assert Replaces.of_dialog(DialogId("c1", "remote", "local")).dialog_id == ours


def test_replaces_header_of_an_invite() -> None:
    invite = request("INVITE", ("Replaces", "c9;to-tag=1;from-tag=2"))
    assert replaces_of(invite) == Replaces("c9", "1", "2")
    assert replaces_of(request("INVITE")) is None
    twice = request(
        "INVITE", ("Replaces", "a;to-tag=1;from-tag=2"), ("Replaces", "b;to-tag=1;from-tag=2")
    )
    with pytest.raises(ParseError):
        replaces_of(twice)


# --- Refer-To, Referred-By, Refer-Sub -------------------------------------------------------
def test_refer_to_with_escaped_replaces_rfc3891_example() -> None:
    value = (
        "<sips:bob@bobster.example.org?Replaces=12345%40192.168.118.3%3B"
        "to-tag%3D12345%3Bfrom-tag%3D5FFE-3994>"
    )
    refer_to = parse_refer_to(request("REFER", ("Refer-To", value)))
    assert str(refer_to.target.uri) == "sips:bob@bobster.example.org"
    assert refer_to.replaces == Replaces("12345@192.168.118.3", "12345", "5FFE-3994")


def test_refer_to_must_be_single() -> None:
    with pytest.raises(ParseError):
        parse_refer_to(request("REFER"))
    with pytest.raises(ParseError):
        parse_refer_to(request("REFER", ("Refer-To", "<sip:a@x>"), ("Refer-To", "<sip:b@x>")))


def test_referred_by_and_refer_sub() -> None:
    refer = request("REFER", ("Referred-By", "<sip:alice@example.com>"), ("Refer-Sub", "false"))
    found = referred_by(refer)
    assert found is not None and str(found.uri) == "sip:alice@example.com"
    assert not wants_subscription(refer)
    assert wants_subscription(request("REFER")) and referred_by(request("REFER")) is None


# --- sipfrag and the NOTIFY ---------------------------------------------------------------
@pytest.mark.parametrize("status", [100, 180, 200, 486, 503, 603])
def test_sipfrag_round_trip(status: int) -> None:
    assert parse_sipfrag(sipfrag(status)) == status
    assert sipfrag(status).startswith(b"SIP/2.0 ")


def test_sipfrag_with_headers_and_bad_ones() -> None:
    assert parse_sipfrag(b"SIP/2.0 603 Declined\r\nContent-Length: 0\r\n") == 603
    with pytest.raises(ParseError):
        parse_sipfrag(b"INVITE sip:x SIP/2.0\r\n")


def test_notify_headers() -> None:
    assert notify_headers(7, False) == [
        ("Event", "refer;id=7"),
        ("Subscription-State", "active;expires=60"),
    ]
    assert notify_headers(7, True)[1] == ("Subscription-State", "terminated;reason=noresource")


# --- REFER in an INVITE session -----------------------------------------------------------
def refer_call() -> tuple[Net, Refer]:
    net = Net()
    uas = net.answered_call()
    net.uac.refer(
        ReferTo(parse_address("<sip:carol@example.com>")),
        referred_by=parse_address("<sip:alice@example.com>"),
    )
    net.pump()
    (event,) = [e for e in net.app["b"] if isinstance(e, Refer)]
    assert uas.state is State.CONFIRMED
    return net, event


def test_session_refer_accepted_and_notified() -> None:
    net, event = refer_call()
    assert str(event.refer_to.uri) == "sip:carol@example.com" and event.replaces is None
    uas = net.uases["b"]
    uas.accept_refer()
    net.pump()
    assert "202 REFER" in statuses(net, "b")
    ((_, notify),) = net.requests("b", "NOTIFY")
    refer_cseq = net.requests("uac", "REFER")[0][1].cseq
    assert refer_cseq is not None
    assert notify.headers.get("Event") == f"refer;id={refer_cseq.seq}"
    assert notify.headers.get("Content-Type") == SIPFRAG
    assert notify.body.startswith(b"SIP/2.0 100")
    uas.notify_refer(200)
    net.pump()
    uac_events = [e for e in net.app["uac"] if isinstance(e, ReferResult | ReferNotify)]
    assert uac_events == [ReferResult(202), ReferNotify(100, False), ReferNotify(200, True)]
    assert statuses(net, "uac").count("200 NOTIFY") == 2
    with pytest.raises(ReferError):
        uas.notify_refer(200)  # the subscription is over


def test_session_refer_rejected_and_a_second_one_while_pending() -> None:
    net, _ = refer_call()
    uas = net.uases["b"]
    # a second REFER from the same side while one is in progress is refused locally
    with pytest.raises(ReferError):
        net.uac.refer(ReferTo(parse_address("<sip:dave@example.com>")))
    uas.reject_refer(603)
    net.pump()
    assert [e for e in net.app["uac"] if isinstance(e, ReferResult)] == [ReferResult(603)]
    with pytest.raises(ReferError):
        uas.accept_refer()  # nothing left to answer


def test_session_notify_without_subscription_gets_481() -> None:
    net = Net()
    net.answered_call()
    uas = net.uases["b"]
    assert uas.dialog is not None
    notify = uas.dialog.create_request(
        "NOTIFY", headers=notify_headers(1, True), body=sipfrag(200), content_type=SIPFRAG
    )
    net.send_request("b", notify)
    net.pump()
    assert statuses(net, "uac")[-1] == "481 NOTIFY"


def test_refer_before_the_session_is_confirmed_is_refused() -> None:
    net = Net()
    uas = net.add_uas("b")
    with pytest.raises(ReferError.__mro__[1]):  # LocalProtocolError
        uas.refer(ReferTo(parse_address("<sip:carol@example.com>")))


def test_peer_allow_is_recorded() -> None:
    net = Net()
    uas = net.answered_call()
    assert {"REFER", "NOTIFY", "INVITE"} <= uas.peer_allow
    assert {"REFER", "NOTIFY"} <= net.uac.peer_allow


def test_refer_wire_format_parses() -> None:
    net, _ = refer_call()
    ((_, refer),) = net.requests("uac", "REFER")
    wire = parse_message(bytes(refer))
    assert isinstance(wire, Request)
    assert wire.headers.get("Refer-To") == "<sip:carol@example.com>"
    assert wire.headers.get("Referred-By") == "<sip:alice@example.com>"
    assert wire.contact  # REFER is a target refresh request (RFC 3515 §2.4.1)
