"""Outbound routing with a fake clock and a seeded rng: route match, health order, spreading,
MaxConcurrentSessions, the failover sequence, and the appliance's capacity and drain."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from hybridvoice.cms.settings import Gateway, parse_settings
from hybridvoice.mediation.routing import (
    Answered,
    Attempt,
    CallAdmission,
    NoGatewayLeft,
    OutboundCall,
    OutboundRouter,
    Refusal,
    Rejected,
)
from hybridvoice.mediation.trunks import TrunkTable

ROUTES = {"LocalRoute": r"^\+31", "US": r"^\+1\d{10}$", "Any": ".*"}


def router(
    *gateways: Gateway, seed: int = 7, fast_failover: bool = True, unhealthy_last: bool = False
) -> OutboundRouter:
    trunks = TrunkTable(gateways, unhealthy_after=1)
    return OutboundRouter(
        trunks,
        ROUTES,
        rng=random.Random(seed),
        fast_failover=fast_failover,
        try_unhealthy_last=unhealthy_last,
    )


def gw(n: int, routes: tuple[str, ...] = ("Any",), **kw: Any) -> Gateway:
    return Gateway(name=f"Gateway{n}", ip=f"10.0.0.{n}", voice_routes=routes, **kw)


def attempt(outcome: object) -> Attempt:
    assert isinstance(outcome, Attempt), outcome
    return outcome


# --- matching ---------------------------------------------------------------------------------


def test_routes_match_the_destination_number_only() -> None:
    r = router(gw(1, ("LocalRoute",)), gw(2, ("US",)), gw(3, ("LocalRoute", "US")))
    assert [g.name for g in r.candidates("+31201234567")] == ["Gateway1", "Gateway3"]
    assert [g.name for g in r.candidates("+12065550100")] == ["Gateway2", "Gateway3"]
    assert r.candidates("+120655501001") == ()  # the US route is anchored at both ends
    assert r.candidates("+44201234567") == ()


def test_disabled_gateways_are_not_candidates() -> None:
    r = router(gw(1), gw(2, enabled=False))
    assert [g.name for g in r.candidates("+1")] == ["Gateway1"]


def test_no_route_is_a_clear_404() -> None:
    r = router(gw(1, ("US",)))
    _, outcome = r.start("+44201234567", 0.0)
    assert outcome == NoGatewayLeft(404, "no voice route matches +44201234567", ())


def test_from_settings_uses_trunk_configuration() -> None:
    s = parse_settings(
        {
            "Common": {"SIPDomains": "a.com", "SiteName": "x"},
            "Gateway1": {"IP": "10.0.0.1", "VoiceRoutes": "LocalRoute"},
            "HybridVoiceRoutes": {"LocalRoute": ".*"},
            "TrunkConfiguration": {"EnableFastFailoverTimer": False},
        }
    )
    r = OutboundRouter.from_settings(s, TrunkTable.from_settings(s), random.Random(1))
    _, outcome = r.start("+3120", 5.0)
    assert attempt(outcome).deadline is None and not r.fast_failover


# --- order: health, capacity, spreading -------------------------------------------------------


def test_healthy_first_unhealthy_last() -> None:
    r = router(gw(1), gw(2), unhealthy_last=True)
    r.trunks.options_failed("Gateway1", 0.0, "no answer")  # down (threshold 1)
    call, first = r.start("+3120", 0.0)
    assert attempt(first).gateway.name == "Gateway2"
    second = call.final(503, 1.0)
    assert attempt(second).gateway.name == "Gateway1"  # tried last, as Direct Routing does


def test_unhealthy_never_by_default() -> None:
    r = router(gw(1), gw(2))
    r.trunks.options_failed("Gateway1", 0.0, "no answer")
    call, first = r.start("+3120", 0.0)
    assert attempt(first).gateway.name == "Gateway2"
    last = call.final(503, 1.0)
    assert isinstance(last, NoGatewayLeft) and last.status == 503
    assert last.cause == "no gateway left for +3120 (Gateway2: 503; down: Gateway1)"


def test_short_calls_spread_evenly() -> None:
    """Calls that end before the next starts: every choice is a random tie-break."""
    r = router(gw(1), gw(2), gw(3), seed=2024)
    counts: Counter[str] = Counter()
    for i in range(30_000):
        call, outcome = r.start("+3120", float(i))
        counts[attempt(outcome).gateway.name] += 1
        call.final(200, float(i))
        call.ended()
    # 10,000 expected each; 3 sigma of a binomial(30000, 1/3) is about 245
    assert all(abs(n - 10_000) < 300 for n in counts.values()), counts
    assert all(g.active_calls == 0 for g in r.trunks)
    assert [g.calls_total for g in r.trunks] == [counts[f"Gateway{n}"] for n in (1, 2, 3)]


def test_long_calls_spread_exactly_by_least_active() -> None:
    r = router(gw(1), gw(2), gw(3), gw(4))
    for i in range(400):
        call, outcome = r.start("+3120", float(i))
        assert isinstance(call.final(200, float(i)), Answered)
        assert isinstance(outcome, Attempt)
    assert [g.active_calls for g in r.trunks] == [100, 100, 100, 100]


def test_max_concurrent_sessions_respected() -> None:
    r = router(gw(1, max_concurrent_sessions=2), gw(2, max_concurrent_sessions=3))
    calls = []
    for i in range(5):
        call, outcome = r.start("+3120", float(i))
        attempt(outcome)
        calls.append(call)
    assert [g.active_calls for g in r.trunks] == [2, 3]
    _, refused = r.start("+3120", 9.0)
    assert isinstance(refused, NoGatewayLeft) and refused.status == 503
    assert refused.cause == (
        "no gateway left for +3120 (at MaxConcurrentSessions: Gateway1, Gateway2)"
    )
    calls[0].ended()
    _, again = r.start("+3120", 10.0)
    assert attempt(again).gateway.active_calls <= 3


# --- failover for one call --------------------------------------------------------------------


def test_failover_sequence_code_transport_timer_then_nothing_left() -> None:
    r = router(gw(1), gw(2), gw(3), seed=1)
    call, first = r.start("+3120", 100.0)
    a1 = attempt(first)
    assert a1.number == 1 and a1.deadline == 110.0
    a2 = attempt(call.final(503, 101.0))
    assert a2.number == 2 and a2.gateway is not a1.gateway and a2.deadline == 111.0
    a3 = attempt(call.transport_error(102.0))
    assert a3.number == 3 and a3.deadline == 112.0
    call.provisional(100, 103.0)  # 100 Trying does not stop the fast-failover timer
    assert call.timer_fired(111.9) is None  # early: stale
    end = call.timer_fired(112.0)
    assert isinstance(end, NoGatewayLeft) and end.status == 503
    names = [a1.gateway.name, a2.gateway.name, a3.gateway.name]
    assert sorted(names) == ["Gateway1", "Gateway2", "Gateway3"]
    assert [(x.gateway, x.outcome) for x in end.attempts] == list(
        zip(names, ["503", "transport error", "no answer in 10 s"], strict=True)
    )
    assert end.cause.startswith("no gateway left for +3120 (")
    assert [g.calls_failed for g in r.trunks] == [1, 1, 1]
    assert [g.active_calls for g in r.trunks] == [0, 0, 0]


def test_ringing_stops_the_fast_failover_timer() -> None:
    r = router(gw(1), gw(2))
    call, first = r.start("+3120", 0.0)
    assert attempt(first).deadline == 10.0
    call.provisional(180, 2.0)
    assert call.deadline is None
    assert call.timer_fired(10.0) is None
    answered = call.final(200, 30.0)
    assert isinstance(answered, Answered) and answered.gateway is attempt(first).gateway
    assert answered.gateway.active_calls == 1
    with pytest.raises(RuntimeError, match="answered"):
        call.transport_error(31.0)  # a broken connection after answer is the B2BUA's BYE
    call.ended()
    assert answered.gateway.active_calls == 0 and answered.gateway.calls_failed == 0


def test_a_gateway_marked_down_while_ringing_moves_the_call_on() -> None:
    r = router(gw(1), gw(2))
    call, first = r.start("+3120", 0.0)
    ringing = attempt(first).gateway
    call.provisional(180, 1.0)
    other = "Gateway2" if ringing.name == "Gateway1" else "Gateway1"
    assert call.gateway_down(other, "OPTIONS: timeout", 5.0) is None  # not the pending one
    nxt = attempt(call.gateway_down(ringing.name, "OPTIONS: timeout", 5.0))
    assert nxt.gateway.name == other and nxt.deadline == 15.0
    assert ringing.active_calls == 0 and ringing.calls_failed == 1
    assert "marked down" in call.history[-1].outcome
    assert call.final(200, 6.0) is not None
    assert call.gateway_down(other, "OPTIONS: timeout", 7.0) is None  # answered: left alone


def test_no_fast_failover_timer_when_disabled() -> None:
    r = router(gw(1), fast_failover=False)
    call, first = r.start("+3120", 0.0)
    assert attempt(first).deadline is None
    assert call.timer_fired(1e9) is None


def test_failover_time_per_gateway() -> None:
    r = router(gw(1, failover_time_seconds=2.5))
    _, first = r.start("+3120", 10.0)
    assert attempt(first).deadline == 12.5


def test_other_final_responses_are_passed_to_the_caller() -> None:
    r = router(gw(1), gw(2))
    call, first = r.start("+3120", 0.0)
    rejected = call.final(486, 1.0)
    assert isinstance(rejected, Rejected) and rejected.status == 486
    assert rejected.gateway is attempt(first).gateway
    assert rejected.gateway.active_calls == 0 and rejected.gateway.calls_failed == 0
    assert call.attempts == 1
    with pytest.raises(RuntimeError, match="no attempt"):
        call.final(200, 2.0)


def test_failover_codes_are_per_gateway() -> None:
    r = router(gw(1, failover_response_codes=(480,)), gw(2, failover_response_codes=(480,)))
    call, _ = r.start("+3120", 0.0)
    assert isinstance(call.final(480, 1.0), Attempt)
    assert isinstance(call.final(503, 2.0), Rejected)


def test_locally_generated_408_fails_over() -> None:
    r = router(gw(1), gw(2))
    call, _ = r.start("+3120", 0.0)
    assert isinstance(call.final(408, 32.0), Attempt)


def test_cancel_by_caller_frees_the_gateway() -> None:
    r = router(gw(1))
    call, first = r.start("+3120", 0.0)
    call.ended()
    assert attempt(first).gateway.active_calls == 0
    assert isinstance(call, OutboundCall) and call.current is None


# --- appliance capacity and drain -------------------------------------------------------------


def test_capacity_limit_answers_503_with_retry_after() -> None:
    a = CallAdmission(2, retry_after=15)
    assert a.admit() is None and a.admit() is None
    assert a.admit() == Refusal(503, 15, "appliance at its limit of 2 calls")
    assert a.refused_busy == 1 and a.active == 2
    a.release()
    assert a.admit() is None


def test_capacity_from_hardware_type() -> None:
    s = parse_settings(
        {"Common": {"SIPDomains": "a.com", "SiteName": "x", "HardwareType": "Minimum"}}
    )
    a = CallAdmission.from_settings(s)
    assert (a.limit, a.retry) == (50, 10)
    for _ in range(50):
        assert a.admit() is None
    refusal = a.admit()
    assert refusal is not None and refusal.status == 503


def test_drain_mode_refuses_new_calls_and_lets_existing_finish() -> None:
    a = CallAdmission(500)
    assert a.admit() is None and a.admit() is None
    a.enter_maintenance()
    refusal = a.admit()
    assert refusal is not None and refusal.status == 503 and "maintenance" in refusal.reason
    assert a.active == 2 and not a.drained
    a.release()
    assert not drained(a)
    a.release()
    assert drained(a)
    a.exit_maintenance()
    assert not drained(a) and a.admit() is None


def drained(admission: CallAdmission) -> bool:
    return admission.drained  # read afresh: mypy keeps properties narrowed


def test_release_without_admit() -> None:
    with pytest.raises(RuntimeError):
        CallAdmission(1).release()
