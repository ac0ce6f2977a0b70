"""Gateway sizing (planning.sizing): seed 004's examples, the gateway rules, sites, Erlang B."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridvoice.planning.sizing import (
    MAX_GATEWAY_PORTS,
    MAX_SITES,
    MAX_USERS,
    SizingError,
    even_sites,
    plan_gateways,
    ports_for,
    split_gateways,
)


def test_seed_004_light_20_users_two_ports() -> None:
    plan = plan_gateways(20, "light")
    assert plan.ports == 2
    (site,) = plan.sites
    # "a minimum of two gateways is recommended" and the smallest gateway has 2 ports
    assert site.gateways == (2, 2)


def test_seed_004_moderate_100_users_ten_ports() -> None:
    plan = plan_gateways(100, "moderate")
    assert plan.ports == 10
    assert plan.sites[0].gateways == (5, 5)
    assert plan.installed_ports == 10


def test_seed_004_heavy_47000_users_9400_ports_over_at_least_ten_gateways() -> None:
    plan = plan_gateways(47_000, "heavy")
    assert plan.ports == 9_400
    gateways = plan.sites[0].gateways
    assert len(gateways) >= 10
    assert all(g <= MAX_GATEWAY_PORTS for g in gateways)
    assert sum(gateways) == 9_400
    assert gateways == (940,) * 10


def test_users_per_port() -> None:
    assert ports_for(15, "light") == 1
    assert ports_for(16, "light") == 2
    assert ports_for(10, "moderate") == 1
    assert ports_for(11, "moderate") == 2
    assert ports_for(5, "heavy") == 1
    assert ports_for(6, "heavy") == 2


def test_split_is_even_and_fewest() -> None:
    assert split_gateways(960 * 2) == (960, 960)
    assert split_gateways(960 * 2 + 1) == (641, 640, 640)
    assert split_gateways(7) == (4, 3)
    assert split_gateways(0) == (2, 2)


def test_sites_by_count() -> None:
    plan = plan_gateways(47_000, "heavy", sites=even_sites(47_000, 3))
    assert [s.users for s in plan.sites] == [15_667, 15_667, 15_666]
    assert [s.ports for s in plan.sites] == [3_134, 3_134, 3_134]
    for site in plan.sites:
        assert len(site.gateways) == 4
        assert sum(site.gateways) == site.ports


def test_named_sites_each_with_two_gateways() -> None:
    plan = plan_gateways(None, "moderate", sites=[("Amsterdam", 100), ("Seattle", 12)])
    assert plan.users == 112
    amsterdam, seattle = plan.sites
    assert (amsterdam.name, amsterdam.ports, amsterdam.gateways) == ("Amsterdam", 10, (5, 5))
    assert (seattle.name, seattle.ports, seattle.gateways) == ("Seattle", 2, (2, 2))
    assert plan.gateway_count == 4


def test_busy_hour_traffic_adds_erlang_b() -> None:
    # 100 moderate users: the rule gives 10 ports; 10 E at 1% needs 18 trunks, which rules
    plan = plan_gateways(100, "moderate", busy_hour_erlangs=10.0, blocking=0.01)
    (site,) = plan.sites
    assert (site.rule_ports, site.erlang_trunks, site.ports) == (10, 18, 18)
    assert site.rules == "Erlang B"
    # 1 E needs 5 trunks: the rule's 10 ports rule
    site = plan_gateways(100, "moderate", busy_hour_erlangs=1.0).sites[0]
    assert (site.erlang_trunks, site.ports, site.rules) == (5, 10, "rule of thumb")


def test_busy_hour_traffic_shared_by_users() -> None:
    plan = plan_gateways(
        None, "light", sites=[("a", 300), ("b", 100)], busy_hour_erlangs=40.0, blocking=0.01
    )
    a, b = plan.sites
    assert a.traffic_erlangs == pytest.approx(30.0)
    assert b.traffic_erlangs == pytest.approx(10.0)
    assert b.erlang_trunks == 18


@pytest.mark.parametrize(
    ("kwargs", "field", "reason"),
    [
        ({"users": 0, "usage": "light"}, "users", "between 1 and 10,000,000"),
        ({"users": -5, "usage": "light"}, "users", "between 1 and"),
        ({"users": MAX_USERS + 1, "usage": "light"}, "users", "between 1 and"),
        ({"users": 2.5, "usage": "light"}, "users", "whole number"),
        ({"users": 10, "usage": "extreme"}, "usage", "light, moderate, heavy"),
        ({"users": None, "usage": "light"}, "users", "give the number"),
        (
            {"users": 10, "usage": "light", "sites": [("a", 4), ("b", 5)]},
            "users",
            "add up to 9",
        ),
        ({"users": None, "usage": "light", "sites": [("a", 4), ("a", 5)]}, "sites", "twice"),
        ({"users": None, "usage": "light", "sites": [(" ", 4)]}, "sites", "needs a name"),
        ({"users": None, "usage": "light", "sites": [("a", 0)]}, "sites[a]", "between 1"),
        ({"users": None, "usage": "light", "sites": []}, "sites", "between 1 and 200"),
        (
            {"users": 10, "usage": "light", "busy_hour_erlangs": -1.0},
            "busy_hour_erlangs",
            "0 or more",
        ),
        (
            {"users": 10, "usage": "light", "busy_hour_erlangs": math.nan},
            "busy_hour_erlangs",
            "NaN",
        ),
        (
            {"users": 10, "usage": "light", "busy_hour_erlangs": 1.0, "blocking": 0.0},
            "blocking",
            "between 0 and 1",
        ),
    ],
)
def test_bad_input_names_the_field(kwargs: dict[str, object], field: str, reason: str) -> None:
    with pytest.raises(SizingError, match=reason) as info:
        plan_gateways(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_even_sites_refuses_more_sites_than_users_or_the_limit() -> None:
    with pytest.raises(SizingError, match="every site needs at least one user"):
        even_sites(3, 5)
    with pytest.raises(SizingError, match="between 1 and 200"):
        even_sites(10_000, MAX_SITES + 1)


@given(
    st.integers(min_value=1, max_value=2_000_000),
    st.sampled_from(["light", "moderate", "heavy"]),
    st.integers(min_value=1, max_value=12),
)
def test_every_plan_carries_the_ports_on_valid_gateways(users: int, usage: str, n: int) -> None:
    plan = plan_gateways(users, usage, sites=even_sites(users, min(n, users)))
    assert plan.installed_ports >= plan.ports >= math.ceil(users / plan.users_per_port)
    for site in plan.sites:
        assert len(site.gateways) >= 2
        assert all(2 <= g <= MAX_GATEWAY_PORTS for g in site.gateways)
        assert site.installed_ports >= site.ports
        # the fewest gateways that fit (never fewer than two)
        assert len(site.gateways) == max(2, math.ceil(site.ports / MAX_GATEWAY_PORTS))
        assert max(site.gateways) - min(site.gateways) <= 1 or min(site.gateways) == 2


@given(st.integers(min_value=0, max_value=5_000_000))
def test_split_properties(ports: int) -> None:
    gateways = split_gateways(ports)
    assert sum(gateways) >= ports
    assert len(gateways) >= 2
    assert all(2 <= g <= MAX_GATEWAY_PORTS for g in gateways)
    if ports >= 4:
        assert sum(gateways) == ports
