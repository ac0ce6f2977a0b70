"""INVITE sessions wired together in memory (UAC <-> one or more UASes), every message
going through bytes and the parser, under a fake clock."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable

import pytest

from hybridvoice.sip import (
    LocalProtocolError,
    Request,
    Response,
    make_cancel,
    make_response,
    parse_message,
)
from hybridvoice.sip.dialog import DialogState, DialogTable
from hybridvoice.sip.session import (
    TRANSITIONS,
    Answered,
    Cause,
    Confirmed,
    Disconnected,
    EarlyMedia,
    Event,
    InviteSession,
    Offer,
    OfferAnswered,
    OfferRejected,
    Ringing,
    SendCancel,
    SendRequest,
    SendResponse,
    SessionConfig,
    State,
)


def sdp(owner: str, direction: str = "sendrecv", version: int = 1) -> bytes:
    return (
        f"v=0\r\no={owner} 1 {version} IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n"
        f"t=0 0\r\nm=audio 49170 RTP/AVP 0\r\na={direction}\r\n"
    ).encode()


OFFER, ANSWER = sdp("alice"), sdp("bob")
HOLD, HELD = sdp("alice", "sendonly", 2), sdp("bob", "recvonly", 2)
RESUME, RESUMED = sdp("alice", "sendrecv", 3), sdp("bob", "sendrecv", 3)


def make_invite(body: bytes = OFFER, extra: bytes = b"") -> Request:
    head = (
        b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
        b"To: Bob <sip:bob@biloxi.example.com>\r\n"
        b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Contact: <sip:alice@client.atlanta.example.com>\r\n" + extra
    )
    if body:
        head += b"Content-Type: application/sdp\r\n"
    message = parse_message(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert isinstance(message, Request)
    return message


Message = Request | Response


class Net:
    """A UAC and its UASes, one record-routing proxy between them. ``drop`` loses
    messages; ``frozen`` sessions no longer see their timers (a crashed peer)."""

    def __init__(
        self,
        invite: Request | None = None,
        uac_config: SessionConfig | None = None,
        record_route: tuple[str, ...] = (),
    ) -> None:
        self.now = 0.0
        self.record_route = record_route
        self.uac = InviteSession.outgoing(
            invite or make_invite(), config=uac_config, rng=random.Random(1)
        )
        self.uases: dict[str, InviteSession] = {}
        self.app: dict[str, list[Event]] = defaultdict(list)
        self.log: list[tuple[float, str, Message]] = []
        self.drop: Callable[[Message], bool] = lambda message: False
        self.frozen: set[str] = set()
        self.invites: list[Request] = []  # the INVITEs as they arrived at the UAS side
        self._branch = 0
        self.pump()

    @property
    def invite(self) -> Request:
        return self.invites[-1]

    def add_uas(self, tag: str, config: SessionConfig | None = None) -> InviteSession:
        uas = InviteSession.incoming(
            self.invite,
            tag,
            f"<sip:bob@{tag}.biloxi.example.com>",
            config=config,
            rng=random.Random(tag),
        )
        self.uases[tag] = uas
        self.pump()
        return uas

    def sessions(self) -> dict[str, InviteSession]:
        return {"uac": self.uac, **self.uases}

    def pump(self) -> None:
        busy = True
        while busy:
            busy = False
            for name, session in self.sessions().items():
                for event in session.events():
                    busy = True
                    self.route(name, event)

    def route(self, sender: str, event: Event) -> None:
        match event:
            case SendRequest(request):
                self.send_request(sender, request)
            case SendCancel(_):
                for uas in self.uases.values():
                    self.deliver(sender, make_cancel(self.invite), uas)
            case SendResponse(response, _):
                if sender == "uac":
                    assert response.from_ is not None and response.from_.tag is not None
                    self.deliver(sender, response, self.uases[response.from_.tag])
                else:
                    self.deliver(sender, response, self.uac)
            case _:
                self.app[sender].append(event)

    def send_request(self, sender: str, request: Request) -> None:
        """What the endpoint does: a top Via; then what the proxy does: Record-Route."""
        request = request.copy()
        self._branch += 1
        host = "client.atlanta.example.com" if sender == "uac" else f"{sender}.biloxi.example.com"
        request.headers.prepend("Via", f"SIP/2.0/UDP {host};branch=z9hG4bK{self._branch}")
        assert request.to is not None
        if request.to.tag is None:  # an initial INVITE
            for value in self.record_route:
                request.headers.add("Record-Route", value)
            message = self.deliver(sender, request, None)
            if isinstance(message, Request):
                self.invites.append(message)
        elif sender == "uac":
            self.deliver(sender, request, self.uases[request.to.tag])
        else:
            self.deliver(sender, request, self.uac)

    def deliver(self, sender: str, message: Message, to: InviteSession | None) -> Message | None:
        if self.drop(message):
            return None
        wire = parse_message(bytes(message))
        self.log.append((self.now, sender, wire))
        if isinstance(wire, Request) and to is not None:
            to.receive_request(wire, self.now)
        elif isinstance(wire, Response) and to is not None:
            to.receive_response(wire, self.now)
        return wire

    def run_until(self, end: float) -> None:
        """Advance the clock deadline by deadline up to ``end``."""
        while True:
            deadlines = [
                (deadline, name)
                for name, session in self.sessions().items()
                if name not in self.frozen and (deadline := session.next_deadline()) is not None
            ]
            if not deadlines or min(deadlines)[0] > end:
                break
            self.now, name = min(deadlines)
            self.sessions()[name].handle_timer(self.now)
            self.pump()
        self.now = end

    def requests(self, sender: str, method: str) -> list[tuple[float, Request]]:
        """When ``sender`` sent requests of ``method``, and what it sent."""
        return [
            (when, message)
            for when, who, message in self.log
            if who == sender and isinstance(message, Request) and message.method == method
        ]

    def responses(self, sender: str, what: str) -> list[tuple[float, Response]]:
        """When ``sender`` sent responses ``what`` ("200 INVITE"), and what it sent."""
        return [
            (when, message)
            for when, who, message in self.log
            if who == sender and isinstance(message, Response) and label(message) == what
        ]

    def answered_call(self, tag: str = "b", **config: object) -> InviteSession:
        uas = self.add_uas(tag, SessionConfig(**config) if config else None)  # type: ignore[arg-type]
        uas.ring()
        uas.answer(ANSWER, self.now)
        self.pump()
        assert self.uac.state is State.CONFIRMED and uas.state is State.CONFIRMED
        return uas


def last(net: Net, side: str) -> Event:
    """The latest call-control event ``side`` saw."""
    return net.app[side][-1]


def label(response: Response) -> str:
    assert response.cseq is not None
    return f"{response.status} {response.cseq.method}"


def statuses(net: Net, sender: str) -> list[str]:
    return [label(m) for _, who, m in net.log if who == sender and isinstance(m, Response)]


# --- the state table ------------------------------------------------------------------------
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


# --- basic calls ------------------------------------------------------------------------------
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


def test_bye_from_the_callee() -> None:
    net = Net()
    uas = net.answered_call()
    uas.bye()
    net.pump()
    bye = net.requests("b", "BYE")[0][1]
    assert str(bye.cseq) == "1 BYE" and str(bye.uri) == "sip:alice@client.atlanta.example.com"
    assert last(net, "b") == Disconnected(Cause.NORMAL, None, "local")
    assert last(net, "uac") == Disconnected(Cause.NORMAL, None, "remote")
    assert statuses(net, "uac") == ["200 BYE"]
    uas.bye()  # hanging up twice is harmless
    assert uas.events() == []


def test_callee_bye_before_the_ack_waits_for_it() -> None:
    """§15: the callee must not send BYE before the ACK (or its timeout)."""
    net = Net()
    uas = net.add_uas("b")
    uas.answer(ANSWER, 0.0)
    uas.bye()
    assert uas.state is State.CONNECTING
    net.pump()
    assert [m.method for _, _, m in net.log if isinstance(m, Request)] == ["INVITE", "ACK", "BYE"]
    assert net.app["b"] == [Confirmed(None), Disconnected(Cause.NORMAL, None, "local")]


def test_requests_after_the_end_get_481() -> None:
    net = Net()
    uas = net.answered_call()
    dialog = net.uac.dialog
    assert dialog is not None
    info = dialog.create_request("INFO")
    net.uac.bye()
    net.pump()
    net.deliver("uac", info, uas)
    net.pump()
    assert statuses(net, "b")[-1] == "481 INFO"


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


# --- failures ---------------------------------------------------------------------------------
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


# --- forking (§12.1.2, §13.2.2.4) ---------------------------------------------------------------
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


# --- 2xx retransmission (§13.3.1.4) ---------------------------------------------------------
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


# --- re-INVITE, glare, UPDATE ----------------------------------------------------------------
def test_hold_and_resume_with_reinvite() -> None:
    net = Net()
    uas = net.answered_call()
    net.uac.reinvite(HOLD)
    net.pump()
    assert last(net, "b") == Offer(HOLD) and b"a=sendonly" in HOLD
    uas.accept_offer(HELD, net.now)
    net.pump()
    assert last(net, "uac") == OfferAnswered(HELD) and b"a=recvonly" in HELD
    reinvite = net.requests("uac", "INVITE")[1][1]
    assert str(reinvite.cseq) == "2 INVITE" and reinvite.body == HOLD
    assert str(net.requests("uac", "ACK")[1][1].cseq) == "2 ACK"
    assert uas.next_deadline() != pytest.approx(net.now + 0.5)  # the 2xx was acknowledged

    net.uac.reinvite(RESUME)
    net.pump()
    uas.accept_offer(RESUMED, net.now)
    net.pump()
    assert last(net, "uac") == OfferAnswered(RESUMED)
    assert net.uac.state is uas.state is State.CONFIRMED


def test_rejected_reinvite_keeps_the_call() -> None:
    net = Net()
    uas = net.answered_call()
    uas.reinvite(HOLD)
    net.pump()
    net.uac.reject_offer(488)
    net.pump()
    assert last(net, "b") == OfferRejected(488)
    assert net.uac.state is uas.state is State.CONFIRMED
    uas.reinvite(HOLD)  # free to try again
    net.pump()
    assert last(net, "uac") == Offer(HOLD)


def test_reinvite_without_offer_gets_ours_in_the_2xx_and_the_answer_in_the_ack() -> None:
    net = Net()
    uas = net.answered_call()
    uas.reinvite(None)
    net.pump()
    assert last(net, "uac") == Offer(None)
    net.uac.accept_offer(RESUME, net.now)
    net.pump()
    assert last(net, "b") == Offer(RESUME)
    uas.accept_offer(RESUMED, net.now)
    net.pump()
    assert net.requests("b", "ACK")[-1][1].body == RESUMED
    assert last(net, "uac") == OfferAnswered(RESUMED)


def test_glare_both_get_491_and_retry_after_the_rfc_delays() -> None:
    net = Net()
    uas = net.answered_call()
    start = net.now
    net.uac.reinvite(HOLD)
    uas.reinvite(sdp("bob", "sendonly", 2))
    net.pump()
    assert statuses(net, "uac")[-1] == "491 INVITE" and statuses(net, "b")[-1] == "491 INVITE"
    assert not any(isinstance(e, Offer | OfferRejected) for e in net.app["uac"] + net.app["b"])
    # §14.1: the callee (not the Call-ID's owner) retries within 0-2 s, the caller 2.1-4 s
    uas_retry, uac_retry = uas.next_deadline(), net.uac.next_deadline()
    assert uas_retry is not None and uac_retry is not None
    assert start <= uas_retry <= start + 2.0
    assert start + 2.1 <= uac_retry <= start + 4.0
    net.run_until(uas_retry)
    assert last(net, "uac") == Offer(sdp("bob", "sendonly", 2))
    net.uac.accept_offer(sdp("alice", "recvonly", 2), net.now)
    net.pump()
    net.run_until(uac_retry)
    assert last(net, "b") == Offer(HOLD)
    uas.accept_offer(HELD, net.now)
    net.pump()
    assert last(net, "uac") == OfferAnswered(HELD)
    reinvites = [str(m.cseq) for _, m in net.requests("uac", "INVITE")]
    assert reinvites == ["1 INVITE", "2 INVITE", "3 INVITE"]


def test_second_offer_while_the_first_is_unanswered_gets_500_with_retry_after() -> None:
    net = Net()
    uas = net.answered_call()
    net.uac.reinvite(HOLD)
    net.pump()
    dialog = net.uac.dialog
    assert dialog is not None
    update = dialog.create_request("UPDATE", body=RESUME, content_type="application/sdp")
    net.deliver("uac", update, uas)
    net.pump()
    refusal = net.responses("b", "500 UPDATE")[0][1]
    assert 0 <= int(refusal.headers.get("Retry-After") or "-1") <= 10
    with pytest.raises(LocalProtocolError):
        net.uac.update(RESUME)  # §14.1: ours is still in progress


def test_update_in_a_confirmed_dialog() -> None:
    net = Net()
    uas = net.answered_call()
    uas.update(HOLD)
    net.pump()
    assert last(net, "uac") == Offer(HOLD)
    net.uac.accept_offer(HELD, net.now)
    net.pump()
    assert last(net, "b") == OfferAnswered(HELD)
    update = net.requests("b", "UPDATE")[0][1]
    assert update.contact and str(update.cseq) == "1 UPDATE"
    assert net.requests("uac", "ACK")[-1][1].cseq is not None  # no ACK for UPDATE
    assert [m for _, m in net.requests("b", "ACK")] == []


def test_update_in_an_early_dialog() -> None:
    """RFC 3311: an offer-less UPDATE works in an early dialog; without 100rel an offer
    cannot go there before the INVITE's answer (§5.1), and is refused if it does."""
    net = Net()
    uas = net.add_uas("b")
    uas.ring()
    net.pump()
    with pytest.raises(LocalProtocolError):
        net.uac.update(HOLD)
    net.uac.update()
    net.pump()
    assert statuses(net, "b")[-1] == "200 UPDATE" and uas.state is State.EARLY
    uas.update()  # and the other way
    net.pump()
    assert statuses(net, "uac")[-1] == "200 UPDATE"
    early = net.uac.early_dialogs[0]
    offer = early.create_request("UPDATE", body=HOLD, content_type="application/sdp")
    net.deliver("uac", offer, uas)
    net.pump()
    assert statuses(net, "b")[-1] == "500 UPDATE"  # the INVITE's offer is unanswered
    uas.answer(ANSWER, net.now)
    net.pump()
    assert net.uac.state is State.CONFIRMED


# --- session timers (RFC 4028) --------------------------------------------------------------
def test_session_timer_refreshes_at_half_the_interval() -> None:
    net = Net(uac_config=SessionConfig(session_expires=120))
    uas = net.answered_call()
    ok = net.responses("b", "200 INVITE")[0][1]
    assert ok.headers.get("Session-Expires") == "120;refresher=uac"
    assert ok.headers.get("Require") == "timer"
    assert net.uac.is_refresher and not uas.is_refresher and uas.session_interval == 120
    net.run_until(400.0)
    refreshes = net.requests("uac", "UPDATE")
    assert [t for t, _ in refreshes] == [60.0, 120.0, 180.0, 240.0, 300.0, 360.0]
    assert refreshes[0][1].headers.get("Session-Expires") == "120;refresher=uac"
    assert refreshes[0][1].body == b"" and net.app["b"] == [Confirmed(None)]
    assert net.uac.state is uas.state is State.CONFIRMED


def test_session_expires_without_refresh_and_the_other_side_says_bye() -> None:
    net = Net(uac_config=SessionConfig(session_expires=120))
    uas = net.answered_call()
    net.run_until(100.0)  # one refresh, at 60
    net.frozen.add("uac")  # the refresher is gone
    net.run_until(1000.0)
    # the next refresh was due at 120; expiry is 120 - min(32, 120/3) = 88 s after 60
    assert [t for t, _ in net.requests("b", "BYE")] == [148.0]
    assert last(net, "b") == Disconnected(Cause.SESSION_EXPIRED, None, "local")
    assert uas.state is State.DISCONNECTED


def test_callee_refreshes_when_the_caller_does_not_support_timers() -> None:
    net = Net(make_invite(extra=b"Supported: replaces\r\nSession-Expires: 90\r\n"))
    uas = net.answered_call()
    assert (
        net.responses("b", "200 INVITE")[0][1].headers.get("Session-Expires") == "90;refresher=uas"
    )
    assert uas.is_refresher and not net.uac.is_refresher
    net.run_until(100.0)
    assert [t for t, _ in net.requests("b", "UPDATE")] == [45.0, 90.0]


def test_refresh_with_reinvite_when_the_peer_lacks_update() -> None:
    net = Net(
        make_invite(extra=b"Allow: INVITE, ACK, CANCEL, BYE\r\n"), SessionConfig(session_expires=90)
    )
    net.answered_call()
    assert net.uac.is_refresher
    uas_allow = net.responses("b", "200 INVITE")[0][1].headers.get("Allow")
    assert uas_allow is not None and "UPDATE" in uas_allow
    net.run_until(50.0)  # the UAS allows UPDATE: the UAC refreshes with UPDATE
    assert len(net.requests("uac", "UPDATE")) == 1
    # the other way round: the UAS would refresh with a re-INVITE carrying its last SDP
    net2 = Net(
        make_invite(extra=b"Allow: INVITE, ACK, BYE\r\nSupported: x\r\nSession-Expires: 90\r\n")
    )
    callee = net2.answered_call()
    net2.run_until(50.0)
    refresh = net2.requests("b", "INVITE")[0][1]
    assert refresh.body == ANSWER and last(net2, "uac") == Offer(ANSWER)
    net2.uac.accept_offer(OFFER, net2.now)
    net2.pump()
    assert OfferAnswered not in [type(e) for e in net2.app["b"]]  # a refresh is silent
    assert callee.state is State.CONFIRMED


def test_too_small_session_expires_gets_422_and_the_caller_retries() -> None:
    net = Net(uac_config=SessionConfig(session_expires=90))
    first = net.add_uas("b", SessionConfig(min_se=300, session_expires=1800))
    too_small = net.responses("b", "422 INVITE")[0][1]
    assert too_small.headers.get("Min-SE") == "300"
    assert net.app["b"] == [Disconnected(Cause.REJECTED, 422, "local")]
    assert first.state is State.DISCONNECTED and net.uac.state is State.CALLING
    retry = net.invite
    assert str(retry.cseq) == "2 INVITE" and retry.headers.get("Session-Expires") == "300"
    net.uases.clear()
    uas = net.answered_call("b", min_se=300)
    assert uas.session_interval == net.uac.session_interval == 300


def test_reinvite_with_too_small_session_expires_gets_422() -> None:
    net = Net()
    uas = net.answered_call()
    dialog = net.uac.dialog
    assert dialog is not None
    refresh = dialog.create_request("UPDATE", headers=[("Session-Expires", 60)])
    net.deliver("uac", refresh, uas)
    net.pump()
    assert net.responses("b", "422 UPDATE")[0][1].headers.get("Min-SE") == "90"


# --- CSeq, routes, lookups ------------------------------------------------------------------
def test_old_cseq_gets_500() -> None:
    net = Net()
    uas = net.answered_call()
    dialog = net.uac.dialog
    assert dialog is not None
    first, second = dialog.create_request("OPTIONS"), dialog.create_request("OPTIONS")
    net.deliver("uac", second, uas)
    net.deliver("uac", first, uas)
    net.pump()
    assert statuses(net, "b")[-2:] == ["200 OPTIONS", "500 OPTIONS"]
    assert uas.state is State.CONFIRMED


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


def test_unknown_dialog_gets_481_and_options_get_200() -> None:
    net = Net()
    uas = net.answered_call()
    dialog = net.uac.dialog
    assert dialog is not None
    options = dialog.create_request("OPTIONS")
    net.deliver("uac", options, uas)
    stranger = dialog.create_request("INFO")
    stranger.headers.set("From", "<sip:mallory@example.com>;tag=other")
    net.deliver("uac", stranger, uas)
    net.deliver("uac", dialog.create_request("MESSAGE"), uas)
    net.pump()
    assert statuses(net, "b")[-3:] == ["200 OPTIONS", "481 INFO", "501 MESSAGE"]


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


# --- edges -------------------------------------------------------------------------------------
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


def test_cancelled_reinvite_gets_487() -> None:
    net = Net()
    uas = net.answered_call()
    net.uac.reinvite(HOLD)
    net.pump()
    reinvite = net.requests("uac", "INVITE")[-1][1]
    assert isinstance(reinvite, Request)
    net.deliver("uac", make_cancel(reinvite), uas)
    net.pump()
    assert statuses(net, "b")[-2:] == ["200 CANCEL", "487 INVITE"]
    assert last(net, "uac") == OfferRejected(487)
    with pytest.raises(LocalProtocolError):
        uas.accept_offer(HELD, net.now)


def test_bye_while_an_offer_is_pending_answers_it_487() -> None:
    net = Net()
    uas = net.answered_call()
    net.uac.reinvite(HOLD)
    net.pump()
    net.uac.events()
    dialog = net.uac.dialog
    assert dialog is not None
    net.deliver("uac", dialog.create_request("BYE"), uas)
    net.pump()
    assert statuses(net, "b")[-2:] == ["200 BYE", "487 INVITE"]


@pytest.mark.parametrize(
    ("status", "cause", "bye"), [(481, Cause.DIALOG_GONE, 0), (408, Cause.TIMEOUT, 1)]
)
def test_reinvite_answered_481_or_408_ends_the_call(status: int, cause: Cause, bye: int) -> None:
    net = Net()
    uas = net.answered_call()
    net.uac.reinvite(HOLD)
    net.pump()
    reinvite = net.requests("uac", "INVITE")[-1][1]
    assert isinstance(reinvite, Request)
    if status == 408:
        net.uac.request_timeout(reinvite, net.now)
    else:
        net.uac.receive_response(make_response(reinvite, 481), net.now)
    net.pump()
    assert last(net, "uac") == Disconnected(cause, status, "remote")
    assert len(net.requests("uac", "BYE")) == bye
    assert uas.state is (State.DISCONNECTED if bye else State.CONFIRMED)


def test_refresh_answered_422_is_retried_with_the_larger_interval() -> None:
    net = Net(uac_config=SessionConfig(session_expires=90))
    uas = net.answered_call(min_se=90)
    uas._config = SessionConfig(min_se=120)  # the callee became stricter
    net.run_until(46.0)
    refreshes = [m.headers.get("Session-Expires") for _, m in net.requests("uac", "UPDATE")]
    assert refreshes == ["90;refresher=uac", "120;refresher=uac"]
    assert statuses(net, "b")[-2:] == ["422 UPDATE", "200 UPDATE"]
    assert net.uac.session_interval == 120 and last(net, "uac") == Answered(ANSWER)


def test_timers_wait_while_the_dialog_is_busy() -> None:
    net = Net(uac_config=SessionConfig(session_expires=90))
    uas = net.answered_call()
    uas.reinvite(HOLD)
    net.pump()  # the offer waits for the caller's application
    net.run_until(50.0)
    assert net.requests("uac", "UPDATE") == []  # the refresh (due at 45) waits
    net.uac.accept_offer(HELD, net.now)  # this re-INVITE's 2xx refreshed the session
    net.pump()
    net.run_until(96.0)
    assert [t for t, _ in net.requests("uac", "UPDATE")] == [95.0]

    # glare retry: re-armed while the peer's offer is pending
    net.uac.reinvite(RESUME)
    uas.reinvite(RESUMED)
    net.pump()
    uac_retry = net.uac.next_deadline()
    uas_retry = uas.next_deadline()
    assert uac_retry is not None and uas_retry is not None
    net.run_until(uas_retry)  # the callee retries first; the caller does not answer yet
    net.run_until(uac_retry)
    seqs = [m.cseq.seq for _, m in net.requests("uac", "INVITE") if m.cseq]
    assert seqs == [1, 3] and net.uac.next_deadline() is not None  # re-armed
    net.uac.accept_offer(RESUME, net.now)
    net.pump()
    net.run_until(net.now + 4.0)
    assert [m.cseq.seq for _, m in net.requests("uac", "INVITE") if m.cseq] == [1, 3, 4]
    assert last(net, "b") == Offer(RESUME)


def test_late_2xx_to_a_reinvite_we_gave_up_on_is_still_acked() -> None:
    net = Net()
    uas = net.answered_call()
    net.uac.reinvite(HOLD)
    net.pump()
    reinvite = net.requests("uac", "INVITE")[-1][1]
    assert isinstance(reinvite, Request)
    net.uac.receive_response(make_response(reinvite, 500), net.now)  # say, a proxy's 500
    uas.accept_offer(HELD, net.now)
    net.pump()
    assert str(net.requests("uac", "ACK")[-1][1].cseq) == "2 ACK"
    assert uas.next_deadline() != net.now + 0.5


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


def test_callee_imposes_a_timer_it_refreshes_itself_when_the_caller_asks_none() -> None:
    """RFC 4028 §9: without Session-Expires in the request, the UAS may add one, and is
    then the refresher."""
    net = Net(uac_config=SessionConfig(session_expires=None))
    assert "Session-Expires" not in net.invite.headers
    uas = net.answered_call()
    ok = net.responses("b", "200 INVITE")[0][1]
    assert ok.headers.get("Session-Expires") == "1800;refresher=uas" and "Require" not in ok.headers
    assert uas.is_refresher and net.uac.session_interval == 1800 and not net.uac.is_refresher
