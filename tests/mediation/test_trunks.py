"""Gateway run-time state: health from OPTIONS outcomes, call counters, inbound source match."""

from __future__ import annotations

import pytest

from hybridvoice.cms.settings import Gateway, parse_settings
from hybridvoice.mediation.trunks import GatewayState, Health, TrunkTable, normalise_ip


def table(unhealthy_after: int = 3) -> TrunkTable:
    gateways = [
        Gateway(name="Gateway1", ip="10.0.0.1"),
        Gateway(name="Gateway2", fqdn="gw2.example.com"),
        Gateway(name="Gateway3", fqdn="gw3.example.com", ip="10.0.0.3", enabled=False),
    ]
    resolved = {"gw2.example.com": ["10.0.0.2", "2001:db8::2"], "gw3.example.com": ["10.0.0.33"]}
    return TrunkTable(gateways, unhealthy_after=unhealthy_after, resolved=resolved)


def healthy(state: GatewayState) -> bool:
    """Read afresh (mypy would keep a property narrowed across calls that change it)."""
    return state.healthy


def free(state: GatewayState) -> bool:
    return state.has_capacity


def test_from_settings() -> None:
    s = parse_settings(
        {
            "Common": {"SIPDomains": "a.com", "SiteName": "x"},
            "Gateway1": {"IP": "10.0.0.1"},
            "TrunkConfiguration": {"UnhealthyAfterMissed": 5},
        }
    )
    t = TrunkTable.from_settings(s)
    assert len(t) == 1 and t.unhealthy_after == 5 and t["Gateway1"].target == "10.0.0.1"


def test_addresses_and_target() -> None:
    t = table()
    assert t["Gateway1"].addresses == ("10.0.0.1",)
    assert t["Gateway2"].addresses == ("10.0.0.2", "2001:db8::2")
    assert t["Gateway3"].target == "10.0.0.3"  # IP first, then what the FQDN resolved to


def test_inbound_only_from_configured_enabled_gateways() -> None:
    t = table()
    assert t.gateway_for_source("10.0.0.1") is t["Gateway1"]
    assert t.gateway_for_source("::ffff:10.0.0.2") is t["Gateway2"]
    assert t.gateway_for_source("[2001:db8:0::2]") is t["Gateway2"]
    assert t.gateway_for_source("10.0.0.99") is None
    assert t.gateway_for_source("10.0.0.3") is None  # disabled
    assert t.gateway_for_source("not-an-ip") is None


def test_normalise_ip() -> None:
    assert normalise_ip("::FFFF:192.0.2.1") == "192.0.2.1"
    assert normalise_ip("[2001:DB8::1]") == "2001:db8::1"
    assert normalise_ip("host") == "host"


def test_down_after_n_misses_up_on_first_answer() -> None:
    t = table(unhealthy_after=3)
    gw = t["Gateway1"]
    assert gw.health is Health.UNKNOWN and gw.healthy
    change = t.options_answered("Gateway1", 1.0, 200, 2.5)
    assert change is not None and change.health is Health.UP and change.at == 1.0
    assert t.options_failed("Gateway1", 2.0, "no answer") is None
    assert t.options_failed("Gateway1", 3.0, "no answer") is None
    assert gw.healthy and gw.consecutive_failures == 2
    down = t.options_failed("Gateway1", 4.0, "transport error")
    assert down is not None and down.health is Health.DOWN
    assert "3 OPTIONS or calls without an answer (last: transport error)" in down.reason
    assert not healthy(gw) and gw.since == 4.0
    assert t.options_failed("Gateway1", 5.0, "no answer") is None  # already down
    up = t.options_answered("Gateway1", 6.0, 404, 1.0)  # any final response is alive
    assert up is not None and up.health is Health.UP and gw.since == 6.0
    assert gw.consecutive_failures == 0


def test_an_answer_resets_the_miss_count() -> None:
    t = table(unhealthy_after=2)
    t.options_failed("Gateway1", 1.0, "no answer")
    t.options_answered("Gateway1", 2.0, 200, 1.0)
    assert t.options_failed("Gateway1", 3.0, "no answer") is None
    assert t["Gateway1"].health is Health.UP


def test_status_snapshot() -> None:
    t = table()
    t.options_answered("Gateway2", 1.0, 405, 3.25)
    t.call_started("Gateway2")
    t.call_started("Gateway2")
    t.call_ended("Gateway2", failed=True)
    s = t.status()[1]
    assert (s.name, s.host, s.port, s.protocol) == ("Gateway2", "gw2.example.com", 5060, "TCP")
    assert (s.health, s.since, s.last_options_status, s.last_options_rtt_ms) == (
        Health.UP,
        1.0,
        405,
        3.25,
    )
    assert (s.active_calls, s.calls_total, s.calls_failed) == (1, 2, 1)
    t.options_failed("Gateway2", 2.0, "no answer")
    s = t["Gateway2"].status()
    assert s.last_options_status is None and s.last_options_error == "no answer"


def test_capacity_flag() -> None:
    t = TrunkTable([Gateway(name="G", ip="10.0.0.1", max_concurrent_sessions=1)])
    assert t["G"].has_capacity
    t.call_started("G")
    assert not free(t["G"])
    t.call_ended("G")
    assert free(t["G"])


def test_bad_threshold() -> None:
    with pytest.raises(ValueError, match="unhealthy_after"):
        TrunkTable([], unhealthy_after=0)
