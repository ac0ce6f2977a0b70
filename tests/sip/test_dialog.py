"""Dialogs (RFC 3261 §12): creation on both sides, in-dialog requests and routing
(§12.2.1.1 loose and strict routers), CSeq ordering (§12.2.2), target refresh (RFC 6141
§4) and the dialog table."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridvoice.sip import Request, Response, make_response, parse_address, parse_message
from hybridvoice.sip.dialog import (
    Dialog,
    DialogError,
    DialogId,
    DialogState,
    DialogTable,
)
from hybridvoice.sip.uri import parse_uri

# RFC 3665 §3.1 style: Alice's INVITE as it leaves her UA, and as Bob receives it after
# two record-routing proxies.
ALICE_INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 2 INVITE\r\n"
    b"Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\r\n"
    b'Authorization: Digest username="alice", realm="atlanta.example.com"\r\n'
    b"Content-Length: 0\r\n\r\n"
)
BOB_RECEIVES = (
    b"INVITE sip:bob@client.biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP ss2.biloxi.example.com:5060;branch=z9hG4bK721e4.1\r\n"
    b"Via: SIP/2.0/TCP ss1.atlanta.example.com:5060;branch=z9hG4bK2d4790.1\r\n"
    b"Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\n"
    b"Max-Forwards: 68\r\n"
    b"Record-Route: <sip:ss2.biloxi.example.com;lr>\r\n"
    b"Record-Route: <sip:ss1.atlanta.example.com;lr>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 2 INVITE\r\n"
    b"Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\r\n"
    b"Content-Length: 0\r\n\r\n"
)
BOB_CONTACT = parse_address("<sip:bob@client.biloxi.example.com;transport=tcp>")


def request(data: bytes) -> Request:
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def bob_response(status: int, tag: str | None = "314159") -> Response:
    """Bob's response as Alice receives it: Record-Route copied, Bob's Contact."""
    response = make_response(request(BOB_RECEIVES), status, to_tag=tag)
    if status > 100:
        response.headers.add("Contact", BOB_CONTACT)
    wire = parse_message(bytes(response))
    assert isinstance(wire, Response)
    return wire


def uac_dialog(status: int = 200) -> Dialog:
    return Dialog.from_uac(request(ALICE_INVITE), bob_response(status))


def uas_dialog() -> Dialog:
    return Dialog.from_uas(request(BOB_RECEIVES), "314159", BOB_CONTACT)


def wire(message: Request) -> Request:
    """Through bytes and the parser, as the peer would see it."""
    return request(bytes(message))


# --- creation (§12.1) ------------------------------------------------------------------------
def test_uac_dialog_from_2xx_reverses_record_route() -> None:
    dialog = uac_dialog(200)
    assert dialog.state is DialogState.CONFIRMED
    assert dialog.id == DialogId("3848276298220188511@atlanta.example.com", "9fxced76sl", "314159")
    assert [str(r) for r in dialog.route_set] == [
        "<sip:ss1.atlanta.example.com;lr>",
        "<sip:ss2.biloxi.example.com;lr>",
    ]
    assert str(dialog.remote_target) == "sip:bob@client.biloxi.example.com;transport=tcp"
    assert (dialog.local_seq, dialog.remote_seq, dialog.invite_seq) == (2, None, 2)
    assert str(dialog.local_uri) == "sip:alice@atlanta.example.com"
    assert str(dialog.remote_address) == "Bob <sip:bob@biloxi.example.com>;tag=314159"
    assert not dialog.secure


def test_uac_early_dialog_from_1xx_with_tag() -> None:
    assert uac_dialog(180).state is DialogState.EARLY


@pytest.mark.parametrize(("status", "tag"), [(100, None), (180, None), (486, "x")])
def test_responses_that_create_no_dialog(status: int, tag: str | None) -> None:
    with pytest.raises(DialogError):
        Dialog.from_uac(request(ALICE_INVITE), bob_response(status, tag))


def test_2xx_without_to_tag_has_a_null_remote_tag() -> None:
    """§12.1.2: backward compatibility with RFC 2543 peers."""
    dialog = Dialog.from_uac(request(ALICE_INVITE), bob_response(200, None))
    assert dialog.id.remote_tag == ""


def test_uas_dialog_keeps_record_route_in_order() -> None:
    dialog = uas_dialog()
    assert dialog.state is DialogState.EARLY
    assert dialog.id == DialogId("3848276298220188511@atlanta.example.com", "314159", "9fxced76sl")
    assert [str(r) for r in dialog.route_set] == [
        "<sip:ss2.biloxi.example.com;lr>",
        "<sip:ss1.atlanta.example.com;lr>",
    ]
    assert str(dialog.remote_target) == "sip:alice@client.atlanta.example.com;transport=tcp"
    assert (dialog.local_seq, dialog.remote_seq) == (None, 2)
    assert dialog.local_address.tag == "314159"


def test_sips_request_uri_makes_a_secure_dialog() -> None:
    data = BOB_RECEIVES.replace(b"INVITE sip:bob@client", b"INVITE sips:bob@client")
    assert Dialog.from_uas(request(data), "t", BOB_CONTACT).secure


def test_request_without_contact_or_from_tag_cannot_form_a_dialog() -> None:
    no_contact = BOB_RECEIVES.replace(
        b"Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\r\n", b""
    )
    with pytest.raises(DialogError):
        Dialog.from_uas(request(no_contact), "t", BOB_CONTACT)
    with pytest.raises(DialogError):
        Dialog.from_uas(request(BOB_RECEIVES.replace(b";tag=9fxced76sl", b"")), "t", BOB_CONTACT)


# --- requests within the dialog (§12.2.1.1) ------------------------------------------------------
def test_bye_from_uac_follows_the_route_set() -> None:
    dialog = uac_dialog()
    bye = dialog.create_request("BYE")
    assert bytes(bye) == (
        b"BYE sip:bob@client.biloxi.example.com;transport=tcp SIP/2.0\r\n"
        b"Route: <sip:ss1.atlanta.example.com;lr>\r\n"
        b"Route: <sip:ss2.biloxi.example.com;lr>\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
        b"To: Bob <sip:bob@biloxi.example.com>;tag=314159\r\n"
        b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
        b"CSeq: 3 BYE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert bye.top_via is None  # the endpoint adds it


def test_cseq_increments_but_ack_and_cancel_reuse_the_invite_number() -> None:
    dialog = uac_dialog()
    reinvite = dialog.create_request("INVITE", body=b"v=0\r\n", content_type="application/sdp")
    assert reinvite.cseq is not None and reinvite.cseq.seq == 3
    assert reinvite.contact == (
        parse_address("<sip:alice@client.atlanta.example.com;transport=tcp>"),
    )
    assert reinvite.content_type == "application/sdp" and reinvite.content_length == 5
    assert str(dialog.create_request("CANCEL").cseq) == "3 CANCEL"
    assert str(dialog.create_request("ACK").cseq) == "3 ACK"
    assert str(dialog.create_request("UPDATE").cseq) == "4 UPDATE"
    assert dialog.local_seq == 4


def test_uas_first_request_starts_its_own_sequence() -> None:
    dialog = uas_dialog()
    bye = dialog.create_request("BYE")
    assert str(bye.cseq) == "1 BYE"
    assert bye.from_ is not None and bye.from_.tag == "314159"
    assert bye.to is not None and bye.to.tag == "9fxced76sl"
    assert [str(r) for r in bye.route] == [
        "<sip:ss2.biloxi.example.com;lr>",
        "<sip:ss1.atlanta.example.com;lr>",
    ]
    assert str(bye.uri) == "sip:alice@client.atlanta.example.com;transport=tcp"
    with pytest.raises(DialogError):
        dialog.create_request("ACK")  # the UAS sent no INVITE


def test_no_route_set_targets_the_remote_target_directly() -> None:
    dialog = Dialog.from_uas(request(ALICE_INVITE), "t", BOB_CONTACT)
    bye = dialog.create_request("BYE")
    assert "Route" not in bye.headers
    assert str(bye.uri) == "sip:alice@client.atlanta.example.com;transport=tcp"


def routed(route_set: list[str], target: str = "sip:user@remoteua") -> Dialog:
    dialog = uac_dialog()
    dialog.route_set = tuple(parse_address(r) for r in route_set)
    dialog.remote_target = parse_uri(target)
    return dialog


def test_strict_router_example_of_section_12_2_1_1() -> None:
    """The RFC's example: the first route lacks ;lr, so it becomes the Request-URI and
    the remote target is appended as the last Route."""
    bye = routed(["<sip:proxy1>", "<sip:proxy2>", "<sip:proxy3;lr>", "<sip:proxy4>"])
    request_ = bye.create_request("BYE")
    assert bytes(request_).startswith(b"BYE sip:proxy1 SIP/2.0\r\n")
    assert request_.headers.get_all("Route") == [
        "<sip:proxy2>",
        "<sip:proxy3;lr>",
        "<sip:proxy4>",
        "<sip:user@remoteua>",
    ]


def test_loose_router_keeps_the_remote_target_as_request_uri() -> None:
    request_ = routed(["<sip:proxy1;lr>", "<sip:proxy2>"]).create_request("INFO")
    assert str(request_.uri) == "sip:user@remoteua"
    assert request_.headers.get_all("Route") == ["<sip:proxy1;lr>", "<sip:proxy2>"]


def test_strict_route_uri_loses_what_a_request_uri_cannot_carry() -> None:
    request_ = routed(["<sip:proxy1;method=INVITE;transport=udp?Subject=x>"]).create_request("BYE")
    assert str(request_.uri) == "sip:proxy1;transport=udp"
    assert request_.headers.get_all("Route") == ["<sip:user@remoteua>"]


def test_ack_for_2xx_carries_the_invite_cseq_and_credentials() -> None:
    dialog = uac_dialog()
    dialog.create_request("BYE")
    ack = dialog.create_ack(
        2,
        body=b"v=0\r\n",
        content_type="application/sdp",
        headers=[("Authorization", 'Digest username="alice"')],
    )
    assert (ack.method, str(ack.cseq), ack.body) == ("ACK", "2 ACK", b"v=0\r\n")
    assert ack.headers.get("Authorization") == 'Digest username="alice"'
    assert "Contact" not in ack.headers
    assert len(ack.route) == 2


def test_terminated_dialog_sends_nothing() -> None:
    dialog = uac_dialog()
    dialog.terminate()
    with pytest.raises(DialogError):
        dialog.create_request("BYE")


# --- what the dialog receives (§12.2.2, §12.2.1.2) ------------------------------------------------
def in_dialog(method: str, seq: int, contact: str | None = None) -> Request:
    """A request from Alice in the dialog, as Bob receives it."""
    dialog = uac_dialog()
    dialog.local_seq = seq - 1
    message = dialog.create_request(method)
    if contact is not None:
        message.headers.set("Contact", contact)
    return wire(message)


def test_lower_cseq_is_rejected_with_500() -> None:
    dialog = uas_dialog()
    assert dialog.receive_request(in_dialog("INFO", 5)) is None
    assert dialog.remote_seq == 5
    assert dialog.receive_request(in_dialog("INFO", 5)) is None  # equal is not out of order
    error = dialog.receive_request(in_dialog("INFO", 4))
    assert error is not None and error.status == 500
    assert error.to is not None and error.to.tag == "314159"
    assert dialog.remote_seq == 5


def test_ack_and_cancel_are_not_ordered() -> None:
    dialog = uas_dialog()
    dialog.receive_request(in_dialog("UPDATE", 9))
    assert dialog.receive_request(in_dialog("ACK", 3)) is None
    assert dialog.remote_seq == 9


def test_empty_remote_sequence_accepts_any_number() -> None:
    dialog = uac_dialog()
    bye = wire(uas_dialog().create_request("BYE"))
    assert dialog.receive_request(bye) is None
    assert dialog.remote_seq == 1


def test_reinvite_refreshes_the_target_when_the_2xx_is_sent() -> None:
    """RFC 6141 §4: a re-INVITE's new Contact applies once it succeeds."""
    dialog = uas_dialog()
    dialog.state = DialogState.CONFIRMED
    reinvite = in_dialog("INVITE", 3, "<sip:alice@new.atlanta.example.com>")
    assert dialog.receive_request(reinvite) is None
    assert str(dialog.remote_target) == "sip:alice@client.atlanta.example.com;transport=tcp"
    dialog.create_response(reinvite, 488)
    assert str(dialog.remote_target) == "sip:alice@client.atlanta.example.com;transport=tcp"
    ok = dialog.create_response(reinvite, 200)
    assert str(dialog.remote_target) == "sip:alice@new.atlanta.example.com"
    assert ok.contact == (BOB_CONTACT,)


def test_notify_refreshes_the_target_on_receipt() -> None:
    dialog = uas_dialog()
    dialog.receive_request(in_dialog("NOTIFY", 3, "<sip:alice@moved.example.com>"))
    assert str(dialog.remote_target) == "sip:alice@moved.example.com"


def test_uas_2xx_confirms_the_early_dialog() -> None:
    dialog = uas_dialog()
    ringing = dialog.create_response(request(BOB_RECEIVES), 180)
    assert ringing.to is not None and ringing.to.tag == "314159"
    assert len(ringing.record_route) == 2 and ringing.contact == (BOB_CONTACT,)
    dialog.create_response(request(BOB_RECEIVES), 200)
    assert dialog.state is DialogState.CONFIRMED
    bye_ok = dialog.create_response(in_dialog("BYE", 3), 200)
    assert "Contact" not in bye_ok.headers


def test_2xx_confirms_an_early_uac_dialog_and_recomputes_its_routes() -> None:
    dialog = uac_dialog(180)
    ok = bob_response(200)
    ok.headers.remove("Record-Route")
    ok.headers.add("Record-Route", "<sip:only.example.com;lr>")
    ok.headers.set("Contact", "<sip:bob@elsewhere.example.com>")
    dialog.receive_response(ok)
    assert dialog.state is DialogState.CONFIRMED
    assert [str(r) for r in dialog.route_set] == ["<sip:only.example.com;lr>"]
    assert str(dialog.remote_target) == "sip:bob@elsewhere.example.com"


def test_2xx_to_reinvite_refreshes_the_target_but_2xx_to_bye_does_not() -> None:
    dialog = uac_dialog()
    bye_ok = make_response(dialog.create_request("BYE"), 200)
    bye_ok.headers.add("Contact", "<sip:bob@bye.example.com>")
    dialog.receive_response(bye_ok)
    assert str(dialog.remote_target) == "sip:bob@client.biloxi.example.com;transport=tcp"
    ok = make_response(dialog.create_request("INVITE"), 200)
    ok.headers.add("Contact", "<sip:bob@moved.example.com>")
    dialog.receive_response(ok)
    assert str(dialog.remote_target) == "sip:bob@moved.example.com"


@pytest.mark.parametrize("status", [408, 481])
def test_408_and_481_terminate_the_dialog(status: int) -> None:
    dialog = uac_dialog()
    dialog.receive_response(make_response(dialog.create_request("INFO"), status))
    assert dialog.state is DialogState.TERMINATED


def test_failed_initial_invite_terminates_the_early_dialog() -> None:
    dialog = uac_dialog(180)
    dialog.receive_response(bob_response(486))
    assert dialog.state is DialogState.TERMINATED


# --- the table --------------------------------------------------------------------------------
def test_table_matches_requests_and_responses_from_both_sides() -> None:
    alice, bob = uac_dialog(), uas_dialog()
    table: DialogTable[str] = DialogTable()
    table.add(alice.id, "alice")
    table.add(bob.id, "bob")
    assert len(table) == 2 and alice.id in table and set(table) == {alice.id, bob.id}
    bye_to_bob = wire(alice.create_request("BYE"))
    assert table.match_request(bye_to_bob) == "bob"
    assert table.match_response(make_response(bye_to_bob, 200)) == "alice"
    bye_to_alice = wire(bob.create_request("BYE"))
    assert table.match_request(bye_to_alice) == "alice"
    assert table.match_response(make_response(bye_to_alice, 200)) == "bob"
    assert table.match_request(request(ALICE_INVITE)) is None  # no To tag: not in a dialog
    assert table.remove(bob.id) == "bob" and table.remove(bob.id) is None
    assert table.match_request(bye_to_bob) is None and len(table) == 1


def test_table_groups_the_forks_of_one_invite() -> None:
    invite = request(ALICE_INVITE)
    table: DialogTable[Dialog] = DialogTable()
    forks = [Dialog.from_uac(invite, bob_response(180, tag)) for tag in ("b1", "b2")]
    for fork in forks:
        table.add(fork.id, fork)
    assert table.dialog_set(forks[0].id.call_id, "9fxced76sl") == {"b1": forks[0], "b2": forks[1]}
    late_2xx = bob_response(200, "b3")
    assert table.match_response(late_2xx) is None  # a new fork: found through its dialog set
    assert DialogId.of_response(late_2xx) == DialogId(forks[0].id.call_id, "9fxced76sl", "b3")


def test_dialog_id_is_a_hashable_value() -> None:
    a = DialogId("c", "l", "r")
    assert a == DialogId("c", "l", "r") and len({a, DialogId("c", "l", "r")}) == 1
    with pytest.raises(AttributeError):
        a.call_id = "x"  # type: ignore[misc]


tags = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~", min_size=1, max_size=16)


@given(local=tags, remote=tags, methods=st.lists(st.sampled_from(["INFO", "UPDATE", "BYE"])))
def test_requests_of_either_side_match_the_peer_dialog(
    local: str, remote: str, methods: list[str]
) -> None:
    """Whatever the tags, what one side builds the other side's ID matches, in order."""
    invite = request(ALICE_INVITE.replace(b"9fxced76sl", local.encode()))
    uas = Dialog.from_uas(invite, remote, BOB_CONTACT)
    uac = Dialog.from_uac(invite, wire_response(make_response(invite, 200, to_tag=remote)))
    for method in methods:
        sent = wire(uac.create_request(method))
        assert DialogId.of_received_request(sent) == uas.id
        assert uas.receive_request(sent) is None
        assert DialogId.of_response(make_response(sent, 200)) == uac.id
        back = wire(uas.create_request(method))
        assert DialogId.of_received_request(back) == uac.id
        assert uac.receive_request(back) is None


def wire_response(response: Response) -> Response:
    response.headers.add("Contact", BOB_CONTACT)
    message = parse_message(bytes(response))
    assert isinstance(message, Response)
    return message
