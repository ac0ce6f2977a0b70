"""Tests of the RFC 3261 §17 transaction layer (with RFC 6026), sans-IO, on a fake clock.

Timer values are asserted exactly: every ``layer.handle_timers`` call is made at the
deadline ``layer.next_deadline()`` announced, aioquic style.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridvoice.sip import LocalProtocolError, Request, Response, make_response, parse_message
from hybridvoice.sip.message import make_ack
from hybridvoice.sip.transaction import (
    AckReceived,
    ClientState,
    ClientTransaction,
    Event,
    RequestReceived,
    ResponseReceived,
    SendRequest,
    SendResponse,
    ServerState,
    ServerTransaction,
    StrayResponse,
    TimerConfig,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
)

RFC4475 = Path(__file__).resolve().parents[1] / "fixtures" / "rfc4475"

# --- helpers ----------------------------------------------------------------------------


def request(
    method: str = "INVITE",
    branch: str | None = "z9hG4bK776asdhds",
    *,
    call_id: str = "a84b4c76e66710@pc33.atlanta.com",
    seq: int = 314159,
    host: str = "pc33.atlanta.com",
    to_tag: str | None = None,
    uri: str = "sip:bob@biloxi.com",
) -> Request:
    """A request as received from the wire (parsed from bytes)."""
    via = f"SIP/2.0/UDP {host}" + ("" if branch is None else f";branch={branch}")
    to = "Bob <sip:bob@biloxi.com>" + ("" if to_tag is None else f";tag={to_tag}")
    text = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: {via}\r\n"
        "Max-Forwards: 70\r\n"
        f"To: {to}\r\n"
        "From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {seq} {method}\r\n"
        "Contact: <sip:alice@pc33.atlanta.com>\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def parse_request(data: bytes) -> Request:
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def received(events: list[Event]) -> ServerTransaction:
    """The transaction of the only ``RequestReceived`` among ``events``."""
    (tx,) = [e.transaction for e in events if isinstance(e, RequestReceived)]
    return tx


def wire(message: Request | Response) -> Request | Response:
    """Serialise and parse again, as a hop over the network would."""
    return parse_message(bytes(message))


def answer(req: Request, status: int, tag: str | None = "a6c85cf") -> Response:
    """A response to ``req`` as received from the wire."""
    response = wire(make_response(req, status, to_tag=tag))
    assert isinstance(response, Response)
    return response


def ack_for(invite: Request, response: Response) -> Request:
    ack = wire(make_ack(invite, response))
    assert isinstance(ack, Request)
    return ack


def run_until(layer: TransactionLayer, end: float) -> list[tuple[float, Event]]:
    """Fire every timer due up to ``end``, each exactly at its deadline."""
    out: list[tuple[float, Event]] = []
    while (deadline := layer.next_deadline()) is not None and deadline <= end:
        layer.handle_timers(deadline)
        out += [(deadline, e) for e in layer.events()]
    return out


def kinds(events: list[Event]) -> list[str]:
    return [type(e).__name__ for e in events]


def sent_requests(timed: list[tuple[float, Event]]) -> list[float]:
    return [t for t, e in timed if isinstance(e, SendRequest)]


def sent_responses(timed: list[tuple[float, Event]]) -> list[float]:
    return [t for t, e in timed if isinstance(e, SendResponse)]


def layer(**config: float | None) -> TransactionLayer:
    return TransactionLayer(TimerConfig(**config), rng=random.Random(7))  # type: ignore[arg-type]


def client(
    method: str = "INVITE", *, reliable: bool = False, **config: float | None
) -> tuple[TransactionLayer, ClientTransaction]:
    lay = layer(**config)
    tx = lay.send_request(request(method), 0.0, reliable=reliable, context="dest")
    assert kinds(lay.events()) == ["SendRequest"]
    return lay, tx


def server(
    method: str = "INVITE", *, reliable: bool = False, **config: float | None
) -> tuple[TransactionLayer, ServerTransaction]:
    lay = layer(**config)
    lay.receive_request(request(method), 0.0, reliable=reliable, context="src")
    events = [e for e in lay.events() if isinstance(e, RequestReceived)]
    assert len(events) == 1
    return lay, events[0].transaction


def responses(events: list[Event]) -> list[int]:
    return [e.response.status for e in events if isinstance(e, SendResponse | ResponseReceived)]


# --- TimerConfig ------------------------------------------------------------------------


def test_timer_config_defaults_are_rfc_values() -> None:
    cfg = TimerConfig()
    assert (cfg.t1, cfg.t2, cfg.t4) == (0.5, 4.0, 5.0)
    assert cfg.timer_b == cfg.timer_f == cfg.timer_h == 32.0
    assert cfg.timer_j == cfg.timer_l == cfg.timer_m == 32.0
    assert cfg.timer_d == 32.0
    assert cfg.trying_delay == 0.2


def test_timer_config_scales_with_t1() -> None:
    cfg = TimerConfig(t1=0.1, t2=1.0, h_multiplier=10)
    assert cfg.timer_b == pytest.approx(6.4)
    assert cfg.timer_h == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kwargs",
    [{"t1": 0.0}, {"t1": 5.0, "t2": 4.0}, {"t4": -1.0}, {"b_multiplier": 0.0},
     {"timer_d": -1.0}, {"trying_delay": -0.1}],
)  # fmt: skip
def test_timer_config_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TimerConfig(**kwargs)


# --- INVITE client transaction (§17.1.1, RFC 6026) ----------------------------------------


def test_invite_client_timer_a_doubles_without_cap_until_timer_b() -> None:
    lay, tx = client()
    assert tx.state is ClientState.CALLING
    assert lay.next_deadline() == 0.5
    timed = run_until(lay, 100.0)
    # A: 0.5, 1, 2, 4, 8, 16 (no T2 cap for INVITE); B = 64*T1 = 32 s
    assert sent_requests(timed) == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert [(t, type(e).__name__) for t, e in timed[-2:]] == [
        (32.0, "TransactionTimeout"),
        (32.0, "TransactionTerminated"),
    ]
    timeout = timed[-2][1]
    assert isinstance(timeout, TransactionTimeout)
    assert (timeout.transaction, timeout.reason, timeout.timer) == (tx, "timeout", "B")
    assert tx.state is ClientState.TERMINATED
    assert lay.transaction_count == 0
    assert lay.next_deadline() is None


def test_invite_client_retransmissions_are_the_same_request_to_the_same_context() -> None:
    lay, tx = client()
    timed = run_until(lay, 2.0)
    for _, e in timed:
        assert isinstance(e, SendRequest)
        assert e.request is tx.request and e.context == "dest" and e.transaction is tx


def test_invite_client_provisional_stops_retransmissions_and_timer_b() -> None:
    lay, tx = client()
    run_until(lay, 0.5)
    lay.receive_response(answer(tx.request, 100, None), 0.7)
    events = lay.events()
    assert kinds(events) == ["ResponseReceived"]
    assert tx.state is ClientState.PROCEEDING
    assert lay.next_deadline() is None  # no Timer B once a provisional came (Figure 5)
    lay.receive_response(answer(tx.request, 180), 1.0)
    assert responses(lay.events()) == [180]
    assert tx.state is ClientState.PROCEEDING
    assert tx.last_response is not None and tx.last_response.status == 180


@pytest.mark.parametrize("provisional", [False, True])
def test_invite_client_non_2xx_is_acked_by_the_transaction(provisional: bool) -> None:
    lay, tx = client()
    if provisional:
        lay.receive_response(answer(tx.request, 180), 0.1)
        lay.events()
    final = answer(tx.request, 486)
    lay.receive_response(final, 0.2)
    events = lay.events()
    assert kinds(events) == ["SendRequest", "ResponseReceived"]
    assert tx.state is ClientState.COMPLETED
    ack = events[0]
    assert isinstance(ack, SendRequest)
    assert ack.request.method == "ACK" and ack.context == "dest"
    assert str(ack.request.cseq) == "314159 ACK"
    assert ack.request.to is not None and ack.request.to.tag == "a6c85cf"
    assert ack.request.top_via == tx.request.top_via  # same branch: part of the transaction
    assert ack.request.uri == tx.request.uri
    # retransmissions of the final response: ACK again, nothing to the TU
    lay.receive_response(answer(tx.request, 486), 1.0)
    again = lay.events()
    assert kinds(again) == ["SendRequest"]
    assert isinstance(again[0], SendRequest) and again[0].request is ack.request
    # 1xx and 2xx in Completed are ignored
    lay.receive_response(answer(tx.request, 180), 1.1)
    lay.receive_response(answer(tx.request, 200), 1.2)
    assert lay.events() == []
    # Timer D = 32 s from the final response
    assert lay.next_deadline() == pytest.approx(32.2)
    timed = run_until(lay, 100.0)
    assert kinds([e for _, e in timed]) == ["TransactionTerminated"]
    assert tx.state is ClientState.TERMINATED


@pytest.mark.parametrize("provisional", [False, True])
def test_invite_client_2xx_enters_accepted_and_passes_retransmissions_up(
    provisional: bool,
) -> None:
    lay, tx = client()
    if provisional:
        lay.receive_response(answer(tx.request, 183), 0.1)
        lay.events()
    lay.receive_response(answer(tx.request, 200), 0.25)
    assert kinds(lay.events()) == ["ResponseReceived"]  # no ACK: the TU sends it
    assert tx.state is ClientState.ACCEPTED
    assert lay.next_deadline() == pytest.approx(32.25)  # Timer M = 64*T1
    lay.receive_response(answer(tx.request, 200), 1.0)  # RFC 6026 §8.4
    assert kinds(lay.events()) == ["ResponseReceived"]
    lay.receive_response(answer(tx.request, 180), 1.1)  # anything else: discarded
    lay.receive_response(answer(tx.request, 500), 1.2)
    assert lay.events() == []
    assert kinds([e for _, e in run_until(lay, 40.0)]) == ["TransactionTerminated"]
    assert tx.state is ClientState.TERMINATED
    # after Timer M a 2xx retransmission is stray: the dialog layer handles it
    late = answer(tx.request, 200)
    lay.receive_response(late, 41.0)
    assert lay.events() == [StrayResponse(late)]


def test_invite_client_reliable_has_no_timer_a_and_zero_timer_d() -> None:
    lay, tx = client(reliable=True)
    assert lay.next_deadline() == 32.0  # only Timer B
    lay.receive_response(answer(tx.request, 404), 1.0)
    assert kinds(lay.events()) == ["SendRequest", "ResponseReceived", "TransactionTerminated"]
    assert tx.state is ClientState.TERMINATED
    assert lay.next_deadline() is None


def test_invite_client_reliable_timeout_is_timer_b() -> None:
    lay, _ = client(reliable=True)
    timed = run_until(lay, 100.0)
    assert [(t, type(e).__name__) for t, e in timed] == [
        (32.0, "TransactionTimeout"),
        (32.0, "TransactionTerminated"),
    ]


@pytest.mark.parametrize("state", ["calling", "proceeding"])
def test_invite_client_transport_error_is_a_timeout(state: str) -> None:
    lay, tx = client()
    if state == "proceeding":
        lay.receive_response(answer(tx.request, 180), 0.1)
        lay.events()
    lay.transport_error(tx, 0.2)
    events = lay.events()
    assert events == [TransactionTimeout(tx, "transport"), TransactionTerminated(tx)]
    assert tx.state is ClientState.TERMINATED
    assert lay.next_deadline() is None


def test_a_transport_error_carries_the_transport_s_words_to_the_tu() -> None:
    """The TU learns why the transport failed (a TLS certificate refused, a connection
    refused), not just "transport"; a later timer timeout of another transaction does not."""
    lay, tx = client()
    lay.transport_error(tx, 0.2, "TLS handshake with 192.0.2.7:5067 failed: bad certificate")
    timeout = lay.events()[0]
    assert timeout == TransactionTimeout(
        tx, "transport", None, "TLS handshake with 192.0.2.7:5067 failed: bad certificate"
    )
    lay2, tx2 = client()
    lay2.events()
    lay2.handle_timers(32.0)
    assert TransactionTimeout(tx2, "timeout", "B", None) in lay2.events()
    lay3, tx3 = server()
    lay3.send_response(tx3, make_response(tx3.request, 486, to_tag="x"), 0.1)
    lay3.events()
    lay3.transport_error(tx3, 0.2, "connection to 192.0.2.9:5060 refused")
    assert lay3.events()[0] == TransactionTimeout(
        tx3, "transport", None, "connection to 192.0.2.9:5060 refused"
    )


def test_invite_client_transport_error_after_final_response() -> None:
    lay, tx = client()
    lay.receive_response(answer(tx.request, 486), 0.1)
    lay.events()
    lay.transport_error(tx, 0.2)  # the ACK could not be sent: terminate quietly
    assert lay.events() == [TransactionTerminated(tx)]
    lay2, tx2 = client()
    lay2.receive_response(answer(tx2.request, 200), 0.1)
    lay2.events()
    lay2.transport_error(tx2, 0.2)  # Accepted sends nothing: ignored
    assert lay2.events() == []
    assert tx2.state is ClientState.ACCEPTED


# --- non-INVITE client transaction (§17.1.2) -------------------------------------------


def test_non_invite_client_timer_e_caps_at_t2_until_timer_f() -> None:
    lay, tx = client("OPTIONS")
    assert tx.state is ClientState.TRYING
    timed = run_until(lay, 100.0)
    assert sent_requests(timed) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert timed[-2][1] == TransactionTimeout(tx, "timeout", "F")
    assert timed[-2][0] == 32.0
    assert tx.state is ClientState.TERMINATED


def test_non_invite_client_proceeding_retransmits_every_t2() -> None:
    lay, tx = client("REGISTER")
    run_until(lay, 0.5)  # first retransmission; the next is due at 1.5
    lay.receive_response(answer(tx.request, 100, None), 0.7)
    assert kinds(lay.events()) == ["ResponseReceived"]
    assert tx.state is ClientState.PROCEEDING
    lay.receive_response(answer(tx.request, 100, None), 0.8)  # Proceeding + 1xx: to the TU
    assert kinds(lay.events()) == ["ResponseReceived"]
    timed = run_until(lay, 100.0)
    assert sent_requests(timed) == [1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5]
    assert timed[-2][1] == TransactionTimeout(tx, "timeout", "F")


@pytest.mark.parametrize("status", [200, 404])
@pytest.mark.parametrize("provisional", [False, True])
def test_non_invite_client_final_response_and_timer_k(status: int, provisional: bool) -> None:
    lay, tx = client("OPTIONS")
    if provisional:
        lay.receive_response(answer(tx.request, 100, None), 0.1)
        lay.events()
    lay.receive_response(answer(tx.request, status), 1.0)
    assert responses(lay.events()) == [status]
    assert tx.state is ClientState.COMPLETED
    for late in (100, 200, 500):  # retransmissions absorbed
        lay.receive_response(answer(tx.request, late), 2.0)
    assert lay.events() == []
    assert lay.next_deadline() == 6.0  # Timer K = T4
    assert run_until(lay, 100.0) == [(6.0, TransactionTerminated(tx))]


def test_non_invite_client_reliable_no_retransmissions_zero_k() -> None:
    lay, tx = client("OPTIONS", reliable=True)
    assert lay.next_deadline() == 32.0  # Timer F only
    lay.receive_response(answer(tx.request, 200), 1.0)
    assert kinds(lay.events()) == ["ResponseReceived", "TransactionTerminated"]
    assert lay.next_deadline() is None


@pytest.mark.parametrize("provisional", [False, True])
def test_non_invite_client_transport_error(provisional: bool) -> None:
    lay, tx = client("OPTIONS")
    if provisional:
        lay.receive_response(answer(tx.request, 100, None), 0.1)
        lay.events()
    lay.transport_error(tx, 0.2)
    assert lay.events() == [TransactionTimeout(tx, "transport"), TransactionTerminated(tx)]


def test_non_invite_client_transport_error_in_completed_is_ignored() -> None:
    lay, tx = client("OPTIONS")
    lay.receive_response(answer(tx.request, 200), 0.1)
    lay.events()
    lay.transport_error(tx, 0.2)
    assert lay.events() == []
    assert tx.state is ClientState.COMPLETED


# --- INVITE server transaction (§17.2.1, RFC 6026) ----------------------------------------


def test_invite_server_sends_100_trying_after_200_ms() -> None:
    lay = layer()
    lay.receive_request(request(), 0.0, context="src")
    events = lay.events()
    assert kinds(events) == ["RequestReceived"]
    tx = received(events)
    assert tx.state is ServerState.PROCEEDING
    assert tx.context == "src" and tx.cancels is None and not tx.rfc2543
    assert lay.next_deadline() == 0.2
    timed = run_until(lay, 100.0)
    assert len(timed) == 1 and timed[0][0] == 0.2
    trying = timed[0][1]
    assert isinstance(trying, SendResponse)
    assert trying.response.status == 100 and trying.context == "src"
    assert trying.response.to is not None and trying.response.to.tag is None
    assert tx.state is ServerState.PROCEEDING


def test_invite_server_100_trying_at_once_for_proxies() -> None:
    lay = layer(trying_delay=0.0)
    lay.receive_request(request(), 0.0)
    events = lay.events()
    assert kinds(events) == ["SendResponse", "RequestReceived"]
    assert responses(events) == [100]
    assert lay.next_deadline() is None


def test_invite_server_100_trying_can_be_disabled() -> None:
    lay = layer(trying_delay=None)
    lay.receive_request(request(), 0.0)
    assert kinds(lay.events()) == ["RequestReceived"]
    assert lay.next_deadline() is None
    lay.receive_request(request(), 0.5)  # retransmission, nothing to resend
    assert lay.events() == []


def test_invite_server_no_100_when_tu_answers_in_time() -> None:
    lay, tx = server()
    lay.send_response(tx, make_response(tx.request, 180, to_tag="x"), 0.1)
    assert responses(lay.events()) == [180]
    assert lay.next_deadline() is None
    assert run_until(lay, 1.0) == []


def test_invite_server_retransmission_resends_last_provisional() -> None:
    lay, tx = server()
    lay.receive_request(request(), 0.1)  # before any response: the 100 goes out now
    assert responses(lay.events()) == [100]
    assert lay.next_deadline() is None  # the 200 ms timer is gone
    lay.send_response(tx, make_response(tx.request, 180, to_tag="x"), 0.3)
    lay.events()
    lay.receive_request(request(), 0.5)
    events = lay.events()
    assert responses(events) == [180]
    assert isinstance(events[0], SendResponse) and events[0].response is tx.last_response


def test_invite_server_non_2xx_timer_g_caps_at_t2_until_timer_h() -> None:
    lay, tx = server()
    lay.send_response(tx, make_response(tx.request, 486, to_tag="x"), 1.0)
    assert responses(lay.events()) == [486]
    assert tx.state is ServerState.COMPLETED
    timed = run_until(lay, 100.0)
    # G: 0.5, 1, 2, 4, 4, 4... (capped at T2) from 1.0; H = 64*T1 = 32 s
    assert sent_responses(timed) == [1.5, 2.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5, 32.5]
    assert timed[-2] == (33.0, TransactionTimeout(tx, "timeout", "H"))
    assert timed[-1] == (33.0, TransactionTerminated(tx))


def test_invite_server_ack_confirms_and_timer_i_absorbs() -> None:
    lay, tx = server()
    final = make_response(tx.request, 603, to_tag="x")
    lay.send_response(tx, final, 1.0)
    lay.events()
    lay.receive_request(request(), 1.2)  # INVITE retransmission in Completed
    events = lay.events()
    assert isinstance(events[0], SendResponse) and events[0].response is final
    lay.receive_request(ack_for(tx.request, final), 1.3, context="src")
    assert lay.events() == []
    assert tx.state is ServerState.CONFIRMED
    assert lay.next_deadline() == pytest.approx(6.3)  # Timer I = T4; G and H stopped
    lay.receive_request(ack_for(tx.request, final), 1.4)
    lay.receive_request(request(), 1.5)
    assert lay.events() == []  # absorbed in Confirmed
    assert kinds([e for _, e in run_until(lay, 100.0)]) == ["TransactionTerminated"]


def test_invite_server_reliable_no_timer_g_zero_timer_i() -> None:
    lay, tx = server(reliable=True)
    final = make_response(tx.request, 486, to_tag="x")
    lay.send_response(tx, final, 1.0)
    lay.events()
    assert lay.next_deadline() == 33.0  # Timer H only
    lay.receive_request(ack_for(tx.request, final), 1.5)
    assert lay.events() == [TransactionTerminated(tx)]
    assert lay.next_deadline() is None


def test_invite_server_2xx_enters_accepted_with_timer_l() -> None:
    lay, tx = server()
    ok = make_response(tx.request, 200, to_tag="x")
    lay.send_response(tx, ok, 1.0)
    assert responses(lay.events()) == [200]
    assert tx.state is ServerState.ACCEPTED
    assert lay.next_deadline() == 33.0  # Timer L = 64*T1, no Timer G for 2xx
    lay.receive_request(request(), 1.2)  # INVITE retransmission: absorbed (RFC 6026)
    assert lay.events() == []
    lay.send_response(tx, ok, 1.5)  # the TU retransmits its 2xx through the transaction
    assert responses(lay.events()) == [200]
    with pytest.raises(LocalProtocolError):
        lay.send_response(tx, make_response(tx.request, 180, to_tag="x"), 1.6)
    with pytest.raises(LocalProtocolError):
        lay.send_response(tx, make_response(tx.request, 486, to_tag="x"), 1.6)
    # an ACK with the INVITE's branch in Accepted belongs to the TU
    ack = ack_for(tx.request, ok)
    lay.receive_request(ack, 2.0, context="peer")
    assert lay.events() == [AckReceived(ack, "peer")]
    assert tx.state is ServerState.ACCEPTED
    assert run_until(lay, 100.0) == [(33.0, TransactionTerminated(tx))]


def test_2xx_ack_with_its_own_branch_goes_to_the_tu() -> None:
    lay, tx = server()
    lay.send_response(tx, make_response(tx.request, 200, to_tag="x"), 1.0)
    lay.events()
    ack = request("ACK", "z9hG4bKnewbranch", to_tag="x")
    lay.receive_request(ack, 1.1, context="peer")
    assert lay.events() == [AckReceived(ack, "peer")]
    lay.receive_request(ack, 50.0, context="peer")  # also once the transaction is gone
    run_until(lay, 100.0)
    lay.receive_request(ack, 100.0, context="peer")
    assert lay.events() == [AckReceived(ack, "peer")]


def test_invite_server_ack_in_proceeding_is_ignored() -> None:
    lay, tx = server()
    lay.receive_request(request("ACK"), 0.1)
    assert lay.events() == []
    assert tx.state is ServerState.PROCEEDING


def test_invite_server_responses_after_the_final_are_misuse() -> None:
    lay, tx = server()
    final = make_response(tx.request, 486, to_tag="x")
    lay.send_response(tx, final, 1.0)
    for status in (180, 200, 500):
        with pytest.raises(LocalProtocolError):
            lay.send_response(tx, make_response(tx.request, status, to_tag="x"), 1.1)
    lay.receive_request(ack_for(tx.request, final), 1.2)
    with pytest.raises(LocalProtocolError):
        lay.send_response(tx, final, 1.3)  # Confirmed
    run_until(lay, 100.0)
    with pytest.raises(LocalProtocolError):
        lay.send_response(tx, final, 100.0)  # Terminated


@pytest.mark.parametrize("status", [None, 486, 200])
def test_invite_server_transport_error(status: int | None) -> None:
    lay, tx = server()
    if status is not None:
        lay.send_response(tx, make_response(tx.request, status, to_tag="x"), 0.1)
        lay.events()
    lay.transport_error(tx, 0.2)
    assert lay.events() == [TransactionTimeout(tx, "transport"), TransactionTerminated(tx)]
    assert lay.next_deadline() is None


def test_invite_server_transport_error_in_confirmed_is_ignored() -> None:
    lay, tx = server()
    final = make_response(tx.request, 486, to_tag="x")
    lay.send_response(tx, final, 0.1)
    lay.receive_request(ack_for(tx.request, final), 0.2)
    lay.events()
    lay.transport_error(tx, 0.3)
    assert lay.events() == []
    assert tx.state is ServerState.CONFIRMED


# --- non-INVITE server transaction (§17.2.2) -------------------------------------------


def test_non_invite_server_full_cycle_unreliable() -> None:
    lay, tx = server("OPTIONS")
    assert tx.state is ServerState.TRYING
    assert lay.next_deadline() is None  # no automatic 100 for non-INVITE
    lay.receive_request(request("OPTIONS"), 0.5)  # Trying: absorbed, nothing to resend
    assert lay.events() == []
    lay.send_response(tx, make_response(tx.request, 100), 0.6)
    assert tx.state is ServerState.PROCEEDING
    lay.send_response(tx, make_response(tx.request, 101), 0.7)
    assert responses(lay.events()) == [100, 101]
    lay.receive_request(request("OPTIONS"), 1.0)
    assert responses(lay.events()) == [101]
    lay.send_response(tx, make_response(tx.request, 200, to_tag="x"), 2.0)
    assert responses(lay.events()) == [200]
    assert tx.state is ServerState.COMPLETED
    lay.receive_request(request("OPTIONS"), 3.0)
    assert responses(lay.events()) == [200]
    with pytest.raises(LocalProtocolError):
        lay.send_response(tx, make_response(tx.request, 500, to_tag="x"), 3.1)
    assert lay.next_deadline() == 34.0  # Timer J = 64*T1
    assert run_until(lay, 100.0) == [(34.0, TransactionTerminated(tx))]
    # a retransmission after Timer J is a new request for the TU
    lay.receive_request(request("OPTIONS"), 100.0)
    assert kinds(lay.events()) == ["RequestReceived"]


@pytest.mark.parametrize("status", [202, 486])
@pytest.mark.parametrize("provisional", [False, True])
def test_non_invite_server_final_from_trying_and_proceeding(status: int, provisional: bool) -> None:
    lay, tx = server("BYE")
    if provisional:
        lay.send_response(tx, make_response(tx.request, 100), 0.1)
    lay.send_response(tx, make_response(tx.request, status, to_tag="x"), 0.2)
    assert tx.state is ServerState.COMPLETED
    assert responses(lay.events())[-1] == status


def test_non_invite_server_reliable_zero_timer_j() -> None:
    lay, tx = server("OPTIONS", reliable=True)
    lay.send_response(tx, make_response(tx.request, 200, to_tag="x"), 0.2)
    assert kinds(lay.events()) == ["SendResponse", "TransactionTerminated"]
    assert lay.next_deadline() is None


@pytest.mark.parametrize("status", [100, 200])
def test_non_invite_server_transport_error(status: int) -> None:
    lay, tx = server("OPTIONS")
    lay.send_response(tx, make_response(tx.request, status, to_tag="x"), 0.1)
    lay.events()
    lay.transport_error(tx, 0.2)
    assert lay.events() == [TransactionTimeout(tx, "transport"), TransactionTerminated(tx)]


def test_non_invite_server_transport_error_in_trying_is_ignored() -> None:
    lay, tx = server("OPTIONS")
    lay.transport_error(tx, 0.2)
    assert lay.events() == []
    assert tx.state is ServerState.TRYING


# --- client matching (§17.1.3), branches, misuse -----------------------------------------


def test_client_matching_uses_branch_and_cseq_method() -> None:
    lay, tx = client()
    lay.receive_response(answer(tx.request, 180), 0.1)
    lay.events()
    ctx = lay.cancel(tx, 0.2)
    lay.events()
    # 200 to the CANCEL has the INVITE's branch but goes to the CANCEL transaction
    lay.receive_response(answer(ctx.request, 200), 0.3)
    events = lay.events()
    assert len(events) == 1 and isinstance(events[0], ResponseReceived)
    assert events[0].transaction is ctx
    lay.receive_response(answer(tx.request, 487), 0.4)
    events = lay.events()
    assert isinstance(events[1], ResponseReceived) and events[1].transaction is tx


def test_unmatched_responses_are_stray() -> None:
    lay, tx = client()
    other = request(branch="z9hG4bKother")
    wrong_method = request("OPTIONS", branch=tx.branch)
    for req in (other, wrong_method):
        response = answer(req, 200)
        lay.receive_response(response, 0.1)
        assert lay.events() == [StrayResponse(response)]
    assert tx.state is ClientState.CALLING


def test_malformed_responses_are_dropped() -> None:
    lay, tx = client()
    response = make_response(tx.request, 200)
    response.headers.remove("CSeq")
    lay.receive_response(response, 0.1)
    response = make_response(tx.request, 200)
    response.headers.remove("Via")
    lay.receive_response(response, 0.1)
    response = make_response(tx.request, 200)
    response.headers.set("CSeq", "garbage")
    lay.receive_response(response, 0.1)
    assert lay.events() == []
    assert tx.state is ClientState.CALLING


def test_branch_is_generated_when_missing() -> None:
    lay = TransactionLayer(rng=random.Random(1))
    tx = lay.send_request(request("OPTIONS", branch=None), 0.0)
    via = tx.request.top_via
    assert via is not None and via.branch == tx.branch
    assert tx.branch.startswith("z9hG4bK") and len(tx.branch) > 7 + 8
    again = TransactionLayer(rng=random.Random(1)).send_request(
        request("OPTIONS", branch=None), 0.0
    )
    assert again.branch == tx.branch  # reproducible with an injected rng
    lay2 = TransactionLayer(branch_factory=lambda: "z9hG4bKfixed")
    assert lay2.send_request(request("OPTIONS", branch=None), 0.0).branch == "z9hG4bKfixed"
    assert str(tx.request.top_via) == "SIP/2.0/UDP pc33.atlanta.com;branch=" + tx.branch


def test_send_request_misuse() -> None:
    lay = layer()
    with pytest.raises(LocalProtocolError):
        lay.send_request(request("ACK"), 0.0)
    no_via = request("OPTIONS")
    no_via.headers.remove("Via")
    with pytest.raises(LocalProtocolError):
        lay.send_request(no_via, 0.0)
    no_cseq = request("OPTIONS")
    no_cseq.headers.remove("CSeq")
    with pytest.raises(LocalProtocolError):
        lay.send_request(no_cseq, 0.0)
    with pytest.raises(LocalProtocolError):
        lay.send_request(request("OPTIONS", branch="1234"), 0.0)  # no magic cookie
    with pytest.raises(LocalProtocolError):
        lay.send_request(request("OPTIONS", branch="z9hG4bK"), 0.0)
    lay.send_request(request("OPTIONS"), 0.0)
    with pytest.raises(LocalProtocolError):
        lay.send_request(request("OPTIONS"), 0.0)  # same branch and method
    lay.send_request(request("INVITE"), 0.0)  # same branch, other method: fine


def test_transactions_belong_to_their_layer() -> None:
    lay, tx = client()
    _, stx = server()
    other = layer()
    with pytest.raises(LocalProtocolError):
        other.cancel(tx, 0.0)
    with pytest.raises(LocalProtocolError):
        other.transport_error(tx, 0.0)
    with pytest.raises(LocalProtocolError):
        other.send_response(stx, make_response(stx.request, 200), 0.0)
    with pytest.raises(LocalProtocolError):
        lay.send_response(stx, make_response(stx.request, 999), 0.0)


# --- CANCEL (§9.1 client side) -----------------------------------------------------------


def test_cancel_after_provisional_is_sent_at_once() -> None:
    lay, tx = client()
    lay.receive_response(answer(tx.request, 180), 0.1)
    lay.events()
    ctx = lay.cancel(tx, 0.2)
    assert tx.cancel is ctx and ctx.cancels is tx
    events = lay.events()
    assert len(events) == 1 and isinstance(events[0], SendRequest)
    cancel = events[0].request
    assert cancel.method == "CANCEL" and events[0].context == "dest"
    assert str(cancel.cseq) == "314159 CANCEL"
    assert cancel.top_via == tx.request.top_via and cancel.uri == tx.request.uri
    assert ctx.state is ClientState.TRYING and ctx.branch == tx.branch
    assert lay.next_deadline() == pytest.approx(0.7)  # the CANCEL's own Timer E
    with pytest.raises(LocalProtocolError):
        lay.cancel(tx, 0.3)


def test_cancel_before_provisional_waits_for_one() -> None:
    lay, tx = client()
    ctx = lay.cancel(tx, 0.1)
    assert ctx.state is ClientState.INIT
    assert lay.events() == []  # §9.1: not before a provisional response
    timed = run_until(lay, 0.6)
    assert [e.request.method for _, e in timed if isinstance(e, SendRequest)] == ["INVITE"]
    lay.receive_response(answer(tx.request, 100, None), 0.7)
    events = lay.events()
    assert kinds(events) == ["ResponseReceived", "SendRequest"]
    assert isinstance(events[1], SendRequest) and events[1].transaction is ctx
    assert ctx.state is ClientState.TRYING


@pytest.mark.parametrize("status", [200, 486])
def test_held_cancel_is_dropped_when_the_invite_ends(status: int) -> None:
    lay, tx = client()
    ctx = lay.cancel(tx, 0.1)
    lay.receive_response(answer(tx.request, status), 0.2)
    events = lay.events()
    assert TransactionTerminated(ctx) in events
    assert not any(isinstance(e, SendRequest) and e.transaction is ctx for e in events)
    assert ctx.state is ClientState.TERMINATED


def test_held_cancel_is_dropped_on_timer_b() -> None:
    lay, tx = client()
    ctx = lay.cancel(tx, 0.1)
    timed = run_until(lay, 100.0)
    assert (32.0, TransactionTerminated(ctx)) in timed
    assert (32.0, TransactionTimeout(tx, "timeout", "B")) in timed
    assert lay.transaction_count == 0


def test_cancel_misuse() -> None:
    lay, tx = client("OPTIONS")
    with pytest.raises(LocalProtocolError):
        lay.cancel(tx, 0.1)  # only INVITE (§9.1)
    lay, tx = client()
    lay.receive_response(answer(tx.request, 486), 0.1)
    with pytest.raises(LocalProtocolError):
        lay.cancel(tx, 0.2)  # already has a final response
    lay, tx = client()
    lay.send_request(request("CANCEL", branch=tx.branch), 0.1)
    with pytest.raises(LocalProtocolError):
        lay.cancel(tx, 0.2)  # a CANCEL with this branch exists


# --- server matching (§17.2.3, §9.2) ------------------------------------------------------


def test_server_matching_uses_branch_sent_by_and_method() -> None:
    lay, tx = server()
    lay.receive_request(request(host="other.example.com"), 0.1)  # same branch, other sent-by
    lay.receive_request(request("OPTIONS"), 0.1)  # same branch, other method
    events = [e for e in lay.events() if isinstance(e, RequestReceived)]
    assert len(events) == 2 and all(e.transaction is not tx for e in events)
    lay.receive_request(request(host="PC33.Atlanta.COM"), 0.15)  # host is case-insensitive
    assert kinds(lay.events()) == ["SendResponse"]  # retransmission: the 100 goes out
    assert lay.transaction_count == 3


def test_cancel_matches_the_invite_server_transaction() -> None:
    lay, invite_tx = server()
    lay.receive_request(request("CANCEL"), 0.1, context="src")
    events = lay.events()
    assert kinds(events) == ["RequestReceived"]
    cancel_tx = received(events)
    assert cancel_tx.cancels is invite_tx and cancel_tx.method == "CANCEL"
    # the TU: 200 to the CANCEL, 487 to the INVITE
    lay.send_response(cancel_tx, make_response(cancel_tx.request, 200, to_tag="x"), 0.15)
    terminated = make_response(invite_tx.request, 487, to_tag="x")
    lay.send_response(invite_tx, terminated, 0.15)
    assert responses(lay.events()) == [200, 487]
    lay.receive_request(request("CANCEL"), 0.2)  # retransmitted CANCEL
    assert responses(lay.events()) == [200]
    lay.receive_request(ack_for(invite_tx.request, terminated), 0.3)
    assert invite_tx.state is ServerState.CONFIRMED


def test_cancel_without_transaction_gets_481() -> None:
    lay = layer()
    lay.receive_request(request("CANCEL"), 0.0, context="src")
    events = lay.events()
    assert kinds(events) == ["SendResponse"]
    first = events[0]
    assert isinstance(first, SendResponse)
    assert first.response.status == 481 and first.context == "src"
    assert first.response.to is not None and first.response.to.tag is not None
    lay.receive_request(request("CANCEL"), 0.5)
    assert responses(lay.events()) == [481]
    assert run_until(lay, 100.0) == [(32.0, TransactionTerminated(first.transaction))]


def test_cancel_after_final_response_still_reaches_the_tu() -> None:
    lay, invite_tx = server()
    lay.send_response(invite_tx, make_response(invite_tx.request, 200, to_tag="x"), 0.1)
    lay.receive_request(request("CANCEL"), 0.2)
    events = [e for e in lay.events() if isinstance(e, RequestReceived)]
    assert events[0].transaction.cancels is invite_tx  # the TU answers 200, no effect


def test_rfc2543_fallback_matching() -> None:
    data = (RFC4475 / "inv2543.dat").read_bytes()
    lay = layer()
    lay.receive_request(parse_request(data), 0.0)
    events = lay.events()
    assert kinds(events) == ["RequestReceived"]
    tx = received(events)
    assert tx.rfc2543
    lay.receive_request(parse_request(data), 0.1)
    assert responses(lay.events()) == [100]  # a retransmission, not a new request
    final = make_response(tx.request, 486, to_tag="t2543")
    lay.send_response(tx, final, 0.2)
    lay.events()
    # an ACK whose To tag is not the one we sent does not match (§17.2.3)
    wrong = make_ack(tx.request, make_response(tx.request, 486, to_tag="other"))
    lay.receive_request(wrong, 0.3)
    assert lay.events() == [AckReceived(wrong, None)]
    assert tx.state is ServerState.COMPLETED
    lay.receive_request(make_ack(tx.request, final), 0.4)
    assert lay.events() == []
    assert tx.state is ServerState.CONFIRMED
    run_until(lay, 100.0)
    assert lay.transaction_count == 0
    assert lay._servers == {}  # the ACK alias key is gone too


def test_rfc2543_cancel_matches_invite() -> None:
    lay = layer()
    invite = request(branch=None)
    lay.receive_request(invite, 0.0)
    (invite_tx,) = [e.transaction for e in lay.events() if isinstance(e, RequestReceived)]
    lay.receive_request(request("CANCEL", branch=None), 0.1)
    (cancel_tx,) = [e.transaction for e in lay.events() if isinstance(e, RequestReceived)]
    assert cancel_tx.cancels is invite_tx and cancel_tx.rfc2543
    # differing in any of the RFC 2543 fields: no match, 481
    lay.receive_request(request("CANCEL", branch=None, call_id="other"), 0.2)
    assert responses(lay.events()) == [481]


def test_rfc4475_bare_magic_cookie_is_matched_rfc2543_style() -> None:
    """RFC 4475 §3.2.1: branch=z9hG4bK alone; we fall back to RFC 2543 matching."""
    data = (RFC4475 / "badbranch.dat").read_bytes()
    lay = layer()
    lay.receive_request(parse_request(data), 0.0)
    events = lay.events()
    assert kinds(events) == ["RequestReceived"]
    tx = received(events)
    assert tx.rfc2543
    lay.receive_request(parse_request(data), 0.1)
    assert lay.events() == []  # retransmission absorbed
    # another request with the same empty branch is another transaction
    other = data.replace(b"badbranch.sadonfo23i420jv0as0derf3j3n", b"other-call-id")
    lay.receive_request(parse_request(other), 0.2)
    assert kinds(lay.events()) == ["RequestReceived"]
    lay.send_response(tx, make_response(tx.request, 200, to_tag="x"), 0.3)
    assert responses(lay.events()) == [200]


def test_malformed_requests_are_dropped() -> None:
    lay = layer()
    no_via = request()
    no_via.headers.remove("Via")
    no_cseq = request()
    no_cseq.headers.remove("CSeq")
    bad_to = request(branch=None)
    bad_to.headers.set("To", "<<<")
    for req in (no_via, no_cseq, bad_to):
        lay.receive_request(req, 0.0)
    assert lay.events() == []
    assert lay.transaction_count == 0


# --- timers heap --------------------------------------------------------------------------


def test_next_deadline_skips_cancelled_timers() -> None:
    lay, tx = client("OPTIONS")
    assert lay.next_deadline() == 0.5
    lay.receive_response(answer(tx.request, 200), 0.1)
    assert lay.next_deadline() == pytest.approx(5.1)  # E and F cancelled, K remains


def test_many_cancelled_timers_are_compacted() -> None:
    lay = layer()
    for i in range(3000):
        tx = lay.send_request(request("OPTIONS", branch=f"z9hG4bK{i}"), 0.0, reliable=True)
        lay.receive_response(answer(tx.request, 200), 0.0)
    assert lay.transaction_count == 0
    assert len(lay._heap) < 3000
    assert lay.next_deadline() is None


def test_compaction_while_timers_fire() -> None:
    lay = layer()
    for i in range(3000):
        lay.send_request(request(branch=f"z9hG4bK{i}"), 0.0)
    lay.events()
    timed = run_until(lay, 40.0)  # Timer B kills each; their Timer A entries die on the heap
    timeouts = [e for _, e in timed if isinstance(e, TransactionTimeout)]
    assert len(timeouts) == 3000
    assert {t for t, e in timed if isinstance(e, TransactionTimeout)} == {32.0}
    assert lay.transaction_count == 0
    assert lay.next_deadline() is None and lay._heap == []


# --- two layers over a lossy link ---------------------------------------------------------


@dataclass
class Call:
    """Minimal TUs on both sides: the callee answers 180 then ``status``; the caller ACKs
    a 2xx itself and hangs up with BYE; the callee retransmits its 2xx until the ACK."""

    status: int
    caller_done: list[str] = field(default_factory=list)
    callee_done: list[str] = field(default_factory=list)
    timeouts: list[TransactionTimeout] = field(default_factory=list)


class LossyNet:
    """Two layers joined by a link dropping every other message in each direction
    (deterministic: the 2nd, 4th, 6th... message from Alice to Bob, and from Bob to Alice)."""

    def __init__(self, drop: Callable[[int], bool] = lambda n: n % 2 == 1) -> None:
        self.now = 0.0
        self.alice = layer()
        self.bob = layer()
        self.drop = drop
        self.count = 0
        self.per_direction: dict[int, int] = {}
        self.delivered: list[str] = []
        # TU timers: (when, action)
        self.tu_timers: list[tuple[float, Callable[[], None]]] = []

    def send(self, to: TransactionLayer, message: Request | Response) -> None:
        self.count += 1
        direction = self.per_direction[id(to)] = self.per_direction.get(id(to), 0) + 1
        if self.drop(direction):
            return
        copy = wire(message)
        self.delivered.append(
            copy.method if isinstance(copy, Request) else f"{copy.status} {copy.cseq}"
        )
        if isinstance(copy, Request):
            to.receive_request(copy, self.now, context="peer")
        else:
            to.receive_response(copy, self.now)

    def step(self) -> bool:
        """Advance to the next deadline and fire it; False when nothing is left."""
        candidates = [
            d for d in (self.alice.next_deadline(), self.bob.next_deadline()) if d is not None
        ]
        candidates += [t for t, _ in self.tu_timers]
        if not candidates:
            return False
        self.now = max(self.now, min(candidates))
        due = [a for t, a in self.tu_timers if t <= self.now]
        self.tu_timers = [(t, a) for t, a in self.tu_timers if t > self.now]
        for action in due:
            action()
        self.alice.handle_timers(self.now)
        self.bob.handle_timers(self.now)
        return True


def run_call(net: LossyNet, call: Call) -> None:
    alice, bob = net.alice, net.bob
    invite = request(branch=None, call_id=f"call-{call.status}")
    acked: list[bool] = []
    invite_tx = alice.send_request(invite, net.now, context="bob")

    def pump() -> None:
        moved = True
        while moved:
            moved = False
            for ev in alice.events():
                moved = True
                if isinstance(ev, SendRequest):
                    net.send(bob, ev.request)
                elif isinstance(ev, ResponseReceived) and ev.transaction is invite_tx:
                    status = ev.response.status
                    if 200 <= status < 300:  # the TU ACKs every 2xx (§13.2.2.4)
                        ack = make_ack(invite, ev.response)
                        ack.headers.set(
                            "Via", f"SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKack{status}"
                        )
                        net.send(bob, ack)
                        if "answered" not in call.caller_done:
                            call.caller_done.append("answered")
                            bye = request("BYE", branch=None, call_id=invite.call_id or "", seq=2)
                            alice.send_request(bye, net.now, context="bob")
                    elif status >= 300:
                        call.caller_done.append(f"rejected {status}")
                elif isinstance(ev, ResponseReceived) and ev.transaction.method == "BYE":
                    call.caller_done.append("bye done")
                elif isinstance(ev, TransactionTimeout):
                    call.timeouts.append(ev)
            for ev in bob.events():
                moved = True
                if isinstance(ev, SendResponse):
                    net.send(alice, ev.response)
                elif isinstance(ev, RequestReceived):
                    tx = ev.transaction
                    if tx.method == "INVITE":
                        bob.send_response(tx, make_response(tx.request, 180, to_tag="b"), net.now)
                        final = make_response(tx.request, call.status, to_tag="b")
                        bob.send_response(tx, final, net.now)
                        if call.status < 300:
                            schedule_2xx(tx, final, 0.5)
                    elif tx.method == "BYE":
                        bob.send_response(tx, make_response(tx.request, 200, to_tag="b"), net.now)
                        call.callee_done.append("bye")
                elif isinstance(ev, AckReceived):
                    acked.append(True)
                    call.callee_done.append("acked")
                elif isinstance(ev, TransactionTimeout):
                    call.timeouts.append(ev)

    def schedule_2xx(tx: ServerTransaction, final: Response, interval: float) -> None:
        def retransmit() -> None:
            if acked or tx.state is not ServerState.ACCEPTED:
                return
            bob.send_response(tx, final, net.now)  # §13.3.1.4: T1, 2*T1, ... up to T2
            schedule_2xx(tx, final, min(2 * interval, 4.0))

        net.tu_timers.append((net.now + interval, retransmit))

    pump()
    while net.step():
        pump()


@pytest.mark.parametrize("status", [200, 486])
def test_calls_complete_over_a_link_dropping_every_other_message(status: int) -> None:
    net = LossyNet()
    call = Call(status)
    run_call(net, call)
    if status == 200:
        assert call.caller_done == ["answered", "bye done"]
        assert "acked" in call.callee_done and "bye" in call.callee_done
    else:
        assert call.caller_done == ["rejected 486"]
        assert "ACK" in net.delivered
    assert call.timeouts == []  # the ACK of the 486 made it: no Timer H
    assert net.count > len(net.delivered)  # messages were indeed lost
    assert net.alice.transaction_count == 0 and net.bob.transaction_count == 0
    assert net.now < 70.0


def test_calls_complete_over_a_lossless_link_quickly() -> None:
    net = LossyNet(drop=lambda n: False)
    call = Call(200)
    run_call(net, call)
    assert call.caller_done == ["answered", "bye done"]
    assert net.delivered[:4] == ["INVITE", "180 314159 INVITE", "200 314159 INVITE", "ACK"]


# --- property: random event sequences -------------------------------------------------------

BRANCHES = ["z9hG4bKa", "z9hG4bKb", "z9hG4bK", None]
METHODS = ["INVITE", "OPTIONS", "BYE", "CANCEL", "ACK"]
STATUSES = [100, 180, 200, 202, 302, 404, 486, 487, 500, 603]

actions = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.sampled_from(METHODS[:3]), st.booleans()),
        st.tuples(st.just("cancel"), st.integers(0, 20)),
        st.tuples(st.just("rx_response"), st.integers(0, 20), st.sampled_from(STATUSES)),
        st.tuples(st.just("stray"), st.sampled_from(STATUSES)),
        st.tuples(
            st.just("rx_request"),
            st.sampled_from(METHODS),
            st.sampled_from(BRANCHES),
            st.booleans(),
        ),
        st.tuples(st.just("respond"), st.integers(0, 20), st.sampled_from(STATUSES)),
        st.tuples(st.just("transport_error"), st.integers(0, 40)),
        st.tuples(st.just("advance"), st.floats(0.0, 40.0)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions)
def test_random_event_sequences_keep_the_invariants(ops: list[tuple[object, ...]]) -> None:
    lay = layer()
    now = 0.0
    clients: list[ClientTransaction] = []
    servers: list[ServerTransaction] = []
    terminated: set[ClientTransaction | ServerTransaction] = set()  # keeps them alive
    seq = 0

    def drain() -> None:
        for event in lay.events():
            if isinstance(event, RequestReceived):
                servers.append(event.transaction)
            elif isinstance(event, TransactionTerminated):
                tx = event.transaction
                assert tx not in terminated, "terminated twice"
                terminated.add(tx)
                assert tx.state == "Terminated"
            elif isinstance(event, SendRequest | ResponseReceived):
                assert event.transaction not in terminated
        for tx in lay._clients.values():
            assert tx.state != "Terminated"
        for stx in lay._servers.values():
            assert stx.state != "Terminated"

    for op in ops:
        match op:
            case ("send", str(method), bool(reliable)):
                seq += 1
                req = request(method, branch=None, seq=seq)
                clients.append(lay.send_request(req, now, reliable=reliable))
            case ("cancel", int(i)) if clients:
                with contextlib.suppress(LocalProtocolError):  # misuse is allowed to raise
                    clients.append(lay.cancel(clients[i % len(clients)], now))
            case ("rx_response", int(i), int(status)) if clients:
                lay.receive_response(answer(clients[i % len(clients)].request, status), now)
            case ("stray", int(status)):
                lay.receive_response(answer(request(), status), now)
            case ("rx_request", str(method), branch, bool(reliable)):
                assert branch is None or isinstance(branch, str)
                lay.receive_request(request(method, branch), now, reliable=reliable)
            case ("respond", int(i), int(status)) if servers:
                stx = servers[i % len(servers)]
                with contextlib.suppress(LocalProtocolError):
                    lay.send_response(stx, make_response(stx.request, status, to_tag="t"), now)
            case ("transport_error", int(i)) if clients or servers:
                every: list[ClientTransaction | ServerTransaction] = [*clients, *servers]
                lay.transport_error(every[i % len(every)], now)
            case ("advance", float(delta)):
                now += delta
                lay.handle_timers(now)
        drain()

    # the peers and the TU eventually answer: every transaction must then terminate
    for tx in clients:
        if tx.state in (ClientState.CALLING, ClientState.PROCEEDING):
            lay.receive_response(answer(tx.request, 487), now)
    for stx in servers:
        if stx.state in (ServerState.TRYING, ServerState.PROCEEDING):
            lay.send_response(stx, make_response(stx.request, 500, to_tag="t"), now)
    drain()
    while (deadline := lay.next_deadline()) is not None:
        assert deadline >= now
        now = deadline
        lay.handle_timers(now)
        drain()
    assert lay.transaction_count == 0
    assert lay._heap == []
    for tx in clients:
        assert tx.state is ClientState.TERMINATED
