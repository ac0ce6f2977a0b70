"""Per-stream receive statistics from RTP sequence numbers and timestamps.

RFC 3550 Appendix A.1 (sequence number validity, probation, wrap and restart), A.3
(expected, lost, fraction lost per interval) and A.8 (interarrival jitter). Time is passed
in as ``now`` (seconds, monotonic); jitter is kept in timestamp units, like the report
block's jitter field (§6.4.1), and offered in seconds given the clock rate.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_DROPOUT", "MAX_MISORDER", "MIN_SEQUENTIAL", "ReceiveStats"]

RTP_SEQ_MOD: Final = 1 << 16
MAX_DROPOUT: Final = 3000
MAX_MISORDER: Final = 100
MIN_SEQUENTIAL: Final = 2


class ReceiveStats:
    """State of one received RTP source (RFC 3550 A.1 ``source`` struct, plus A.8 jitter).

    ``update(seq, ts, now)`` is called for every packet of the source; it returns ``False``
    for packets the A.1 rules do not count (still in probation, or a big jump that is not
    yet confirmed). ``min_sequential`` is the A.1 probation length (2 by default; 0 counts
    from the first packet, as a relay that trusts its signalled peer may wish).
    """

    __slots__ = (
        "bad_seq",
        "base_seq",
        "clock_rate",
        "cycles",
        "expected_prior",
        "jitter",
        "last_arrival",
        "last_ts",
        "max_seq",
        "min_sequential",
        "probation",
        "received",
        "received_prior",
        "started",
    )

    def __init__(self, clock_rate: int = 8000, min_sequential: int = MIN_SEQUENTIAL) -> None:
        self.clock_rate = clock_rate
        self.min_sequential = min_sequential
        self.started = False
        self.base_seq = 0
        self.max_seq = 0
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0
        self.probation = 0
        self.jitter = 0.0
        self.last_arrival: float | None = None
        self.last_ts = 0

    def _init_seq(self, seq: int) -> None:
        """A.1 ``init_seq``."""
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0

    def update(self, seq: int, ts: int, now: float) -> bool:
        """A.1 ``update_seq`` then A.8 jitter for a counted packet."""
        max_seq = self.max_seq
        udelta = (seq - max_seq) & 0xFFFF
        if self.probation == 0 and self.started and udelta < MAX_DROPOUT:
            # In order, with a permissible gap (the hot path).
            if seq < max_seq:
                self.cycles += RTP_SEQ_MOD  # sequence number wrapped
            self.max_seq = seq
        elif not self._slow_update(seq, udelta):
            return False
        self.received += 1
        arrival = now * self.clock_rate
        last = self.last_arrival
        if last is not None:
            delta_ts = ((ts - self.last_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            d = (arrival - last) - delta_ts
            if d < 0:
                d = -d
            self.jitter += (d - self.jitter) / 16.0
        self.last_arrival = arrival
        self.last_ts = ts
        return True

    def _slow_update(self, seq: int, udelta: int) -> bool:
        if not self.started:
            self.started = True
            self._init_seq(seq)
            if self.min_sequential <= 0:
                return True
            self.max_seq = (seq - 1) & 0xFFFF
            self.probation = self.min_sequential
            udelta = 1
        if self.probation:
            # Packets must be in sequence for the source to become valid.
            if seq == (self.max_seq + 1) & 0xFFFF:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    return True
            else:
                self.probation = self.min_sequential - 1
                self.max_seq = seq
            return False
        if udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            # The sequence number made a very large jump.
            if seq == self.bad_seq:
                # Two sequential packets: assume the other side restarted without telling us.
                self._init_seq(seq)
                self.last_arrival = None
                return True
            self.bad_seq = (seq + 1) & 0xFFFF
            return False
        return True  # duplicate or reordered packet

    # ---- A.3 ----
    @property
    def extended_max(self) -> int:
        """Extended highest sequence number received (cycles + max_seq)."""
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1 if self.received else 0

    @property
    def lost(self) -> int:
        """Cumulative number of packets lost (negative when duplicates arrived)."""
        return self.expected - self.received

    def interval_fraction_lost(self) -> int:
        """Fraction lost since the previous call, 8-bit fixed point (A.3); starts an interval."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        self.expected_prior = expected
        received_interval = self.received - self.received_prior
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            return 0
        return (lost_interval << 8) // expected_interval

    @property
    def jitter_ts(self) -> int:
        """Interarrival jitter in timestamp units, as a report block carries it (A.8)."""
        return int(self.jitter)

    @property
    def jitter_seconds(self) -> float:
        return self.jitter / self.clock_rate
