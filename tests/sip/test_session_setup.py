"""INVITE session setup (RFC 3261 §13): calls, early media, offers in the 2xx, rejection,
CANCEL (§9), forking (§12.1.2, §13.2.2.4) and the 2xx retransmission (§13.3.1.4), over
the in-memory ``session_harness``."""

from __future__ import annotations

import pytest
from session_harness import (
    ANSWER,
    HOLD,
    OFFER,
    Net,
    last,
    make_invite,
    statuses,
)

from hybridvoice.sip import LocalProtocolError, Request, Response, make_response
from hybridvoice.sip.dialog import DialogState, DialogTable
from hybridvoice.sip.session import (
    TRANSITIONS,
    Answered,
    Cause,
    Confirmed,
    Disconnected,
    EarlyMedia,
    InviteSession,
    Offer,
    Ringing,
    SendRequest,
    SendResponse,
    SessionConfig,
    State,
)


# --- the state table, configurations, events and unusable INVITEs --------------------------------
def test_every_state_is_in_the_table_and_only_disconnected_is_final() -> None:
    assert set(TRANSITIONS) == set(State)
    assert [s for s, moves in TRANSITIONS.items() if not moves] == [State.DISCONNECTED]


def test_illegal_calls_raise() -> None:
    net = Net()
    uas = net.add_uas("b")
    with pytest.raises(LocalProtocolError):
        net.uac.answer(ANSWER, 0.0)  # only the called side answers
    with pytest.raises(LocalProtocolError):
        uas.cancel()
    with pytest.raises(LocalProtocolError):
        uas.reinvite(HOLD)  # not confirmed yet
    uas.answer(ANSWER, 0.0)
    with pytest.raises(LocalProtocolError):
        uas.ring()
    with pytest.raises(LocalProtocolError):
        uas.reject(486)
    with pytest.raises(LocalProtocolError):
        uas.accept_offer(ANSWER, 0.0)  # no offer pending


@pytest.mark.parametrize(
    "config",
    [
        {"t1": 0.0},
        {"t1": 5.0, "t2": 4.0},
        {"min_se": 60},
        {"session_expires": 100, "min_se": 120},
    ],
)
def test_bad_configs_are_refused(config: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SessionConfig(**config)  # type: ignore[arg-type]


def test_events_validate_themselves() -> None:
    with pytest.raises(ValueError):
        Disconnected(Cause.NORMAL, None, "nobody")  # type: ignore[arg-type]
    invite = make_invite()
    bye = make_invite().copy()
    bye.method = "BYE"
    with pytest.raises(LocalProtocolError):
        SendResponse(make_response(invite, 200), bye)


def test_unusable_invites() -> None:
    with pytest.raises(LocalProtocolError):
        InviteSession.outgoing(make_invite(extra=b"").copy().__class__("BYE", make_invite().uri))
    with_tag = make_invite()
    with_tag.headers.set("To", "<sip:bob@biloxi.example.com>;tag=x")
    with pytest.raises(LocalProtocolError):
        InviteSession.outgoing(with_tag)
    with pytest.raises(LocalProtocolError):
        InviteSession.incoming(with_tag, "b", "<sip:bob@b.example.com>")
    no_contact = make_invite()
    no_contact.headers.remove("Contact")
    uas = InviteSession.incoming(no_contact, "b", "<sip:bob@b.example.com>")
    events = uas.events()
    assert isinstance(events[0], SendResponse) and events[0].response.status == 400
    assert events[1] == Disconnected(Cause.REJECTED, 400, "local")


# --- basic calls, early media, offers in the 2xx -------------------------------------------------
def test_basic_call_and_bye_from_the_caller() -> None:
    net = Net()
    uas = net.add_uas("b")
    assert net.invite.body == OFFER and (uas.state,) == (State.INCOMING,)
    uas.ring()
    net.pump()
    assert net.app["uac"] == [Ringing(None)]
    assert (net.uac.state, uas.state) == (State.EARLY, State.EARLY)
    uas.answer(ANSWER, net.now)
    net.pump()
    assert net.app["uac"][1:] == [Answered(ANSWER)]
    assert net.app["b"] == [Confirmed(None)]
    assert net.uac.state is uas.state is State.CONFIRMED
    assert net.uac.dialog is not None and net.uac.dialog.state is DialogState.CONFIRMED
    assert [m.method for _, _, m in net.log if isinstance(m, Request)] == ["INVITE", "ACK"]
    ack = net.requests("uac", "ACK")[0][1]
    assert str(ack.cseq) == "1 ACK" and str(ack.uri) == "sip:bob@b.biloxi.example.com"
    assert isinstance(ack, Request)
    uas.receive_request(ack, net.now)  # a retransmitted ACK changes nothing
    assert uas.events() == [] and uas.state is State.CONFIRMED

    net.uac.bye()
    net.pump()
    assert last(net, "uac") == Disconnected(Cause.NORMAL, None, "local")
    assert last(net, "b") == Disconnected(Cause.NORMAL, None, "remote")
    bye = net.requests("uac", "BYE")[0][1]
    assert str(bye.cseq) == "2 BYE"
    assert statuses(net, "b") == ["180 INVITE", "200 INVITE", "200 BYE"]
    assert net.uac.next_deadline() is None and uas.next_deadline() is None


def test_early_media_183_with_sdp() -> None:
    net = Net()
    uas = net.add_uas("b")
    uas.ring(ANSWER, status=183)
    net.pump()
    assert net.app["uac"] == [EarlyMedia(ANSWER)]
    early = net.responses("b", "183 INVITE")[0][1]
    assert early.content_type == "application/sdp" and early.body == ANSWER
    uas.answer(ANSWER, net.now)
    net.pump()
    assert last(net, "uac") == Answered(ANSWER)


def test_late_offer_the_answer_goes_in_the_ack() -> None:
    net = Net(make_invite(b""))
    uas = net.add_uas("b")
    uas.answer(ANSWER, 0.0)  # our 2xx carries the offer
    net.pump()
    assert net.app["uac"] == [Answered(None), Offer(ANSWER)]
    assert net.uac.state is State.CONNECTING and net.requests("uac", "ACK") == []
    net.uac.receive_response(net.responses("b", "200 INVITE")[0][1], net.now)
    assert net.uac.events() == []  # a retransmission waits for the answer too
    net.uac.accept_offer(OFFER, net.now)
    net.pump()
    assert net.requests("uac", "ACK")[0][1].body == OFFER
    assert net.app["b"] == [Confirmed(OFFER)]
    assert net.uac.state is uas.state is State.CONFIRMED


def test_offer_in_a_2xx_cannot_be_rejected_only_acked_and_hung_up() -> None:
    net = Net(make_invite(b""))
    uas = net.add_uas("b")
    uas.answer(ANSWER, 0.0)
    net.pump()
    net.uac.reject_offer()
    net.pump()
    assert [m.method for _, _, m in net.log if isinstance(m, Request)] == ["INVITE", "ACK", "BYE"]
    assert last(net, "uac") == Disconnected(Cause.REJECTED, 488, "local")
    assert uas.state is State.DISCONNECTED


def test_caller_hangs_up_while_an_offer_in_a_2xx_waits_for_its_answer() -> None:
    net = Net(make_invite(b""))
    net.add_uas("b").answer(ANSWER, 0.0)
    net.pump()
    net.uac.bye()
    net.pump()
    assert [m.method for _, _, m in net.log if isinstance(m, Request)] == ["INVITE", "ACK", "BYE"]


# --- rejection, CANCEL (§9), hang-up before the answer -------------------------------------------
def test_486_busy() -> None:
    net = Net()
    uas = net.add_uas("b")
    uas.ring()
    uas.reject(486)
    net.pump()
    assert net.app["uac"] == [Ringing(None), Disconnected(Cause.REJECTED, 486, "remote")]
    assert net.app["b"] == [Disconnected(Cause.REJECTED, 486, "local")]
    assert net.uac.state is uas.state is State.DISCONNECTED
    assert net.uac.early_dialogs[0].state is DialogState.TERMINATED


def test_bad_statuses_and_callee_hangup_before_answer() -> None:
    net = Net()
    uas = net.add_uas("b")
    with pytest.raises(LocalProtocolError):
        uas.ring(status=200)
    with pytest.raises(LocalProtocolError):
        uas.reject(200)
    uas.bye()  # before the answer: 603 Decline
    net.pump()
    assert statuses(net, "b") == ["603 INVITE"]
    assert net.app["uac"] == [Disconnected(Cause.REJECTED, 603, "remote")]


def test_cancel_before_answer_waits_for_a_provisional() -> None:
    net = Net()
    uas = net.add_uas("b")
    net.uac.cancel()
    net.pump()
    assert net.uac.events() == [] and net.requests("uac", "CANCEL") == []
    uas.ring()
    net.pump()  # §9.1: the CANCEL leaves once a provisional arrived
    assert len(net.requests("uac", "CANCEL")) == 1
    assert statuses(net, "b") == ["180 INVITE", "200 CANCEL", "487 INVITE"]
    assert net.app["b"] == [Disconnected(Cause.CANCELLED, 487, "remote")]
    assert last(net, "uac") == Disconnected(Cause.CANCELLED, 487, "local")


def test_caller_hangup_before_answer_is_a_cancel() -> None:
    net = Net()
    uas = net.add_uas("b")
    uas.ring()
    net.pump()
    net.uac.bye()
    net.pump()
    assert net.requests("uac", "BYE") == [] and len(net.requests("uac", "CANCEL")) == 1
    assert uas.state is State.DISCONNECTED


def test_2xx_that_crosses_our_cancel_is_acked_and_hung_up() -> None:
    net = Net()
    uas = net.add_uas("b")
    uas.ring()
    net.pump()
    net.uac.cancel()
    net.drop = lambda m: isinstance(m, Request) and m.method == "CANCEL"
    uas.answer(ANSWER, net.now)
    net.pump()
    assert [m.method for _, _, m in net.log if isinstance(m, Request)] == ["INVITE", "ACK", "BYE"]
    assert last(net, "uac") == Disconnected(Cause.CANCELLED, None, "local")
    assert last(net, "b") == Disconnected(Cause.NORMAL, None, "remote")


def test_invite_timeout_is_a_408() -> None:
    net = Net()
    net.uac.request_timeout(net.uac.invite, 32.0)
    net.pump()
    assert net.app["uac"] == [Disconnected(Cause.TIMEOUT, 408, "remote")]


def test_an_invite_the_transport_could_not_send_ends_with_its_words() -> None:
    """§8.1.3.1: the 408 is our own; ``Disconnected.detail`` says why the transport failed,
    so the layers above (a B2BUA's call record) need not ask the transport."""
    net = Net()
    net.uac.request_timeout(net.uac.invite, 0.5, "TCP connect to 192.0.2.7:5060 failed: refused")
    net.pump()
    assert net.app["uac"] == [
        Disconnected(Cause.TIMEOUT, 408, "remote", "TCP connect to 192.0.2.7:5060 failed: refused")
    ]


def test_cancelled_uas_on_bye_in_early_dialog() -> None:
    """§15.1.2: a BYE in an early dialog ends the INVITE with 487."""
    net = Net()
    uas = net.add_uas("b")
    uas.ring()
    net.pump()
    early = net.uac.early_dialogs[0]
    net.deliver("uac", early.create_request("BYE"), uas)
    net.pump()
    assert statuses(net, "b")[-2:] == ["200 BYE", "487 INVITE"]
    assert net.app["b"] == [Disconnected(Cause.NORMAL, None, "remote")]


def test_bye_in_an_early_dialog_at_the_caller_cancels() -> None:
    net = Net()
    uas = net.add_uas("b")
    uas.ring()
    net.pump()
    dialog = uas.dialog
    assert dialog is not None
    net.deliver("b", dialog.create_request("BYE"), net.uac)
    net.pump()
    assert statuses(net, "uac") == ["200 BYE"] and len(net.requests("uac", "CANCEL")) == 1
    assert last(net, "uac") == Disconnected(Cause.NORMAL, None, "remote")


# --- forking (§12.1.2, §13.2.2.4), routes and lookups --------------------------------------------
def test_forked_early_dialogs_then_a_2xx_from_one_and_a_late_2xx_from_the_other() -> None:
    net = Net()
    b1, b2 = net.add_uas("b1"), net.add_uas("b2")
    b1.ring()
    b2.ring(ANSWER, status=183)
    net.pump()
    b1.ring(ANSWER, status=183)
    net.pump()
    assert [d.id.remote_tag for d in net.uac.early_dialogs] == ["b2", "b1"]  # latest last
    assert net.app["uac"] == [Ringing(None), EarlyMedia(ANSWER), EarlyMedia(ANSWER)]

    b1.answer(ANSWER, net.now)
    net.pump()
    dialog = net.uac.dialog
    assert dialog is not None and dialog.id.remote_tag == "b1"
    assert net.uac.early_dialogs == () and net.uac.state is State.CONFIRMED

    b2.answer(ANSWER, net.now)  # §13.2.2.4: ACK the late 2xx, then BYE
    net.pump()
    to_b2 = [
        (m.method, m.to.tag)
        for _, w, m in net.log
        if w == "uac" and isinstance(m, Request) and m.to
    ]
    assert to_b2 == [("INVITE", None), ("ACK", "b1"), ("ACK", "b2"), ("BYE", "b2")]
    assert net.app["b2"] == [Confirmed(None), Disconnected(Cause.NORMAL, None, "remote")]
    assert last(net, "uac") == Answered(ANSWER)  # one answer only
    assert net.uac.state is State.CONFIRMED and b1.state is State.CONFIRMED

    # a retransmission of the late 2xx is ACKed again, without a second BYE
    late_ok = net.responses("b2", "200 INVITE")[0][1]
    net.uac.receive_response(late_ok, net.now)
    assert [type(e) for e in net.uac.events()] == [SendRequest]
    assert len(net.requests("uac", "BYE")) == 1


def test_sessions_are_found_through_a_dialog_table() -> None:
    net = Net()
    b1, b2 = net.add_uas("b1"), net.add_uas("b2")
    b1.ring()
    b2.ring()
    net.pump()
    uac_side: DialogTable[InviteSession] = DialogTable()
    for dialog_id in net.uac.dialog_ids:
        uac_side.add(dialog_id, net.uac)
    assert len(uac_side) == 2
    uas_side: DialogTable[InviteSession] = DialogTable()
    for uas in (b1, b2):
        uas_side.add(uas.dialog_ids[0], uas)
    ringing = net.responses("b2", "180 INVITE")[0][1]
    assert isinstance(ringing, Response) and uac_side.match_response(ringing) is net.uac
    b1.answer(ANSWER, net.now)
    net.pump()
    ack = net.requests("uac", "ACK")[0][1]
    assert isinstance(ack, Request) and uas_side.match_request(ack) is b1
    assert net.uac.dialog_ids == (net.uac.dialog.id,)  # type: ignore[union-attr]


def test_record_route_through_a_proxy() -> None:
    """The caller's requests follow the reversed Record-Route, the callee's the same
    order (§12.1.1, §12.1.2); with a strict router first, the Request-URI is the router."""
    net = Net(record_route=("<sip:p2.biloxi.example.com;lr>", "<sip:p1.atlanta.example.com>"))
    uas = net.answered_call()
    ack = net.requests("uac", "ACK")[0][1]
    assert str(ack.uri) == "sip:p1.atlanta.example.com"
    assert ack.headers.get_all("Route") == [
        "<sip:p2.biloxi.example.com;lr>",
        "<sip:bob@b.biloxi.example.com>",
    ]
    uas.bye()
    net.pump()
    bye = net.requests("b", "BYE")[0][1]
    assert str(bye.uri) == "sip:alice@client.atlanta.example.com"
    assert bye.headers.get_all("Route") == [
        "<sip:p2.biloxi.example.com;lr>",
        "<sip:p1.atlanta.example.com>",
    ]


# --- 2xx retransmission (§13.3.1.4) --------------------------------------------------------------
def test_2xx_is_retransmitted_until_the_ack_and_every_copy_is_acked() -> None:
    net = Net()
    uas = net.add_uas("b")
    net.drop = lambda m: isinstance(m, Request) and m.method == "ACK"
    uas.answer(ANSWER, 0.0)
    net.pump()
    net.run_until(5.0)
    assert [t for t, _ in net.responses("b", "200 INVITE")] == [0.0, 0.5, 1.5, 3.5]
    assert len(net.uac._acks) == 1  # one ACK, sent again for each copy
    assert uas.next_deadline() == 7.5
    net.drop = lambda m: False
    net.run_until(60.0)
    assert [t for t, _ in net.responses("b", "200 INVITE")][-1] == 7.5  # ACKed at last
    assert uas.state is State.CONFIRMED
    assert net.app["b"] == [Confirmed(None)]


def test_no_ack_after_64_t1_ends_the_call_with_a_bye() -> None:
    net = Net()
    uas = net.add_uas("b")
    net.drop = lambda m: isinstance(m, Request) and m.method == "ACK"
    uas.answer(ANSWER, 0.0)
    net.pump()
    net.run_until(60.0)
    times = [t for t, _ in net.responses("b", "200 INVITE")]
    assert times == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert [t for t, _ in net.requests("b", "BYE")] == [32.0]
    assert net.app["b"] == [Disconnected(Cause.NO_ACK, None, "local")]
    assert last(net, "uac") == Disconnected(Cause.NORMAL, None, "remote")


def test_2xx_retransmission_honours_other_t1_and_t2() -> None:
    net = Net()
    uas = net.add_uas("b", SessionConfig(t1=1.0, t2=2.0))
    net.drop = lambda m: isinstance(m, Request) and m.method == "ACK"
    uas.answer(ANSWER, 0.0)
    net.pump()
    net.run_until(10.0)
    assert [t for t, _ in net.responses("b", "200 INVITE")] == [0.0, 1.0, 3.0, 5.0, 7.0, 9.0]
