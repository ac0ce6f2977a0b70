"""The gateway health core on a fake clock (RFC 3261 §11.2, §17.1.1.2, §18.4): thresholds per
gateway, passive misses from INVITEs, probing a down gateway back, the per-gateway keys and
their errors, and routing trying a down gateway last."""

from __future__ import annotations

import random
from typing import Any

import pytest

from hybridvoice.cms.settings import Gateway, SettingsError, TrunkConfiguration, parse_settings
from hybridvoice.mediation.gateway_health import GatewayHealth, Health, HealthPolicy
from hybridvoice.mediation.routing import Attempt, OutboundRouter
from hybridvoice.mediation.trunks import TrunkTable


def gw(n: int, **kw: Any) -> Gateway:
    return Gateway(name=f"Gateway{n}", ip=f"10.0.0.{n}", voice_routes=("Any",), **kw)


def test_down_after_n_misses_up_after_m_answers() -> None:
    h = GatewayHealth("g", HealthPolicy(interval=5, timeout=2, down_after=2, up_after=3))
    assert h.state is Health.UNKNOWN and h.healthy
    assert h.answered(1.0, "OPTIONS answered 200") is not None  # unknown -> up at once
    assert h.missed(2.0, "no answer") is None
    down = h.missed(3.0, "no answer")
    assert down is not None and down.health is Health.DOWN and down.at == 3.0
    assert h.answered(4.0, "a") is None and h.answered(5.0, "a") is None
    assert h.missed(6.0, "no answer") is None  # a miss resets the answers
    assert h.answered(7.0, "a") is None and h.answered(8.0, "a") is None
    up = h.answered(9.0, "OPTIONS answered 404")
    assert up is not None and up.health is Health.UP and h.since == 9.0
    assert h.transitions == {Health.UP: 2, Health.DOWN: 1}


def test_probe_schedule_interval_and_passive_probe_at_once() -> None:
    h = GatewayHealth("g", HealthPolicy(interval=5, timeout=2, down_after=3))
    assert h.next_probe() == 0.0  # at once at start
    h.probing(10.0)
    assert h.next_probe() == 15.0 and not h.probe_due(14.999) and h.probe_due(15.0)
    h.missed(11.0, "INVITE: 408", passive=True)
    assert h.probe_due(11.0)  # a failed call asks for a probe now
    h.probing(11.0)
    assert h.next_probe() == 16.0


def test_without_send_sip_options_probed_only_while_down() -> None:
    h = GatewayHealth("g", HealthPolicy(interval=5, timeout=2, down_after=1, probe=False))
    assert h.next_probe() is None
    change = h.missed(3.0, "INVITE: transport error", passive=True)
    assert change is not None and change.health is Health.DOWN
    assert h.probe_due(3.0)
    h.probing(3.0)
    assert h.next_probe() == 8.0  # probed back every interval while down
    h.probing(8.0)
    h.answered(8.1, "OPTIONS answered 200")
    assert h.state is Health.UP and h.next_probe() is None


def test_policy_from_gateway_keys_else_trunk() -> None:
    trunk = TrunkConfiguration(
        OptionsIntervalSeconds=10, UnhealthyAfterMissed=4, HealthyAfterAnswered=2
    )
    own = gw(1, OptionsIntervalSeconds=2, OptionsTimeoutSeconds=1, UnhealthyAfterMissed=1)
    assert HealthPolicy.of(own, trunk) == HealthPolicy(2, 1, 1, 2, True)
    assert HealthPolicy.of(gw(2, SendSipOptions=False), trunk) == HealthPolicy(10, 10, 4, 2, False)
    assert TrunkTable([own], trunk=trunk)["Gateway1"].monitor.policy.down_after == 1


@pytest.mark.parametrize(
    ("key", "value", "said"),
    [
        ("UnhealthyAfterMissed", 0, "Gateway1.UnhealthyAfterMissed: input should be greater"),
        ("HealthyAfterAnswered", "lots", "Gateway1.HealthyAfterAnswered: input should be a"),
        ("OptionsIntervalSeconds", 0.001, "Gateway1.OptionsIntervalSeconds: input should be"),
        ("OptionsTimeoutSeconds", -1, "Gateway1.OptionsTimeoutSeconds: input should be greater"),
    ],
)
def test_bad_gateway_health_key_names_key_and_reason(key: str, value: object, said: str) -> None:
    raw = {
        "Common": {"SIPDomains": "a.com", "SiteName": "x"},
        "Gateway1": {"IP": "10.0.0.1", key: value},
    }
    with pytest.raises(SettingsError) as caught:
        parse_settings(raw)
    assert said in str(caught.value)


def routed(*gateways: Gateway, down_after: int = 1) -> OutboundRouter:
    trunks = TrunkTable(gateways, unhealthy_after=down_after)
    return OutboundRouter(trunks, {"Any": ".*"}, rng=random.Random(1), try_unhealthy_last=True)


def test_invite_timeout_marks_down_at_once_and_next_call_goes_elsewhere_first() -> None:
    r = routed(gw(1), gw(2))
    probes: list[str] = []
    r.trunks.on_probe_due = probes.append
    call, first = r.start("+31201234567", 0.0)
    assert isinstance(first, Attempt)
    dead = first.gateway.name
    other = "Gateway2" if dead == "Gateway1" else "Gateway1"
    nxt = call.final(408, 32.0)  # Timer B: our own 408
    assert r.trunks[dead].health is Health.DOWN and probes == [dead]
    assert isinstance(nxt, Attempt) and nxt.gateway.name == other
    call.final(200, 33.0)
    assert r.trunks[other].health is Health.UP  # a call answered counts as alive
    call.ended()
    for _ in range(3):  # the next calls: the healthy gateway first
        c, step = r.start("+31201234567", 40.0)
        assert isinstance(step, Attempt) and step.gateway.name == other
        c.ended()


def test_down_gateway_is_tried_last_and_a_transport_error_is_a_miss() -> None:
    r = routed(gw(1, MaxConcurrentSessions=1), gw(2, MaxConcurrentSessions=1))
    r.trunks.options_failed("Gateway1", 0.0, "no answer")
    assert r.trunks["Gateway1"].health is Health.DOWN
    call, step = r.start("+31201234567", 1.0)
    assert isinstance(step, Attempt) and step.gateway.name == "Gateway2"
    nxt = call.transport_error(1.5)
    assert r.trunks["Gateway2"].health is Health.DOWN
    assert isinstance(nxt, Attempt) and nxt.gateway.name == "Gateway1"  # down: last, not never
    call.provisional(180, 2.0)  # ringing: alive again
    assert r.trunks["Gateway1"].health is Health.UP


def test_a_refusal_from_the_gateway_counts_as_alive() -> None:
    r = routed(gw(1), down_after=2)
    r.trunks.options_failed("Gateway1", 0.0, "no answer")
    call, _ = r.start("+31201234567", 1.0)
    call.final(486, 2.0)
    assert r.trunks["Gateway1"].consecutive_failures == 0


def test_trunk_default_tries_unhealthy_last() -> None:
    s = parse_settings({"Common": {"SIPDomains": "a.com", "SiteName": "x"}})
    assert s.trunk_configuration.try_unhealthy_gateways_last is True
    assert s.trunk_configuration.healthy_after_answered == 1
