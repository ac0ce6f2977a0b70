"""A request rate limit per source address for the TURN relay (RFC 8656 §21.4 "DoS against
TURN server"; RFC 8489 §16.1: a server may drop requests it cannot afford to answer).

A token bucket per source IP: ``rate`` tokens a second up to ``burst``; each STUN request
from the source takes one; a request that finds the bucket empty is dropped unanswered (the
client's retransmission timer backs off, RFC 8489 §6.2.1). ChannelData and indications are
not requests and are not limited here (the data path has its own per-allocation checks).
At most ``max_sources`` buckets are kept: past that the least recently refilled half is
forgotten (a flood of spoofed sources costs memory up to the cap, no more). Time is given.
"""

from __future__ import annotations

from typing import Final

__all__ = ["SourceRateLimit"]

#: Buckets kept at most (one per source IP).
MAX_SOURCES: Final = 65536


class SourceRateLimit:
    """Token buckets by source IP; :meth:`allow` says whether a request may go on."""

    __slots__ = ("_buckets", "burst", "max_sources", "rate")

    def __init__(self, rate: float, burst: int, max_sources: int = MAX_SOURCES) -> None:
        if rate <= 0 or burst < 1 or max_sources < 1:
            raise ValueError("rate > 0, burst >= 1 and max_sources >= 1")
        self.rate = rate
        self.burst = float(burst)
        self.max_sources = max_sources
        #: source IP -> (tokens left, when last refilled)
        self._buckets: dict[str, tuple[float, float]] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, source: str, now: float) -> bool:
        """Take a token of ``source``'s bucket at ``now``; False when there is none."""
        buckets = self._buckets
        entry = buckets.get(source)
        if entry is None:
            if len(buckets) >= self.max_sources:
                self._forget_oldest()
            tokens = self.burst
        else:
            tokens = min(self.burst, entry[0] + (now - entry[1]) * self.rate)
        if tokens < 1.0:
            buckets[source] = (tokens, now)
            return False
        buckets[source] = (tokens - 1.0, now)
        return True

    def _forget_oldest(self) -> None:
        by_age = sorted(self._buckets.items(), key=lambda item: item[1][1])
        for source, _ in by_age[: max(1, len(by_age) // 2)]:
            del self._buckets[source]
