"""The sans-IO UA core on a fake clock: two ``UaCore`` wired through two real transaction
layers in memory (aioquic's ``client_and_server``/``roundtrip`` idea), every time explicit.

RFC 3261 §8.2 (checks, OPTIONS §11.2, 405/501), §12.2.2 (481 for an unknown dialog), §9.2
(CANCEL matching), §13.3.1.4 (2xx retransmitted at T1, then doubling to T2, until the ACK),
§22.2 (a challenged INVITE sent again); RFC 3891 §3 (Replaces matched, or refused 481/486/400);
RFC 4028 §10 (the refresher refreshes at half the session interval); RFC 6026 §7.1 (a 2xx
retransmitted after the INVITE transaction ended goes out directly).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from hybridvoice.sip import Address, Headers, Request, Response, Via, parse_address, parse_uri
from hybridvoice.sip.session import (
    Answered,
    Cause,
    Confirmed,
    Disconnected,
    Ringing,
    SessionConfig,
    State,
)
from hybridvoice.sip.transaction import (
    AckReceived,
    ClientTransaction,
    RequestReceived,
    ResponseReceived,
    SendRequest,
    SendResponse,
    StrayResponse,
    TimerConfig,
    TransactionLayer,
    TransactionTimeout,
)
from hybridvoice.sip.ua_core import (
    CallEnded,
    CancelInvite,
    Deliver,
    IncomingCall,
    Leg,
    NewTransaction,
    Respond,
    RespondDirect,
    SendAck,
    UaAction,
    UaCore,
    Unhandled,
)

T1, T2 = 0.5, 4.0
CONFIG = SessionConfig(t1=T1, t2=T2, session_expires=None)
OFFER = (
    b"v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 6000 RTP/AVP 0\r\n"
)
ANSWER = OFFER.replace(b"6000", b"7000").replace(b"o=a", b"o=b")


@dataclass(frozen=True)
class Transport:
    """What the core reads of a transport (``TransportLike``)."""

    port: int
    kind: str = "UDP"

    @property
    def sent_by(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def advertised(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)


@dataclass(frozen=True)
class Source:
    """Where a request came from (``SourceLike``)."""

    transport: Transport
    port: int


@dataclass
class Node:
    """One UA core over its own transaction layer, its application's view in ``app``."""

    name: str
    port: int
    config: SessionConfig = CONFIG
    core: UaCore = field(init=False)
    layer: TransactionLayer = field(init=False)
    transport: Transport = field(init=False)
    peer: Node | None = None
    app: list[UaAction] = field(default_factory=list)  # Deliver, IncomingCall, Unhandled...
    wire: list[Request | Response] = field(default_factory=list)  # what we put on the wire
    sent: list[tuple[float, Request | Response]] = field(default_factory=list)  # with times
    calls: list[Leg] = field(default_factory=list)  # IncomingCall legs
    invite_tx: dict[int, ClientTransaction] = field(default_factory=dict)  # id(leg) -> tx

    def __post_init__(self) -> None:
        self.core = UaCore(config=self.config, user=self.name, rng=random.Random(self.port))
        self.layer = TransactionLayer(TimerConfig(t1=T1, t2=T2), rng=random.Random(self.port))
        self.transport = Transport(self.port)

    def uri(self, user: str = "bob") -> str:
        return f"sip:{user}@127.0.0.1:{self.port}"

    def events(self, kind: type) -> list[object]:
        return [a.event for a in self.app if isinstance(a, Deliver) and isinstance(a.event, kind)]


class Net:
    """Two nodes, a shared fake clock, and a wire that may drop what ``drop`` says."""

    def __init__(self, config: SessionConfig = CONFIG) -> None:
        self.now = 100.0
        self.a = Node("alice", 5060, config)
        self.b = Node("bob", 5070, config)
        self.a.peer, self.b.peer = self.b, self.a
        self.drop: Callable[[Node, Request | Response], bool] = lambda node, message: False

    # --- the adapter's part, in memory ---------------------------------------------------
    def carry(self, node: Node, actions: list[UaAction]) -> None:
        for action in actions:
            if isinstance(action, NewTransaction):
                self._via(node, action.request)
                tx = node.layer.send_request(action.request, self.now, context=action.leg)
                tx.tu_data = action.leg
                if action.initial:
                    node.invite_tx[id(action.leg)] = tx
            elif isinstance(action, SendAck):
                self._via(node, action.request)
                self._put(node, action.request)
            elif isinstance(action, CancelInvite):
                cancel = node.layer.cancel(node.invite_tx[id(action.leg)], self.now)
                cancel.tu_data = action.leg
            elif isinstance(action, Respond):
                node.layer.send_response(action.transaction, action.response, self.now)
            elif isinstance(action, RespondDirect):
                self._put(node, action.response)
            elif isinstance(action, IncomingCall):
                node.calls.append(action.leg)
                node.app.append(action)
            elif isinstance(action, CallEnded):
                action.leg.release()
                node.app.append(action)
            else:
                node.app.append(action)
        self.pump()

    def _via(self, node: Node, request: Request) -> None:
        request.headers.prepend("Via", Via("UDP", "127.0.0.1", node.port, (("rport", None),)))

    def _put(self, node: Node, message: Request | Response) -> None:
        node.wire.append(message)
        node.sent.append((self.now, message))
        if self.drop(node, message):
            return
        peer = node.peer
        assert peer is not None
        source = Source(peer.transport, node.port)
        if isinstance(message, Request):
            peer.layer.receive_request(message, self.now, context=source)
        else:
            peer.layer.receive_response(message, self.now)

    def pump(self) -> None:
        """Until quiet: each layer's events to the wire or to its core."""
        busy = True
        while busy:
            busy = False
            for node in (self.a, self.b):
                for event in node.layer.events():
                    busy = True
                    self._event(node, event)

    def _event(self, node: Node, event: object) -> None:
        now, core = self.now, node.core
        if isinstance(event, SendRequest):
            self._put(node, event.request)
        elif isinstance(event, SendResponse):
            self._put(node, event.response)
        elif isinstance(event, RequestReceived):
            source = event.transaction.context
            assert isinstance(source, Source)
            self.carry(node, core.receive_request(event.transaction, event.request, source, now))
        elif isinstance(event, AckReceived):
            self.carry(node, core.receive_ack(event.request, event.context, now))
        elif isinstance(event, StrayResponse):
            self.carry(node, core.stray_response(event.response, now))
        elif isinstance(event, ResponseReceived):
            leg = event.transaction.tu_data
            assert isinstance(leg, Leg)
            request = event.transaction.request
            self.carry(node, core.response_for(leg, request, event.response, now))
        elif isinstance(event, TransactionTimeout):
            leg = event.transaction.tu_data
            if isinstance(leg, Leg) and isinstance(event.transaction, ClientTransaction):
                request = event.transaction.request
                self.carry(node, core.timeout_for(leg, request, event.cause, now))

    def run_until(self, until: float) -> None:
        """Fire every timer of both layers and cores due until ``until``, in time order."""
        while True:
            deadlines = [
                (d, i, which)
                for i, node in enumerate((self.a, self.b))
                for which, d in (
                    ("layer", node.layer.next_deadline()),
                    ("core", node.core.next_deadline()),
                )
                if d is not None and d <= until
            ]
            if not deadlines:
                break
            when, i, which = min(deadlines)
            self.now = max(self.now, when)
            node = (self.a, self.b)[i]
            if which == "layer":
                node.layer.handle_timers(self.now)
                self.pump()
            else:
                self.carry(node, node.core.handle_timers(self.now))
        self.now = max(self.now, until)

    # --- the application's part ----------------------------------------------------------
    def call(self, sdp: bytes | None = OFFER, headers: tuple[tuple[str, object], ...] = ()) -> Leg:
        """alice calls bob; bob's new leg is in ``b.calls``."""
        leg, actions = self.a.core.invite(
            parse_uri(self.b.uri()),
            from_=parse_address("<sip:alice@example.com>"),
            to=parse_address(f"<{self.b.uri()}>"),
            sdp=sdp,
            transport=self.a.transport,
            headers=headers,
        )
        self.carry(self.a, actions)
        return leg

    def connect(self) -> tuple[Leg, Leg]:
        a = self.call()
        (b,) = self.b.calls
        self.carry(self.b, b.answer(ANSWER, self.now))
        assert a.session.state is State.CONFIRMED and b.session.state is State.CONFIRMED
        return a, b


def raw(method: str, target: str, *, to_tag: str | None = None, **extra: object) -> Request:
    to = f"<{target}>" + (f";tag={to_tag}" if to_tag else "")
    headers = Headers.of(
        [
            ("Via", "SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK" + f"{random.getrandbits(48):x}"),
            ("Max-Forwards", 70),
            ("To", to),
            ("From", "<sip:test@example.com>;tag=t1"),
            ("Call-ID", f"{random.getrandbits(64):x}@test"),
            ("CSeq", f"1 {method}"),
            ("Contact", "<sip:test@127.0.0.1:5090>"),
            *[(name.replace("_", "-"), value) for name, value in extra.items()],
            ("Content-Length", 0),
        ]
    )
    return Request(method, parse_uri(target), headers)


def receive(node: Node, request: Request, now: float = 100.0) -> list[Request | Response]:
    """Feed ``request`` from a third party into ``node``; what ``node`` answered."""
    before = len(node.wire)
    source = Source(node.transport, 5090)
    peer, node.peer = node.peer, None
    answers: list[Request | Response] = []
    try:
        node.layer.receive_request(request, now, context=source)
        for event in node.layer.events():
            if isinstance(event, RequestReceived):
                tx = event.transaction
                actions = node.core.receive_request(tx, event.request, source, now)
                for action in actions:
                    if isinstance(action, Respond):
                        node.layer.send_response(action.transaction, action.response, now)
                    elif isinstance(action, Unhandled):
                        response = node.core.default_response(action.request, action.to_tag)
                        node.layer.send_response(action.transaction, response, now)
                    else:
                        node.app.append(action)
            elif isinstance(event, SendResponse):
                answers.append(event.response)
        for event in node.layer.events():
            if isinstance(event, SendResponse):
                answers.append(event.response)
    finally:
        node.peer = peer
    assert len(node.wire) == before
    return answers


def statuses(messages: list[Request | Response]) -> list[int]:
    return [m.status for m in messages if isinstance(m, Response)]


def sent_at(node: Node, what: str) -> list[float]:
    """When ``node`` put ``what`` on the wire: a method, or a status as text."""
    return [
        t
        for t, m in node.sent
        if (isinstance(m, Request) and m.method == what)
        or (
            isinstance(m, Response)
            and str(m.status) == what
            and m.cseq
            and m.cseq.method != "CANCEL"
        )
    ]


def drop_acks(node: Node, message: Request | Response) -> bool:
    return isinstance(message, Request) and message.method == "ACK"


# --- dispatch (§8.2, §11.2, §12.2.2) -------------------------------------------------------
@pytest.mark.parametrize("method", ["BYE", "UPDATE", "INFO", "REFER", "NOTIFY", "INVITE"])
def test_a_request_for_an_unknown_dialog_gets_481(method: str) -> None:
    net = Net()
    assert statuses(receive(net.b, raw(method, net.b.uri(), to_tag="nosuch"))) == [481]
    assert net.b.app == [] and len(net.b.core.dialogs) == 0


@pytest.mark.parametrize(
    ("method", "status"),
    [("OPTIONS", 200), ("BYE", 481), ("UPDATE", 481), ("MESSAGE", 405), ("FOO", 501)],
)
def test_out_of_dialog_requests_the_application_leaves_to_the_ua(method: str, status: int) -> None:
    net = Net()
    answers = receive(net.b, raw(method, net.b.uri()))
    assert statuses(answers) == [status]
    (answer,) = answers
    assert isinstance(answer, Response)
    if status in (200, 405, 501):
        allow = answer.headers.get("Allow") or ""
        assert allow == "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, REFER, NOTIFY"
    if method == "OPTIONS":
        assert "timer" in (answer.headers.get("Supported") or "")
    assert answer.to is not None and answer.to.tag is not None  # §8.2.6.2


def test_section_8_2_checks_come_first() -> None:
    net = Net()
    required = raw("INVITE", net.b.uri(), Require="100rel")
    (answer,) = receive(net.b, required)
    assert isinstance(answer, Response) and answer.status == 420
    assert answer.headers.get("Unsupported") == "100rel"
    assert net.b.calls == []


def test_a_call_and_its_bye() -> None:
    net = Net()
    a = net.call()
    (b,) = net.b.calls
    assert [type(x) for x in net.b.app] == [IncomingCall] and b.incoming and not a.incoming
    net.carry(net.b, b.ring())
    assert net.a.events(Ringing) == [Ringing(None)]
    net.carry(net.b, b.answer(ANSWER, net.now))
    assert net.a.events(Answered) == [Answered(ANSWER)]
    assert net.b.events(Confirmed) == [Confirmed(None)]
    assert len(net.a.core.dialogs) == len(net.b.core.dialogs) == 1
    net.carry(net.a, a.bye(headers=[("Reason", "SIP;cause=16")]))
    (bye,) = [m for m in net.a.wire if isinstance(m, Request) and m.method == "BYE"]
    assert bye.headers.get("Reason") == "SIP;cause=16"
    assert net.a.events(Disconnected) == [Disconnected(Cause.NORMAL, None, "local")]
    assert net.b.events(Disconnected) == [Disconnected(Cause.NORMAL, None, "remote")]
    for node in (net.a, net.b):
        assert isinstance(node.app[-1], CallEnded)
        assert len(node.core.dialogs) == 0 and node.core.next_deadline() is None


# --- CANCEL (§9.2) -------------------------------------------------------------------------
def test_cancel_matches_the_invite_and_ends_the_call_487() -> None:
    net = Net()
    a = net.call()
    (b,) = net.b.calls
    net.carry(net.b, b.ring())
    net.carry(net.a, a.cancel())
    assert sent_at(net.a, "CANCEL") == [100.0]
    assert sent_at(net.b, "487") == [100.0]
    assert net.a.events(Disconnected) == [Disconnected(Cause.CANCELLED, 487, "local")]
    assert net.b.events(Disconnected) == [Disconnected(Cause.CANCELLED, 487, "remote")]


def test_cancel_of_an_answered_invite_gets_200_and_changes_nothing() -> None:
    net = Net()
    _, b = net.connect()
    cancel = b.session.invite.copy()
    cancel.method = "CANCEL"
    cancel.headers.set("CSeq", "1 CANCEL")
    assert statuses(receive(net.b, cancel, net.now)) == [200]
    assert b.session.state is State.CONFIRMED
    # once the leg is gone, the core answers for it: there is nothing to cancel
    net.carry(net.b, b.bye())
    assert b.disconnected
    cancel2 = cancel.copy()
    assert statuses(receive(net.b, cancel2, net.now)) == [200]


# --- Replaces (RFC 3891 §3) ----------------------------------------------------------------
def replaces_for(leg: Leg, *, early_only: bool = False) -> str:
    ids = leg.session.dialog_ids
    assert ids
    d = ids[0]
    return f"{d.call_id};to-tag={d.local_tag};from-tag={d.remote_tag}" + (
        ";early-only" if early_only else ""
    )


def test_replaces_names_a_confirmed_call() -> None:
    net = Net()
    _, b = net.connect()
    net.b.app.clear()
    assert receive(net.b, raw("INVITE", net.b.uri(), Replaces=replaces_for(b))) == []
    (incoming,) = net.b.app
    assert isinstance(incoming, IncomingCall) and incoming.leg.replaces is b


@pytest.mark.parametrize(
    ("replaces", "status"),
    [
        ("nosuch@x;to-tag=1;from-tag=2", 481),  # no such dialog
        ("early-only", 486),  # a confirmed dialog, early-only asked
        ("two", 400),  # two Replaces headers
    ],
)
def test_replaces_refusals(replaces: str, status: int) -> None:
    net = Net()
    _, b = net.connect()
    net.b.app.clear()
    if replaces == "early-only":
        request = raw("INVITE", net.b.uri(), Replaces=replaces_for(b, early_only=True))
    elif replaces == "two":
        request = raw("INVITE", net.b.uri(), Replaces=replaces_for(b))
        request.headers.add("Replaces", replaces_for(b))
    else:
        request = raw("INVITE", net.b.uri(), Replaces=replaces)
    assert statuses(receive(net.b, request, net.now)) == [status]
    assert not any(isinstance(x, IncomingCall) for x in net.b.app)  # the app never saw it
    assert b.session.state is State.CONFIRMED


def test_replaces_of_an_early_dialog_we_initiated_is_481_and_of_one_we_received_matches() -> None:
    net = Net()
    a = net.call()
    (b,) = net.b.calls
    net.carry(net.b, b.ring())
    assert a.session.state is State.EARLY and b.session.state is State.EARLY
    early_only = replaces_for(a, early_only=True)
    assert statuses(receive(net.a, raw("INVITE", net.a.uri(), Replaces=early_only))) == [481]
    net.b.app.clear()
    assert (
        receive(net.b, raw("INVITE", net.b.uri(), Replaces=replaces_for(b, early_only=True))) == []
    )
    (incoming,) = net.b.app
    assert isinstance(incoming, IncomingCall) and incoming.leg.replaces is b


# --- timers through the core's one deadline (§13.3.1.4, RFC 4028) ------------------------
def test_2xx_retransmitted_at_t1_doubling_to_t2_until_the_ack() -> None:
    net = Net()
    net.drop = drop_acks
    net.call()
    (b,) = net.b.calls
    net.carry(net.b, b.answer(ANSWER, net.now))  # at 100.0
    assert net.b.core.next_deadline() == 100.0 + T1
    net.run_until(100.0 + T1 - 0.001)
    assert sent_at(net.b, "200") == [100.0]
    net.run_until(111.5)
    assert sent_at(net.b, "200") == [100.0, 100.5, 101.5, 103.5, 107.5, 111.5]
    assert net.b.core.next_deadline() == 111.5 + T2
    net.drop = lambda node, message: False  # the caller ACKs every copy: this one arrives
    net.run_until(115.5)
    assert sent_at(net.b, "200")[-1] == 115.5
    assert net.b.events(Confirmed) == [Confirmed(None)]
    assert net.b.core.next_deadline() is None  # no more 2xx timer


def test_no_ack_within_64_t1_ends_the_call_with_a_bye() -> None:
    net = Net()
    net.drop = drop_acks
    net.call()
    (b,) = net.b.calls
    net.carry(net.b, b.answer(ANSWER, net.now))
    net.run_until(100.0 + 64 * T1 - 0.001)
    assert not b.disconnected
    net.run_until(100.0 + 64 * T1)
    assert sent_at(net.b, "BYE") == [132.0]
    assert net.b.events(Disconnected) == [Disconnected(Cause.NO_ACK, None, "local")]


def test_the_deadlines_of_several_calls_are_one_deadline() -> None:
    net = Net()
    net.drop = drop_acks
    net.call()
    net.now = 100.2
    net.call()
    b1, b2 = net.b.calls
    net.now = 100.0
    net.carry(net.b, b1.answer(ANSWER, 100.0))
    net.now = 100.2
    net.carry(net.b, b2.answer(ANSWER, 100.2))
    core = net.b.core
    assert core.next_deadline() == 100.5
    assert core.handle_timers(100.49) == []
    net.now = 100.5
    first = core.handle_timers(100.5)
    assert [type(x) for x in first] == [Respond] and first[0].leg is b1
    net.carry(net.b, first)
    assert core.next_deadline() == pytest.approx(100.7)
    net.run_until(101.0)
    assert [t for t, m in net.b.sent if isinstance(m, Response) and m.status == 200] == [
        100.0,
        100.2,
        100.5,
        pytest.approx(100.7),
    ]


def test_earliest_new_tells_the_adapter_when_its_timer_may_be_late() -> None:
    """``earliest_new``: the earliest deadline queued since the adapter last took it (set
    back to None); after timers fired, the deadlines still queued are news again."""
    net = Net()
    net.drop = drop_acks
    net.call()
    net.now = 100.2
    net.call()
    b1, b2 = net.b.calls
    core = net.b.core
    core.earliest_new = None
    net.carry(net.b, b1.answer(ANSWER, 100.0))
    assert core.earliest_new == 100.5
    net.carry(net.b, b2.answer(ANSWER, 100.2))
    assert core.earliest_new == 100.5  # a later one does not move it
    core.earliest_new = None
    assert core.handle_timers(100.49) == []
    assert core.earliest_new == 100.5  # still queued: the adapter's timer had fired
    core.earliest_new = None
    net.carry(net.b, core.handle_timers(100.5))
    assert core.earliest_new == pytest.approx(100.7)  # b2's, and b1's next is later
    assert core.next_deadline() == pytest.approx(100.7)


def test_session_refresh_at_half_the_interval() -> None:
    """RFC 4028 §10: the caller asked for the timer, so it refreshes (offer-less UPDATE, the
    callee allows it) at half the interval after the 2xx, again after each refresh."""
    net = Net(SessionConfig(t1=T1, t2=T2, session_expires=90, min_se=90))
    a, b = net.connect()
    assert a.session.session_interval == 90 and a.session.is_refresher
    assert net.a.core.next_deadline() == 145.0
    net.run_until(144.999)
    assert sent_at(net.a, "UPDATE") == []
    net.run_until(145.0)
    assert sent_at(net.a, "UPDATE") == [145.0]
    net.run_until(200.0)
    assert sent_at(net.a, "UPDATE") == [145.0, 190.0]
    assert a.session.state is State.CONFIRMED and b.session.state is State.CONFIRMED
    assert net.b.events(Disconnected) == []


def test_superseded_deadlines_do_not_pile_up() -> None:
    net = Net()
    for _ in range(300):
        net.call()
        b = net.b.calls[-1]
        net.carry(net.b, b.answer(ANSWER, net.now))  # a deadline, then the ACK clears it
        assert net.b.core.next_deadline() is None
    assert len(net.b.core._heap) <= 65


# --- digest (§22.2) --------------------------------------------------------------------------
class OneAnswer:
    """An ``Authenticator`` that answers one challenge."""

    def __init__(self) -> None:
        self.answered = 0

    def begin(self) -> None:
        pass

    def answer(self, response: Response) -> bool:
        self.answered += 1
        return self.answered == 1

    def apply(self, request: Request) -> None:
        request.headers.set("Proxy-Authorization", 'Digest username="alice"')


def test_a_challenged_invite_is_sent_again_with_credentials() -> None:
    net = Net()
    auth = OneAnswer()
    leg, actions = net.a.core.invite(
        parse_uri(net.b.uri()),
        from_=parse_address("<sip:alice@example.com>"),
        to=Address(parse_uri(net.b.uri())),
        sdp=OFFER,
        transport=net.a.transport,
        auth=auth,
    )
    net.carry(net.a, actions)
    (first,) = net.b.calls
    net.carry(net.b, first.reject(407, headers=[("Proxy-Authenticate", 'Digest realm="x"')]))
    assert auth.answered == 1 and net.a.events(Disconnected) == []
    _, second = net.b.calls
    assert second.session.invite.cseq is not None and second.session.invite.cseq.seq == 2
    assert second.session.invite.headers.get("Proxy-Authorization") is not None
    assert second.call_id == first.call_id == leg.call_id
    net.carry(net.b, second.answer(ANSWER, net.now))
    assert net.a.events(Answered) == [Answered(ANSWER)] and leg.session.state is State.CONFIRMED


def test_replaces_of_a_call_already_ended_is_603() -> None:
    """RFC 3891 §3: the dialog is known but its session has ended. A session's dialogs end
    with it, so the table drops them in the same step; the rule is pinned here by putting
    the ended leg back under its dialog ID."""
    net = Net()
    a, _ = net.connect()
    (dialog_id,) = a.session.dialog_ids
    replaces = replaces_for(a)
    net.carry(net.a, a.bye())
    assert a.disconnected and len(net.a.core.dialogs) == 0
    net.a.core.dialogs.add(dialog_id, a)
    request = raw("INVITE", net.a.uri(), Replaces=replaces)
    assert statuses(receive(net.a, request, net.now)) == [603]


def test_2xx_retransmitted_directly_once_the_invite_transaction_ended() -> None:
    """RFC 6026 §7.1: through the INVITE server transaction while it is Accepted (until
    Timer L, here 8*T1 = 4 s), then by the core itself (``RespondDirect``)."""
    net = Net()
    net.b.layer = TransactionLayer(TimerConfig(t1=T1, t2=T2, l_multiplier=8), rng=random.Random(7))
    net.drop = drop_acks
    net.call()
    (b,) = net.b.calls
    direct: list[float] = []
    carry = net.carry

    def spy(node: Node, actions: list[UaAction]) -> None:
        direct.extend(net.now for x in actions if isinstance(x, RespondDirect))
        carry(node, actions)

    net.carry = spy  # type: ignore[method-assign]
    net.carry(net.b, b.answer(ANSWER, net.now))
    net.run_until(111.5)
    assert sent_at(net.b, "200") == [100.0, 100.5, 101.5, 103.5, 107.5, 111.5]
    assert direct == [107.5, 111.5]  # Timer L fired at 104.0


def test_a_stray_2xx_of_another_fork_is_acked_then_ended() -> None:
    """§13.2.2.4: a 2xx from a second fork, after the INVITE transaction ended, goes to the
    leg of its dialog set (Call-ID + From tag): ACK it, then BYE that fork's dialog."""
    net = Net()
    a, _ = net.connect()
    (ok,) = [m for m in net.b.wire if isinstance(m, Response) and m.status == 200]
    fork = ok.copy()
    to = fork.to
    assert to is not None
    fork.headers.set("To", to.with_tag("fork2"))
    actions = net.a.core.stray_response(fork, net.now)
    assert [type(x) for x in actions] == [SendAck, NewTransaction]
    ack, bye = actions
    assert isinstance(ack, SendAck) and isinstance(bye, NewTransaction)
    assert ack.leg is a and bye.leg is a and bye.request.method == "BYE"
    assert [r.to.tag for r in (ack.request, bye.request) if r.to] == ["fork2", "fork2"]
    assert a.session.state is State.CONFIRMED  # our call goes on
    # a 4xx, or a response to anything but the INVITE, is no stray 2xx
    assert net.a.core.stray_response(fork.copy(), net.now) != []  # the ACK again
    not_ok = fork.copy()
    not_ok.status = 486
    assert net.a.core.stray_response(not_ok, net.now) == []
