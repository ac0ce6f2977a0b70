"""The §16 proxy core on a fake clock (RFC 3261 §16.6-§16.10, RFC 5658): a real sans-IO
:class:`~hybridvoice.sip.transaction.TransactionLayer` below it, every timer driven by ``now``
with exact expectations (Timer C at t0+180 s, reset by a 180; group timeouts; the wait after
a CANCEL), §16.7 response selection, challenge aggregation, 2xx and 6xx handling, CANCEL.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from hybridvoice.sip import Request, Response, make_response, parse_message, parse_uri
from hybridvoice.sip.proxy import (
    AskRoute,
    Branch,
    CancelBranch,
    ForwardStray,
    ProxyCore,
    SendAck,
    SendDirect,
    SendRequest,
    SendResponse,
)
from hybridvoice.sip.transaction import (
    ClientTransaction,
    RequestReceived,
    ResponseReceived,
    TransactionLayer,
    TransactionTimeout,
)
from hybridvoice.sip.uri import Uri

T0 = 1000.0
OURS = "127.0.0.1:5060"  # the proxy's address in Route headers


@dataclass(frozen=True)
class Target:
    uri: Uri


@dataclass(frozen=True)
class Forward:
    groups: tuple[tuple[Target, ...], ...]
    failover: frozenset[int] = frozenset({408, 503, 504})
    timeout: float | None = None
    provisional_timeout: float | None = None
    exhausted: int = 408
    retry_after: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    record_route: bool = True


def forward(*groups: tuple[str, ...], **options: object) -> Forward:
    return Forward(
        tuple(tuple(Target(parse_uri(uri)) for uri in group) for group in groups),
        **options,  # type: ignore[arg-type]
    )


class Network:
    """The adapter's side of the core: 127.0.0.1:5060 is ours; admit lets everything in."""

    def __init__(self) -> None:
        self.refuse: Response | None = None

    def interface(self, uri: Uri) -> object | None:
        return "lo" if f"{uri.host}:{uri.port}" == OURS else None  # type: ignore[attr-defined]

    def admit(self, request: Request, source: str) -> Response | None:
        return self.refuse

    def dialog_target(self, uri: Uri, route: Uri | None, via: object | None) -> Target | None:
        return Target(uri)


class Harness:
    """The core over a transaction layer; upstream is "alice", each branch a downstream UAS
    that the test answers with :meth:`respond`. What went upstream is in ``up``."""

    def __init__(self, **options: object) -> None:
        self.layer = TransactionLayer(rng=random.Random(7))
        self.core: ProxyCore[str] = ProxyCore(
            Network(),
            rng=random.Random(1),
            cancel_wait=32.0,
            **options,  # type: ignore[arg-type]
        )
        self.decide: Forward | Response | None = None
        self.asked: list[AskRoute] = []
        self.sent: list[SendRequest] = []  # branches, in order
        self.txs: list[ClientTransaction] = []
        self.up: list[Response] = []  # responses sent upstream, in order
        self.local: list[int] = []  # statuses of our own responses
        self.cancelled: list[int] = []  # indexes of the branches CANCELled
        self.other: list[object] = []
        self._branches = 0

    # input
    def invite(
        self, now: float = T0, method: str = "INVITE", extra: str = "", n: int = 1
    ) -> Request:
        request = message(
            f"{method} sip:bob@example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP 127.0.0.2:5060;branch=z9hG4bKalice{n}\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\n"
            f"To: <sip:bob@example.com>\r\nCall-ID: c{n}@example.com\r\nCSeq: 1 {method}\r\n"
            f"{extra}Contact: <sip:alice@127.0.0.2>\r\nContent-Length: 0\r\n\r\n"
        )
        assert isinstance(request, Request)
        self.layer.receive_request(request, now, reliable=True, context="alice")
        self.drive(now)
        return request

    def cancel(self, now: float) -> None:
        request = message(
            "CANCEL sip:bob@example.com SIP/2.0\r\n"
            "Via: SIP/2.0/TCP 127.0.0.2:5060;branch=z9hG4bKalice1\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\n"
            "To: <sip:bob@example.com>\r\nCall-ID: c1@example.com\r\nCSeq: 1 CANCEL\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        self.layer.receive_request(request, now, reliable=True, context="alice")  # type: ignore[arg-type]
        self.drive(now)

    def respond(self, index: int, status: int, now: float, **kw: object) -> Response:
        request = self.sent[index].request
        response = make_response(request, status, to_tag=f"b{index}", **kw)  # type: ignore[arg-type]
        self.layer.receive_response(response, now)
        self.drive(now)
        return response

    def tick(self, now: float) -> None:
        self.core.handle_timers(now)
        self.layer.handle_timers(now)
        self.drive(now)

    def decided(self, decision: Forward | Response, now: float) -> None:
        self.core.route_decided(self.asked[-1].context, decision, now)
        self.drive(now)

    # the adapter's loop
    def drive(self, now: float) -> None:
        core, layer = self.core, self.layer
        while True:
            events, actions = layer.events(), core.actions()
            if not events and not actions:
                return
            for event in events:
                if isinstance(event, RequestReceived):
                    tx, request = event.transaction, event.request
                    core.receive_request(tx, request, "alice", now)
                elif isinstance(event, ResponseReceived) and event.transaction.cancels is None:
                    branch = event.transaction.tu_data
                    assert isinstance(branch, Branch)
                    core.branch_response(branch, event.response, now)
                elif isinstance(event, TransactionTimeout):
                    branch = event.transaction.tu_data
                    if isinstance(branch, Branch) and event.transaction.cancels is None:
                        core.branch_timeout(branch, event.reason, now)
            for action in actions:
                self.act(action, now)

    def act(self, action: object, now: float) -> None:
        core, layer = self.core, self.layer
        if isinstance(action, AskRoute):
            self.asked.append(action)
            if self.decide is not None:
                core.route_decided(action.context, self.decide, now)
        elif isinstance(action, SendRequest):
            self._branches += 1
            request = action.request
            request.headers.prepend(
                "Via", f"SIP/2.0/TCP {OURS};branch=z9hG4bKproxy{self._branches}"
            )
            tx = layer.send_request(request, now, reliable=True, context=action.target)
            tx.tu_data = action.branch
            core.branch_sent(action.branch, tx)
            self.sent.append(action)
            self.txs.append(tx)
        elif isinstance(action, SendResponse):
            layer.send_response(action.transaction, action.response, now)
            (self.local if action.local else self.up).append(
                action.response.status if action.local else action.response  # type: ignore[arg-type]
            )
        elif isinstance(action, CancelBranch):
            layer.cancel(action.transaction, now)
            self.cancelled.append(self.txs.index(action.transaction))
        else:
            assert isinstance(action, SendDirect | SendAck | ForwardStray)
            self.other.append(action)

    @property
    def statuses(self) -> list[int]:
        return [response.status for response in self.up]


def message(text: str) -> Request | Response:
    return parse_message(text.encode())


def fork(n: int, **options: object) -> Harness:
    """An INVITE at T0 forked to ``n`` targets in one group."""
    h = Harness()
    h.decide = forward(tuple(f"sip:bob{i}@127.0.0.{10 + i}" for i in range(n)), **options)
    h.invite(T0)
    assert len(h.sent) == n
    return h


# --- §16.6 forwarding ------------------------------------------------------------------------


def test_each_branch_gets_a_copy_with_its_uri_max_forwards_and_the_policy_headers() -> None:
    h = Harness()
    h.decide = forward(
        ("sip:bob@127.0.0.10", "sip:bob@127.0.0.11"),
        headers=(("P-Asserted-Identity", "<sip:a@x>"),),
    )
    original = h.invite(T0)
    one, two = h.sent
    assert [str(s.request.uri) for s in h.sent] == ["sip:bob@127.0.0.10", "sip:bob@127.0.0.11"]
    assert one.request is not two.request and one.request is not original
    assert one.request.max_forwards == 69 and original.max_forwards == 70
    assert one.request.headers.values("P-Asserted-Identity") == ["<sip:a@x>"]
    assert one.record_route and one.source == "alice"
    assert h.core.counters.requests_forwarded == {}  # the adapter counts what it sent


def test_own_routes_are_stripped_and_the_next_route_makes_it_in_dialog() -> None:
    h = Harness()
    extra = f"Route: <sip:{OURS};lr>, <sip:127.0.0.1:5060;transport=tcp;lr>, <sip:127.0.0.9;lr>\r\n"
    h.invite(T0, method="BYE", extra=extra)
    assert h.asked == []  # in-dialog: never routed by the policy
    (sent,) = h.sent
    assert sent.request.headers.values("Route") == ["<sip:127.0.0.9;lr>"]
    assert not sent.record_route


# --- Timer C (§16.6 step 11, §16.8) ---------------------------------------------------------


def test_timer_c_fires_at_exactly_t0_plus_180() -> None:
    h = fork(1)
    assert h.core.next_deadline() == T0 + 180
    h.respond(0, 100, T0)  # Proceeding: Timer B no longer runs, Timer C does
    assert h.core.next_deadline() == T0 + 180
    h.tick(T0 + 179.999)
    assert h.cancelled == [] and h.local == []
    h.tick(T0 + 180)
    assert h.cancelled == [0]
    assert h.local == [408]  # §16.8: the branch counts as a 408, the only one
    assert h.core.counters.timer_c == 1 and h.core.counters.branches_cancelled == 1
    assert h.core.next_deadline() is None
    h.respond(0, 487, T0 + 180.1)  # the answer to the CANCEL: the context is over
    assert h.statuses == [] and h.local == [408]


def test_without_any_response_timer_b_ends_the_branch_first() -> None:
    h = fork(1)
    h.tick(T0 + 32)  # 64*T1 of the transaction layer
    assert h.local == [408] and h.core.counters.branch_timeouts == 1
    assert h.core.counters.timer_c == 0 and h.core.next_deadline() is None


def test_a_100_does_not_restart_timer_c() -> None:
    """§16.7 step 2: only 101-199 reset Timer C; it runs from when the INVITE was forwarded
    (§16.6 step 11), so a 100 at t0+100 s leaves the CANCEL at t0+180 s."""
    h = fork(1)
    h.respond(0, 100, T0 + 100)
    assert h.core.next_deadline() == T0 + 180
    h.tick(T0 + 179.999)
    assert h.cancelled == []
    h.tick(T0 + 180)
    assert h.cancelled == [0] and h.core.counters.timer_c == 1 and h.local == [408]


def test_a_101_to_199_restarts_timer_c_and_a_later_100_does_not() -> None:
    h = fork(1)
    h.respond(0, 183, T0 + 50)
    assert h.core.next_deadline() == T0 + 230
    h.respond(0, 100, T0 + 60)
    assert h.core.next_deadline() == T0 + 230
    h.tick(T0 + 229.999)
    assert h.cancelled == []
    h.tick(T0 + 230)
    assert h.cancelled == [0] and h.core.counters.timer_c == 1


def test_timer_c_is_reset_by_a_180() -> None:
    h = fork(1)
    h.respond(0, 180, T0 + 100)
    assert h.statuses == [180]
    assert h.core.next_deadline() == T0 + 280
    h.tick(T0 + 180)
    assert h.cancelled == []
    h.tick(T0 + 279.9)
    assert h.cancelled == []
    h.tick(T0 + 280)
    assert h.cancelled == [0] and h.core.counters.timer_c == 1
    assert h.local == [408]  # §16.8


def test_timer_c_setting_is_used_for_new_branches() -> None:
    h = Harness(timer_c=0.3)
    h.decide = forward(("sip:bob@127.0.0.10",))
    h.invite(T0)
    assert h.core.next_deadline() == T0 + 0.3
    h.tick(T0 + 0.3)
    assert h.local == [408] and h.core.counters.timer_c == 1  # no 1xx: given up at once


# --- §16.7 response selection ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("finals", "up", "local"),
    [
        ((486,), [486], []),
        ((486, 404), [486], []),  # same rank: the first stays
        ((500, 486), [486], []),  # 4xx before 5xx
        ((486, 302), [302], []),  # 3xx before 4xx
        ((404, 401), [401], []),  # 401/407/415/420/484 preferred among 4xx
        ((480, 415), [415], []),
        ((502, 504), [502], []),  # 504 is a failover status, not a usable response
        ((503,), [], [408]),  # only failover statuses: exhausted, answered locally
        ((408, 504), [], [408]),
    ],
)
def test_best_response(finals: tuple[int, ...], up: list[int], local: list[int]) -> None:
    h = fork(len(finals))
    for i, status in enumerate(finals):
        h.respond(i, status, T0 + 1 + i)
    assert h.statuses == up and h.local == local


def test_a_503_that_is_not_a_failover_status_goes_up_as_500() -> None:
    h = fork(1, failover=frozenset())
    h.respond(0, 503, T0 + 1)
    assert h.statuses == [500] and h.up[0].reason == "Server Internal Error"


def test_exhausted_status_with_retry_after() -> None:
    h = fork(1, exhausted=503, retry_after=30)
    h.respond(0, 408, T0 + 1)
    assert h.local == [503]


def test_6xx_cancels_the_other_branches_and_ends_the_search() -> None:
    h = Harness()
    h.decide = forward(("sip:b0@127.0.0.10", "sip:b1@127.0.0.11"), ("sip:b2@127.0.0.12",))
    h.invite(T0)
    h.respond(1, 180, T0 + 1)
    h.respond(0, 603, T0 + 2)
    assert h.cancelled == [1] and h.core.counters.branches_cancelled == 1
    assert h.statuses == [180]  # the cancelled branch may still answer (32 s)
    assert h.core.next_deadline() == T0 + 2 + 32
    h.respond(1, 487, T0 + 3)
    assert h.statuses == [180, 603]
    assert len(h.sent) == 2 and h.core.counters.failovers == 0  # the next group never tried


def test_6xx_goes_up_when_a_cancelled_branch_never_answers() -> None:
    h = fork(2)
    h.respond(1, 180, T0 + 1)
    h.respond(0, 600, T0 + 2)
    h.tick(T0 + 2 + 31.9)
    assert h.statuses == [180]
    h.tick(T0 + 2 + 32)
    assert h.statuses == [180, 600]


def test_2xx_goes_up_at_once_and_a_later_2xx_too() -> None:
    h = fork(2)
    h.respond(0, 180, T0 + 1)
    h.respond(1, 180, T0 + 1)
    h.respond(0, 200, T0 + 2)
    assert h.statuses == [180, 180, 200]
    assert h.cancelled == [1]
    assert len(h.up[-1].via) == 1  # our Via is gone
    h.respond(1, 200, T0 + 2.01)  # the other branch answered before the CANCEL came
    assert h.statuses == [180, 180, 200, 200]  # §16.7 step 5: every 2xx goes up
    assert h.core.next_deadline() is None


def test_1xx_goes_up_but_not_100() -> None:
    h = fork(1)
    h.respond(0, 100, T0 + 1)
    h.respond(0, 183, T0 + 2)
    assert h.statuses == [183]


def test_challenges_of_every_branch_are_aggregated() -> None:
    h = fork(3)
    one = 'Digest realm="one.example.com", nonce="1"'
    two = 'Digest realm="two.example.com", nonce="2"'
    h.respond(0, 407, T0 + 1, headers=[("Proxy-Authenticate", one)])
    h.respond(1, 486, T0 + 2)
    h.respond(2, 407, T0 + 3, headers=[("Proxy-Authenticate", two)])
    (response,) = h.up
    assert response.status == 407
    assert response.headers.get_all("Proxy-Authenticate") == [one, two]


# --- failover groups ---------------------------------------------------------------------


def test_group_timeout_cancels_the_group_and_starts_the_next_exactly_on_time() -> None:
    h = Harness()
    h.decide = forward(("sip:b0@127.0.0.10",), ("sip:b1@127.0.0.11",), timeout=5.0)
    h.invite(T0)
    h.respond(0, 180, T0 + 1)
    assert h.core.next_deadline() == T0 + 5
    h.tick(T0 + 4.99)
    assert len(h.sent) == 1
    h.tick(T0 + 5)
    assert h.cancelled == [0] and len(h.sent) == 2
    counters = h.core.counters
    assert counters.group_timeouts == 1 and counters.failovers == 1
    assert h.core.next_deadline() == T0 + 10  # the second group's timeout
    h.respond(1, 200, T0 + 6)
    assert h.statuses == [180, 200]
    h.respond(0, 487, T0 + 6)  # the first group's answer to its CANCEL: ignored
    assert h.statuses == [180, 200] and h.core.next_deadline() is None


def test_provisional_timeout_then_timer_c() -> None:
    h = Harness()
    h.decide = forward(("sip:b0@127.0.0.10",), ("sip:b1@127.0.0.11",), provisional_timeout=2.0)
    h.invite(T0)
    assert h.core.next_deadline() == T0 + 2
    h.tick(T0 + 2)
    assert h.core.counters.provisional_timeouts == 1 and len(h.sent) == 2
    h.respond(1, 100, T0 + 3)  # any response stops it; Timer C from when it was sent
    assert h.core.next_deadline() == T0 + 2 + 180
    h.tick(T0 + 4)  # the provisional timeout (T0+2+2) no longer applies
    assert h.core.counters.provisional_timeouts == 1 and h.cancelled == [0]
    h.respond(1, 180, T0 + 10)  # a 180 restarts it
    assert h.core.next_deadline() == T0 + 10 + 180
    h.tick(T0 + 190)
    assert h.core.counters.timer_c == 1 and h.cancelled == [0, 1] and h.local == [408]


def test_a_100_in_the_failover_wait_keeps_timer_c_from_the_forwarding() -> None:
    h = Harness()
    h.decide = forward(("sip:b0@127.0.0.10",), ("sip:b1@127.0.0.11",), provisional_timeout=2.0)
    h.invite(T0)
    h.respond(0, 100, T0 + 1)  # alive: no failover, Timer C from T0
    assert h.core.next_deadline() == T0 + 180
    h.tick(T0 + 2)
    assert h.core.counters.provisional_timeouts == 0 and len(h.sent) == 1
    h.tick(T0 + 180)
    assert h.core.counters.timer_c == 1 and h.cancelled == [0] and len(h.sent) == 2


def test_a_branch_that_could_not_be_sent_counts_as_503() -> None:
    h = Harness()
    h.decide = forward(("sip:b0@127.0.0.10", "sip:b1@127.0.0.11"), ("sip:b2@127.0.0.12",))
    h.invite(T0)
    h.core.branch_failed(h.sent[0].branch, T0)
    h.core.branch_failed(h.sent[1].branch, T0)
    h.drive(T0)
    assert len(h.sent) == 3 and h.core.counters.branch_transport_errors == 2
    h.core.branch_timeout(h.sent[2].branch, "timeout", T0 + 32)
    h.drive(T0 + 32)
    assert h.local == [408] and h.core.counters.branch_timeouts == 1


# --- CANCEL (§16.10) and the routing decision ------------------------------------------------


def test_cancel_reaches_every_pending_branch_and_the_487_goes_up() -> None:
    h = fork(2)
    h.respond(0, 180, T0 + 1)
    h.cancel(T0 + 2)
    assert h.local == [200]  # the CANCEL's
    assert h.cancelled == [0, 1]  # the one without a 1xx is given up at once
    h.respond(0, 487, T0 + 3)
    assert h.statuses == [180, 487]
    assert h.core.next_deadline() is None


def test_cancel_while_the_policy_decides_answers_487_and_ignores_the_decision() -> None:
    h = Harness()
    h.invite(T0)
    assert len(h.asked) == 1 and h.asked[0].source == "alice"
    h.cancel(T0 + 1)
    assert h.local == [200, 487]
    h.decided(forward(("sip:b0@127.0.0.10",)), T0 + 2)
    assert h.sent == []


def test_local_response_decision_and_policy_failure() -> None:
    h = Harness()
    h.invite(T0)
    h.decided(h.core.response(h.asked[0].request, 404), T0)
    assert h.local == [404]
    h2 = Harness()
    h2.invite(T0)
    h2.core.route_failed(h2.asked[0].context, T0)
    h2.drive(T0)
    assert h2.local == [500] and h2.core.counters.policy_errors == 1


# --- §16.11 ---------------------------------------------------------------------------------


def test_ack_for_a_2xx_goes_on_statelessly_and_stray_2xx_by_the_next_via() -> None:
    h = Harness()
    ack = message(
        "ACK sip:bob@127.0.0.10 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.2;branch=z9hG4bKa\r\n"
        f"Route: <sip:{OURS};lr>\r\nMax-Forwards: 70\r\nFrom: <sip:a@x>;tag=1\r\n"
        "To: <sip:b@x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    )
    assert isinstance(ack, Request)
    h.core.receive_ack(ack, "alice", T0)
    (action,) = h.core.actions()
    assert isinstance(action, SendAck) and str(action.hop) == "sip:bob@127.0.0.10"
    assert action.via == "lo" and ack.max_forwards == 69 and not ack.route
    stray = message(
        f"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP {OURS};branch=z9hG4bKp\r\n"
        "Via: SIP/2.0/TCP 127.0.0.2;branch=z9hG4bKa\r\nFrom: <sip:a@x>;tag=1\r\n"
        "To: <sip:b@x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    assert isinstance(stray, Response)
    h.core.receive_stray(stray, T0)
    (action,) = h.core.actions()
    assert isinstance(action, ForwardStray) and action.via.host == "127.0.0.2"


def test_timers_of_finished_contexts_do_not_pile_up() -> None:
    """Every context over leaves a stale heap entry (Timer C of its branch); they are dropped
    in bulk, and the live deadlines stay exact."""
    h = Harness()
    h.decide = forward(("sip:bob@127.0.0.10",))
    for n in range(1, 601):
        h.invite(T0 + n / 1000, n=n)
        h.respond(n - 1, 486, T0 + n / 1000)
    assert h.statuses == [486] * 600
    assert len(h.core.forwarder._heap) < 300  # compacted (internal: the point of the test)
    h.invite(T0 + 1, n=601)
    h.respond(600, 180, T0 + 2)
    assert h.core.next_deadline() == T0 + 2 + 180
