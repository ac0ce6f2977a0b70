"""Appliance sizing (planning.appliances): the original's capacity examples, sites and spares,
and the binomial availability model behind its 99.8% / 99.9% figures."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridvoice.planning.appliances import (
    DEFAULT_APPLIANCE_AVAILABILITY,
    MAX_APPLIANCES_PER_SITE,
    SizingError,
    appliance_availability_for,
    plan_appliances,
    site_availability,
    site_capacity,
)


def test_three_plus_one_large_appliances_carry_1500_calls() -> None:
    site = site_capacity(4, "normal", "N+1")
    assert site.guaranteed_calls == 1_500
    assert site.installed_calls == 2_000
    plan = plan_appliances(1_500, "normal", "N+1")
    (only,) = plan.sites
    assert (only.active, only.spares, only.guaranteed_calls) == (3, 1, 1_500)


def test_sixteen_large_appliances_are_8000_calls_installed() -> None:
    # "16 large": a full site, every appliance up. With a spare the site promises less.
    assert site_capacity(16, "normal", "N+1").installed_calls == 8_000
    assert site_capacity(16, "normal", "N+1").guaranteed_calls == 7_500
    assert site_capacity(16, "normal", "N+2").guaranteed_calls == 7_000
    # 7,500 calls fit one site of 15+1; 8,000 with a spare need a second site
    assert [s.appliances for s in plan_appliances(7_500).sites] == [16]
    plan = plan_appliances(8_000, "normal", "N+1")
    assert [(s.active, s.spares) for s in plan.sites] == [(8, 1), (8, 1)]
    assert plan.guaranteed_calls == 8_000
    assert plan.appliances == 18


def test_minimum_hardware_carries_50_calls() -> None:
    plan = plan_appliances(120, "minimum", "N+2")
    (site,) = plan.sites
    assert (site.active, site.spares, site.calls_per_appliance) == (3, 2, 50)
    assert site_capacity(16, "minimum", "N+1").installed_calls == 800


def test_sites_never_exceed_16_appliances() -> None:
    plan = plan_appliances(50_000, "normal", "N+2")
    assert plan.active == 100
    assert len(plan.sites) == math.ceil(100 / 14)
    assert all(s.appliances <= MAX_APPLIANCES_PER_SITE for s in plan.sites)


def test_more_than_200_sites_is_refused() -> None:
    assert len(plan_appliances(200 * 15 * 500).sites) == 200
    with pytest.raises(SizingError, match="at most 200 sites") as info:
        plan_appliances(200 * 15 * 500 + 1)
    assert info.value.field == "concurrent_calls"


def test_availability_is_the_binomial_tail() -> None:
    a = 0.99
    # 3+1: all four up, or exactly one down
    assert site_availability(3, 1, a) == pytest.approx(a**4 + 4 * a**3 * (1 - a))
    # 1+2: one of three up
    assert site_availability(1, 2, a) == pytest.approx(1 - (1 - a) ** 3)
    assert site_availability(5, 0, a) == pytest.approx(a**5)
    assert site_availability(3, 1, 1.0) == 1.0


def test_which_appliance_availability_gives_the_quoted_figures() -> None:
    # 3+1 at 99.8% needs each appliance up 98.15% of the time; 3+2 at 99.9% only 95.2%
    assert appliance_availability_for(0.998, 3, 1) == pytest.approx(0.98151, abs=1e-5)
    assert appliance_availability_for(0.999, 3, 2) == pytest.approx(0.95245, abs=1e-5)
    # 1+2 at 99.9%: 1 - q^3 = 0.999, q = 0.1
    assert appliance_availability_for(0.999, 1, 2) == pytest.approx(0.9, abs=1e-9)
    # the largest sites need the most: 15+1 and 14+2
    worst_n1 = appliance_availability_for(0.998, 15, 1)
    worst_n2 = appliance_availability_for(0.999, 14, 2)
    assert worst_n1 == pytest.approx(0.99584, abs=1e-5)
    assert worst_n2 == pytest.approx(0.98736, abs=1e-5)
    # the default is the lowest figure, to 0.001, that meets both for every site size
    assert math.ceil(max(worst_n1, worst_n2) * 1000) / 1000 == DEFAULT_APPLIANCE_AVAILABILITY
    for n in range(1, 16):
        assert site_availability(n, 1, DEFAULT_APPLIANCE_AVAILABILITY) >= 0.998
    for n in range(1, 15):
        assert site_availability(n, 2, DEFAULT_APPLIANCE_AVAILABILITY) >= 0.999


def test_plan_reports_availability_against_the_quoted_figure() -> None:
    plan = plan_appliances(7_500, "normal", "N+1", appliance_availability=0.99)
    (site,) = plan.sites
    assert site.availability == pytest.approx(site_availability(15, 1, 0.99))
    assert site.availability < 0.998
    assert not plan.meets_quoted
    assert site.appliance_availability_for_quoted == pytest.approx(0.99584, abs=1e-5)
    assert plan_appliances(7_500, "normal", "N+1").meets_quoted


@pytest.mark.parametrize(
    ("kwargs", "field", "reason"),
    [
        ({"concurrent_calls": 0}, "concurrent_calls", "between 1 and"),
        ({"concurrent_calls": -3}, "concurrent_calls", "between 1 and"),
        ({"concurrent_calls": 10**12}, "concurrent_calls", "between 1 and"),
        ({"concurrent_calls": 2.5}, "concurrent_calls", "whole number"),
        ({"concurrent_calls": 10, "hardware": "large"}, "hardware", "normal .500"),
        ({"concurrent_calls": 10, "redundancy": "N+3"}, "redundancy", "N\\+1 or N\\+2"),
        (
            {"concurrent_calls": 10, "appliance_availability": 0.0},
            "appliance_availability",
            "above 0 and at most 1",
        ),
        (
            {"concurrent_calls": 10, "appliance_availability": 1.5},
            "appliance_availability",
            "above 0",
        ),
        (
            {"concurrent_calls": 10, "appliance_availability": math.nan},
            "appliance_availability",
            "above 0",
        ),
    ],
)
def test_bad_input_names_the_field(kwargs: dict[str, object], field: str, reason: str) -> None:
    with pytest.raises(SizingError, match=reason) as info:
        plan_appliances(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_site_capacity_refuses_sites_past_16_or_without_an_active_appliance() -> None:
    with pytest.raises(SizingError, match="between 2 and 16"):
        site_capacity(17, "normal", "N+1")
    with pytest.raises(SizingError, match="between 3 and 16"):
        site_capacity(2, "normal", "N+2")


@given(
    st.integers(min_value=1, max_value=1_500_000),
    st.sampled_from(["normal", "minimum"]),
    st.sampled_from(["N+1", "N+2"]),
)
def test_every_plan_carries_the_calls_within_the_limits(
    calls: int, hardware: str, redundancy: str
) -> None:
    try:
        plan = plan_appliances(calls, hardware, redundancy)
    except SizingError as exc:
        assert exc.field == "concurrent_calls"
        return
    assert plan.guaranteed_calls >= calls
    # the fewest active appliances
    assert (plan.active - 1) * plan.calls_per_appliance < calls
    assert len(plan.sites) <= 200
    spares = 1 if redundancy == "N+1" else 2
    for site in plan.sites:
        assert site.spares == spares
        assert site.active >= 1 and site.appliances <= MAX_APPLIANCES_PER_SITE


@given(
    st.integers(min_value=1, max_value=13),
    st.integers(min_value=0, max_value=2),
    st.floats(min_value=0.5, max_value=0.9999),
    st.floats(min_value=0.5, max_value=0.9999),
)
def test_availability_grows_with_the_appliances_and_spares(
    n: int, k: int, a1: float, a2: float
) -> None:
    low, high = sorted((a1, a2))
    assert 0.0 <= site_availability(n, k, low) <= site_availability(n, k, high) + 1e-12
    assert site_availability(n, k, low) <= site_availability(n, k + 1, low) + 1e-12
