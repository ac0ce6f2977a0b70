"""Erlang B (planning.erlang) against the published Erlang B tables, and its properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridvoice.planning.erlang import (
    MAX_TRAFFIC_ERLANGS,
    MAX_TRUNKS,
    SizingError,
    erlang_b,
    trunks_for,
)

# (trunks, grade of service, traffic in erlangs as the standard tables print it)
TABLE = [
    (1, 0.01, 0.0101),
    (2, 0.01, 0.153),
    (3, 0.01, 0.455),
    (4, 0.01, 0.869),
    (5, 0.01, 1.36),
    (10, 0.01, 4.46),
    (15, 0.01, 8.11),
    (20, 0.01, 12.0),
    (30, 0.01, 20.3),
    (50, 0.01, 37.9),
    (100, 0.01, 84.1),
    (5, 0.02, 1.66),
    (10, 0.02, 5.08),
    (20, 0.02, 13.2),
    (50, 0.02, 40.3),
    (10, 0.05, 6.22),
    (20, 0.05, 15.2),
    (10, 0.001, 3.09),
    (20, 0.001, 9.41),
]


def test_the_briefs_examples() -> None:
    assert trunks_for(10, 0.01) == 18
    assert trunks_for(1, 0.01) == 5


def test_exact_small_values() -> None:
    # B(E, 1) = E / (1 + E); B(1, 2) = (1/2) / (1 + 1 + 1/2) = 0.2
    assert erlang_b(1.0, 1) == pytest.approx(0.5)
    assert erlang_b(1.0, 2) == pytest.approx(0.2)
    assert erlang_b(2.0, 2) == pytest.approx(2.0 / 5.0)
    assert erlang_b(5.0, 0) == 1.0
    assert erlang_b(0.0, 3) == 0.0
    assert erlang_b(10.0, 18) == pytest.approx(0.0071424, rel=1e-4)


@pytest.mark.parametrize(("trunks", "gos", "erlangs"), TABLE)
def test_published_table_entries(trunks: int, gos: float, erlangs: float) -> None:
    # the table rounds to three figures: half a percent less traffic fits, half a percent more
    # does not
    assert trunks_for(erlangs * 0.995, gos) == trunks
    assert erlang_b(erlangs * 0.995, trunks) <= gos < erlang_b(erlangs * 1.005, trunks)
    assert erlang_b(erlangs, trunks) == pytest.approx(gos, rel=0.05)


def test_no_overflow_on_large_groups() -> None:
    b = erlang_b(5000.0, 5000)
    assert 0.0 < b < 0.02
    assert trunks_for(MAX_TRAFFIC_ERLANGS, 0.01) < MAX_TRAFFIC_ERLANGS
    assert erlang_b(1.0, MAX_TRUNKS) == 0.0


@pytest.mark.parametrize(
    ("traffic", "message"),
    [
        (-1.0, "must be 0 or more erlangs"),
        (math.nan, "not NaN"),
        (math.inf, "at most 100,000 erlangs"),
        (1e12, "at most 100,000 erlangs"),
        ("10", "must be a number of erlangs"),
        (True, "must be a number of erlangs"),
    ],
)
def test_bad_traffic_is_named(traffic: object, message: str) -> None:
    with pytest.raises(SizingError, match=message) as info:
        erlang_b(traffic, 3)  # type: ignore[arg-type]
    assert info.value.field == "traffic_erlangs"
    with pytest.raises(SizingError, match=message):
        trunks_for(traffic, 0.01)  # type: ignore[arg-type]


@pytest.mark.parametrize("blocking", [0.0, 1.0, -0.1, 2.0, math.nan, math.inf])
def test_bad_blocking_is_named(blocking: float) -> None:
    with pytest.raises(SizingError, match="between 0 and 1") as info:
        trunks_for(10.0, blocking)
    assert info.value.field == "blocking"


@pytest.mark.parametrize(
    ("trunks", "message"),
    [(-1, "0 or more"), (MAX_TRUNKS + 1, "at most 1,000,000"), (2.5, "whole number")],
)
def test_bad_trunks_are_named(trunks: object, message: str) -> None:
    with pytest.raises(SizingError, match=message) as info:
        erlang_b(1.0, trunks)  # type: ignore[arg-type]
    assert info.value.field == "trunks"


traffic = st.floats(min_value=0.0, max_value=500.0, allow_nan=False)
trunk_counts = st.integers(min_value=0, max_value=600)


@given(traffic, trunk_counts)
def test_blocking_is_a_probability(e: float, n: int) -> None:
    assert 0.0 <= erlang_b(e, n) <= 1.0


@given(traffic, trunk_counts)
def test_more_trunks_block_less(e: float, n: int) -> None:
    assert erlang_b(e, n + 1) <= erlang_b(e, n)


@given(traffic, traffic, trunk_counts)
def test_more_traffic_blocks_more(e1: float, e2: float, n: int) -> None:
    low, high = sorted((e1, e2))
    assert erlang_b(low, n) <= erlang_b(high, n) * (1 + 1e-12)


@given(traffic, st.floats(min_value=1e-6, max_value=0.999))
def test_trunks_for_is_the_smallest(e: float, blocking: float) -> None:
    n = trunks_for(e, blocking)
    assert erlang_b(e, n) <= blocking
    if n > 0:
        assert erlang_b(e, n - 1) > blocking
