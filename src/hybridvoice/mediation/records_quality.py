"""A call's MOS estimate for its call record: the ITU-T G.107 E-model
(:mod:`hybridvoice.media.quality`) fed with what the relay knows of each direction of the
call's media (RFC 3550 §6.4.1, A.3, A.8).

Media from one far end to the other crosses the relay: the first half is what the relay
receives from the sending leg (its own loss and jitter from sequence numbers), the second
what the receiving leg's far end reports in RTCP about what the relay sent it (cumulative
lost over the packets sent, interarrival jitter). A direction's loss combines both halves
(``1 - (1 - p1)(1 - p2)``), its jitter adds them, its round trip is the sum of the two legs'
round trips (relay <-> far end, from LSR/DLSR) when both are known. The call's MOS is that of
its worse direction. A call whose media did not cross the relay (media bypass) has none.
"""

from __future__ import annotations

from hybridvoice.media.quality import CallQuality, QualityInput, call_quality

from .records_model import MediaCounters

__all__ = ["MOS_BUCKETS", "MosCounts", "MosTally", "call_mos", "direction_input"]

#: upper bounds of the MOS histogram's buckets (``hybridvoice_call_mos``)
MOS_BUCKETS: tuple[float, ...] = (1.5, 2.0, 2.5, 3.0, 3.5, 3.6, 4.0, 4.2, 4.4, 4.5)


def _received_loss(m: MediaCounters) -> float | None:
    """Loss of what the relay received on the leg (fraction), None without RTP."""
    if m.packets_received <= 0:
        return None
    expected = m.packets_received + max(0, m.packets_lost)
    return max(0, m.packets_lost) / expected


def _reported_loss(m: MediaCounters) -> float | None:
    """Loss the leg's far end reported of what the relay sent it (fraction), or None."""
    if m.reported_packets_lost is not None and m.packets_sent > 0:
        return min(1.0, max(0, m.reported_packets_lost) / m.packets_sent)
    if m.reported_fraction_lost is not None:
        return m.reported_fraction_lost
    return None


def direction_input(source: MediaCounters, sink: MediaCounters) -> QualityInput | None:
    """Media from ``source``'s far end to ``sink``'s, or None when nothing is known of it."""
    first, second = _received_loss(source), _reported_loss(sink)
    if first is None and second is None:
        return None
    loss = 1 - (1 - (first or 0.0)) * (1 - (second or 0.0))
    jitter = (source.jitter_ms if first is not None else 0.0) + (sink.reported_jitter_ms or 0.0)
    trips = (source.reported_round_trip_ms, sink.reported_round_trip_ms)
    rtt = None if None in trips else sum(t for t in trips if t is not None)
    return QualityInput(loss_percent=100 * loss, jitter_ms=jitter, round_trip_ms=rtt)


def call_mos(
    a: MediaCounters | None, b: MediaCounters | None, threshold: float
) -> CallQuality | None:
    """The call's quality (its worse direction), or None without relayed media."""
    if a is None or b is None:
        return None
    directions = [d for d in (direction_input(a, b), direction_input(b, a)) if d is not None]
    return call_quality(directions, threshold=threshold)


class MosCounts:
    """One gateway's calls by MOS bucket, their count, MOS sum and poor calls."""

    __slots__ = ("buckets", "count", "poor", "total")

    def __init__(self, bounds: int) -> None:
        self.buckets = [0] * bounds
        self.count = 0
        self.total = 0.0
        self.poor = 0


class MosTally:
    """The calls' MOS estimates by gateway, for a histogram over time (the metrics)."""

    __slots__ = ("bounds", "by_gateway")

    def __init__(self, bounds: tuple[float, ...] = MOS_BUCKETS) -> None:
        self.bounds = bounds
        self.by_gateway: dict[str, MosCounts] = {}

    def add(self, gateway: str | None, quality: CallQuality) -> None:
        counts = self.by_gateway.get(gateway or "")
        if counts is None:
            counts = self.by_gateway[gateway or ""] = MosCounts(len(self.bounds))
        for i, bound in enumerate(self.bounds):
            if quality.mos <= bound:
                counts.buckets[i] += 1
                break
        counts.count += 1
        counts.total += quality.mos
        counts.poor += quality.poor
