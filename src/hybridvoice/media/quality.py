"""Call quality: the ITU-T G.107 E-model (06/2015) for G.711 calls, from what RTCP tells
(RFC 3550 §6.4.1: fraction lost, cumulative lost, interarrival jitter, LSR/DLSR).

``R = Ro - Is - Id - Ie,eff + A`` (G.107 §7.1, eq. 7-1). Every parameter other than delay
and loss keeps the G.107 default of Table 1 (SLR 8, RLR 2, STMR 15, LSTR 18, Ds = Dr = 3,
TELR 65 dB, WEPL 110 dB, Nc -70 dBm0p, Nfor -64 dBmp, Ps = Pr = 35 dB(A), qdu 1, A 0), which
give ``Ro = 94.77`` (§7.2) and ``Is = 1.41`` (§7.3); with no delay and no loss R = 93.2,
MOS 4.41. Delay enters through Id (§7.4): ``T = Ta`` (one-way mouth-to-ear delay) and
``Tr = 2 T``. Loss enters through Ie,eff (§7.5, eq. 7-29): ``Ie + (95 - Ie) Ppl /
(Ppl / BurstR + Bpl)``, with G.711's ``Ie = 0`` and its packet-loss robustness ``Bpl`` from
G.113 Appendix I: 4.3 without packet loss concealment, 25.1 with it (Annex I of G.711);
``BurstR = 1`` is random loss, above 1 bursty. R becomes MOS-CQE by Annex B (eq. B-4),
clamped to [1, 4.5].

The one-way delay of a call is estimated as the network part (half the RTCP round trip,
§6.4.1: A - LSR - DLSR) plus the jitter buffer a receiver needs (by default twice the
interarrival jitter) plus G.711's packetisation (20 ms frames). Limits: an estimate from
what endpoints report, not a listening test; talker echo is taken as cancelled to the
G.107 default TELR of 65 dB (Idte, which eq. 7-22 makes slightly negative for a T of a few
ms, is taken as at least 0, so that more delay never rates better), and the codec is G.711
(PCMU or PCMA).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

__all__ = [
    "BPL_G711",
    "BPL_G711_PLC",
    "DEFAULT_R",
    "CallQuality",
    "QualityInput",
    "burst_ratio",
    "call_quality",
    "effective_ie",
    "mos_from_r",
    "one_way_delay_ms",
    "r_factor",
    "rtcp_round_trip_ms",
]

#: G.113 Appendix I, Table I.3: G.711 packet-loss robustness without and with PLC
BPL_G711: Final = 4.3
BPL_G711_PLC: Final = 25.1
#: G.711's packetisation interval as sent by the relay's peers (ms)
FRAME_MS: Final = 20.0

# G.107 Table 1 defaults
_SLR, _RLR, _STMR, _LSTR, _DS = 8.0, 2.0, 15.0, 18.0, 3.0
_TELR, _WEPL = 65.0, 110.0
_NC, _NFOR, _PS, _PR, _QDU = -70.0, -64.0, 35.0, 35.0, 1.0
_MT, _ST = 100.0, 1.0  # Idd's delay threshold and sensitivity (§7.4, eq. 7-27)


def _lg(x: float) -> float:
    return math.log10(x)


def _basic_terms() -> tuple[float, float, float]:
    """(Ro, Is, No) for the Table 1 defaults (§7.2, §7.3)."""
    olr = _SLR + _RLR
    nfo = _NFOR + _RLR
    pre = _PR + 10 * _lg(1 + 10 ** ((10 - _LSTR) / 10))
    nor = _RLR - 121 + pre + 0.008 * (pre - 35) ** 2
    nos = _PS - _SLR - _DS - 100 + 0.004 * (_PS - olr - _DS - 14) ** 2
    no = 10 * _lg(10 ** (_NC / 10) + 10 ** (nos / 10) + 10 ** (nor / 10) + 10 ** (nfo / 10))
    ro = 15 - 1.5 * (_SLR + no)
    xolr = olr + 0.2 * (64 + no - _RLR)
    iolr = 20 * ((1 + (xolr / 8) ** 8) ** (1 / 8) - xolr / 8)
    stmro = -10 * _lg(10 ** (-_STMR / 10) + 10 ** (-_TELR / 10))  # T = 0 for sidetone
    ist = (
        12 * (1 + ((stmro - 13) / 6) ** 8) ** (1 / 8)
        - 28 * (1 + ((stmro + 1) / 19.4) ** 35) ** (1 / 35)
        - 13 * (1 + ((stmro - 3) / 33) ** 13) ** (1 / 13)
        + 29
    )
    q = 37 - 15 * _lg(_QDU)
    g = 1.07 + 0.258 * q + 0.0602 * q**2
    iq = 15 * _lg(1 + 10 ** ((ro - 100) / 15 + 46 / 8.4 - g / 9) + 10 ** (46 / 30 - g / 40))
    return ro, iolr + ist + iq, no


_RO, _IS, _NO = _basic_terms()


def _delay_impairment(t: float) -> float:
    """Id = Idte + Idle + Idd (§7.4) for a one-way delay ``t`` ms (T = Ta = t, Tr = 2t)."""
    terv = _TELR - 40 * _lg((1 + t / 10) / (1 + t / 150)) + 6 * math.exp(-0.3 * t**2)
    roe = -1.5 * (_NO - _RLR)
    re = 80 + 2.5 * (terv - 14)
    idte = ((roe - re) / 2 + math.sqrt((roe - re) ** 2 / 4 + 100) - 1) * (1 - math.exp(-t))
    idte = max(0.0, idte)  # eq. 7-22 dips below 0 for T of a few ms: no echo gain
    rle = 10.5 * (_WEPL + 7) * (2 * t + 1) ** -0.25
    idle = (_RO - rle) / 2 + math.sqrt((_RO - rle) ** 2 / 4 + 169)
    idd = 0.0
    if t > _MT:
        x = _lg(t / _MT) / _lg(2)
        idd = 25 * ((1 + x ** (6 * _ST)) ** (1 / (6 * _ST))
                    - 3 * (1 + (x / 3) ** (6 * _ST)) ** (1 / (6 * _ST)) + 2)  # fmt: skip
    return float(idte + idle + idd)


def effective_ie(
    ppl: float, *, ie: float = 0.0, bpl: float = BPL_G711_PLC, burst_r: float = 1.0
) -> float:
    """Ie,eff (§7.5, eq. 7-29) for a packet-loss probability ``ppl`` in percent."""
    if ppl <= 0:
        return ie
    return float(ie + (95 - ie) * ppl / (ppl / burst_r + bpl))


#: R for the G.107 defaults: no delay, no loss (93.2)
DEFAULT_R: Final = _RO - _IS - _delay_impairment(0.0)


def r_factor(
    delay_ms: float = 0.0,
    loss_percent: float = 0.0,
    *,
    bpl: float = BPL_G711_PLC,
    burst_r: float = 1.0,
    advantage: float = 0.0,
) -> float:
    """The transmission rating R (eq. 7-1) for a one-way delay and a packet-loss percentage."""
    delay = max(0.0, delay_ms)
    loss = min(max(0.0, loss_percent), 100.0)
    ie_eff = effective_ie(loss, bpl=bpl, burst_r=max(1.0, burst_r))
    return _RO - _IS - _delay_impairment(delay) - ie_eff + advantage


def mos_from_r(r: float) -> float:
    """MOS-CQE from R (G.107 Annex B, eq. B-4), within [1, 4.5]."""
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    mos = 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6
    return min(4.5, max(1.0, mos))


def burst_ratio(p: float, q: float) -> float:
    """BurstR from a two-state Markov (Gilbert) loss model (G.107 §7.5): ``p`` the
    probability that a packet is lost after one received, ``q`` that one is received after
    one lost; 1 for random loss (p + q = 1), above 1 when losses come in bursts."""
    if p <= 0 or q <= 0:
        return 1.0
    return max(1.0, 1 / (p + q))


def rtcp_round_trip_ms(arrival_ntp32: int, lsr: int, dlsr: int) -> float | None:
    """The round trip (ms) of RFC 3550 §6.4.1: ``A - LSR - DLSR`` in the middle 32 bits of
    NTP time (1/65536 s units); None when the report carries no LSR or the result is
    negative (clocks or a lost SR)."""
    if lsr == 0:
        return None
    rtt = (arrival_ntp32 - lsr - dlsr) & 0xFFFFFFFF
    if rtt >= 0x80000000:
        return None
    return rtt * 1000.0 / 65536.0


def one_way_delay_ms(
    round_trip_ms: float | None, jitter_ms: float, *, jitter_buffer_factor: float = 2.0
) -> float:
    """Mouth-to-ear delay: half the round trip + a jitter buffer + one G.711 frame."""
    network = 0.0 if round_trip_ms is None else max(0.0, round_trip_ms) / 2
    return network + jitter_buffer_factor * max(0.0, jitter_ms) + FRAME_MS


@dataclass(frozen=True, slots=True)
class QualityInput:
    """What one direction of a call's media reports: loss in percent, interarrival jitter
    and, when known, the round trip, in ms."""

    loss_percent: float
    jitter_ms: float
    round_trip_ms: float | None = None
    burst_r: float = 1.0


@dataclass(frozen=True, slots=True)
class CallQuality:
    """The E-model's verdict on a call: R, MOS-CQE and the inputs it came from."""

    r: float
    mos: float
    delay_ms: float
    loss_percent: float
    poor: bool


def call_quality(
    directions: list[QualityInput] | tuple[QualityInput, ...],
    *,
    threshold: float = 3.6,
    plc: bool = True,
) -> CallQuality | None:
    """The worse of the call's directions (a call is as good as its worse side); None with
    nothing reported."""
    worst: CallQuality | None = None
    for d in directions:
        delay = one_way_delay_ms(d.round_trip_ms, d.jitter_ms)
        r = r_factor(delay, d.loss_percent, bpl=BPL_G711_PLC if plc else BPL_G711,
                     burst_r=d.burst_r)  # fmt: skip
        mos = mos_from_r(r)
        if worst is None or mos < worst.mos:
            worst = CallQuality(round(r, 2), round(mos, 2), round(delay, 1),
                                round(d.loss_percent, 2), mos < threshold)  # fmt: skip
    return worst
