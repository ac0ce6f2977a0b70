"""The E-model (ITU-T G.107) of media/quality.py against G.107's and G.113's figures, and
hypothesis properties: MOS within [1, 4.5], never better with more loss or more delay."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridvoice.media.quality import (
    BPL_G711,
    BPL_G711_PLC,
    DEFAULT_R,
    QualityInput,
    burst_ratio,
    call_quality,
    effective_ie,
    mos_from_r,
    one_way_delay_ms,
    r_factor,
    rtcp_round_trip_ms,
)


def test_default_values_give_r_93_2_and_mos_4_41() -> None:
    # G.107 §7 (note under Table 1): the default values give R = 93.2
    assert pytest.approx(93.2, abs=0.05) == DEFAULT_R
    assert r_factor() == pytest.approx(93.2, abs=0.05)
    assert mos_from_r(DEFAULT_R) == pytest.approx(4.41, abs=0.005)


@pytest.mark.parametrize(
    ("r", "mos"), [(0, 1.0), (-5, 1.0), (50, 2.58), (70, 3.6), (80, 4.02), (90, 4.34), (100, 4.5)]
)
def test_mos_from_r_follows_annex_b(r: float, mos: float) -> None:
    assert mos_from_r(r) == pytest.approx(mos, abs=0.01)


@pytest.mark.parametrize(
    ("loss", "bpl", "ie_eff"),
    [
        # G.113 Appendix I: G.711 with PLC (Bpl 25.1) and without (Bpl 4.3), random loss
        (1.0, BPL_G711_PLC, 95 * 1 / 26.1),
        (2.0, BPL_G711_PLC, 95 * 2 / 27.1),
        (5.0, BPL_G711_PLC, 95 * 5 / 30.1),
        (1.0, BPL_G711, 95 * 1 / 5.3),
        (2.0, BPL_G711, 95 * 2 / 6.3),
        (0.0, BPL_G711, 0.0),
    ],
)
def test_effective_ie_for_g711(loss: float, bpl: float, ie_eff: float) -> None:
    assert effective_ie(loss, bpl=bpl) == pytest.approx(ie_eff, rel=1e-9)


def test_loss_curves_of_g711() -> None:
    # R drops by Ie,eff from 93.2: 2 % random loss costs ~7 with PLC, ~30 without
    assert r_factor(0, 2.0, bpl=BPL_G711_PLC) == pytest.approx(93.2 - 7.01, abs=0.06)
    assert r_factor(0, 2.0, bpl=BPL_G711) == pytest.approx(93.2 - 30.16, abs=0.06)
    # bursty loss hurts more than random loss at the same rate (G.107 eq. 7-29)
    assert r_factor(0, 2.0, burst_r=2.0) < r_factor(0, 2.0, burst_r=1.0)


def test_delay_impairment_starts_small_and_grows_past_100_ms() -> None:
    assert DEFAULT_R - r_factor(100) < 3.0  # echo and talker terms only below 100 ms
    assert 5.0 < DEFAULT_R - r_factor(200) < 10.0
    assert r_factor(400) < 65.0  # Idd: users notice beyond ~300 ms one way


def test_burst_ratio() -> None:
    assert burst_ratio(0.02, 0.98) == pytest.approx(1.0)
    assert burst_ratio(0.02, 0.48) == pytest.approx(2.0)
    assert burst_ratio(0.0, 0.5) == 1.0


def test_rtcp_round_trip() -> None:
    # RFC 3550 §6.4.1's example: A 0xb710:8000, LSR 0xb705:2000, DLSR 0x0005:4000 -> 6.125 s
    assert rtcp_round_trip_ms(0xB7108000, 0xB7052000, 0x00054000) == pytest.approx(6125.0)
    assert rtcp_round_trip_ms(0xB7108000, 0, 0) is None  # no SR received yet
    assert rtcp_round_trip_ms(0x00001000, 0x00002000, 0) is None  # negative: not usable


def test_one_way_delay_and_call_quality() -> None:
    assert one_way_delay_ms(100.0, 10.0) == pytest.approx(50 + 20 + 20)
    assert one_way_delay_ms(None, 0.0) == pytest.approx(20.0)
    good = call_quality([QualityInput(0.0, 1.0, 20.0)])
    assert good is not None and good.mos >= 4.35 and not good.poor
    bad = call_quality([QualityInput(0.0, 1.0, 20.0), QualityInput(8.0, 30.0, 300.0)])
    assert bad is not None and bad.poor and bad.loss_percent == 8.0 and bad.mos < 3.6
    assert call_quality([]) is None
    strict = call_quality([QualityInput(0.0, 1.0, 20.0)], threshold=4.5)
    assert strict is not None and strict.poor


loss = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)
delay = st.floats(min_value=0.0, max_value=2000.0, allow_nan=False)
bpl = st.sampled_from([BPL_G711, BPL_G711_PLC])


@given(delay, loss, bpl, st.floats(min_value=1.0, max_value=8.0))
def test_mos_stays_within_1_and_4_5(d: float, p: float, b: float, burst: float) -> None:
    assert 1.0 <= mos_from_r(r_factor(d, p, bpl=b, burst_r=burst)) <= 4.5


@given(delay, loss, loss, bpl)
def test_mos_never_improves_with_more_loss(d: float, p1: float, p2: float, b: float) -> None:
    low, high = sorted((p1, p2))
    assert mos_from_r(r_factor(d, high, bpl=b)) <= mos_from_r(r_factor(d, low, bpl=b)) + 1e-9


@given(delay, delay, loss, bpl)
def test_mos_never_improves_with_more_delay(d1: float, d2: float, p: float, b: float) -> None:
    low, high = sorted((d1, d2))
    assert mos_from_r(r_factor(high, p, bpl=b)) <= mos_from_r(r_factor(low, p, bpl=b)) + 1e-9


@given(st.floats(min_value=-50, max_value=150, allow_nan=False),
       st.floats(min_value=-50, max_value=150, allow_nan=False))  # fmt: skip
def test_mos_is_monotone_in_r(r1: float, r2: float) -> None:
    low, high = sorted((r1, r2))
    assert mos_from_r(low) <= mos_from_r(high) + 1e-12
