"""Receive statistics: RFC 3550 A.1 (sequence validity), A.3 (loss), A.8 (jitter), fake clock."""

from __future__ import annotations

import random

from hybridvoice.media import ReceiveStats


def feed(stats: ReceiveStats, packets: list[tuple[int, int, float]]) -> None:
    for seq, ts, now in packets:
        stats.update(seq, ts, now)


def test_probation_then_in_order() -> None:
    s = ReceiveStats()  # MIN_SEQUENTIAL = 2: the first packet only starts probation
    assert not s.update(100, 0, 0.0)
    assert s.update(101, 160, 0.02)
    for i in range(2, 50):
        assert s.update(100 + i, 160 * i, 0.02 * i)
    assert s.received == 49 and s.expected == 49 and s.lost == 0
    assert s.extended_max == 149


def test_loss_wrap_and_fraction() -> None:
    s = ReceiveStats(min_sequential=0)
    seqs = [(65530 + i) & 0xFFFF for i in range(20)]
    kept = [q for i, q in enumerate(seqs) if i not in (3, 7, 8)]
    for k, q in enumerate(kept):
        s.update(q, 160 * k, 0.02 * k)
    assert s.extended_max == 65536 + 13  # wrapped once
    assert s.expected == 20 and s.received == 17 and s.lost == 3
    assert s.interval_fraction_lost() == (3 << 8) // 20
    assert s.interval_fraction_lost() == 0  # nothing new in this interval


def test_duplicates_and_reordering() -> None:
    s = ReceiveStats(min_sequential=0)
    feed(s, [(1, 0, 0.0), (2, 160, 0.02), (4, 480, 0.06), (3, 320, 0.05), (4, 480, 0.07)])
    assert s.extended_max == 4 and s.received == 5 and s.lost == -1  # duplicate counted (A.3)


def test_restart_after_big_jump() -> None:
    s = ReceiveStats(min_sequential=0)
    feed(s, [(i, 160 * i, 0.02 * i) for i in range(10)])
    assert not s.update(40000, 0, 1.0)  # one stray: not counted
    assert s.update(40001, 160, 1.02)  # two in sequence: the source restarted
    assert s.base_seq == 40001 and s.received == 1 and s.lost == 0


def reference_jitter(packets: list[tuple[int, float]], rate: int) -> float:
    """RFC 3550 A.8, literally: transit = arrival - ts; J += (|D| - J) / 16."""
    jitter = 0.0
    transit_prev = None
    for ts, now in packets:
        transit = now * rate - ts
        if transit_prev is not None:
            d = abs(transit - transit_prev)
            jitter += (d - jitter) / 16
        transit_prev = transit
    return jitter


def test_jitter_matches_a8_with_fake_clock() -> None:
    rng = random.Random(7)
    s = ReceiveStats(clock_rate=8000, min_sequential=0)
    packets = []
    now = 100.0
    for i in range(500):
        now = 100.0 + 0.02 * i + rng.uniform(0, 0.004)  # up to 4 ms of network delay variation
        packets.append((160 * i, now))
        assert s.update(i, 160 * i, now)
    assert abs(s.jitter - reference_jitter(packets, 8000)) < 1e-6
    assert 5 < s.jitter_ts < 32  # 4 ms uniform delay: about 1.3 ms mean |D|, in 1/8000 s
    assert abs(s.jitter_seconds - s.jitter / 8000) < 1e-12


def test_jitter_zero_for_perfect_pacing_and_timestamp_wrap() -> None:
    s = ReceiveStats(min_sequential=0)
    for i in range(100):
        s.update(i, (0xFFFFFF00 + 160 * i) & 0xFFFFFFFF, 5.0 + 0.02 * i)
    assert s.jitter < 1e-6
