"""How the mediation role's calls ended and how long they took to set up: counters for
``/metrics`` (the original's call counters; setup time as the post-dial delay of RFC 6076
§4.4 seen by the B2BUA: from the INVITE in to the 200 OK passed back).

Sans-IO: the bridge reports with the ``now`` it was given; nothing here reads a clock.
The histogram keeps cumulative counts per upper bound (:data:`SETUP_BUCKETS`, seconds) like a
Prometheus histogram, its sum and count; reading it costs nothing on the call path.
"""

from __future__ import annotations

import bisect
from typing import Final

__all__ = ["RESULTS", "SETUP_BUCKETS", "CallTally"]

#: upper bounds of the setup-time histogram, seconds (PSTN post-dial delays: 0.1 s to a minute)
SETUP_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0)
#: how an admitted call ended: the callee answered, or it never was
RESULTS: Final = ("answered", "failed")


class CallTally:
    """Calls ended by result and the setup-time histogram of the answered ones."""

    __slots__ = ("_buckets", "ended", "setup_count", "setup_sum")

    def __init__(self) -> None:
        #: admitted calls that ended, by :data:`RESULTS`
        self.ended: dict[str, int] = dict.fromkeys(RESULTS, 0)
        self._buckets = [0] * len(SETUP_BUCKETS)  # per bucket, not cumulative
        self.setup_count = 0
        self.setup_sum = 0.0

    def answered(self, started: float, now: float) -> None:
        """A call set up in ``now - started`` seconds (never negative)."""
        seconds = max(0.0, now - started)
        index = bisect.bisect_left(SETUP_BUCKETS, seconds)
        if index < len(self._buckets):
            self._buckets[index] += 1
        self.setup_count += 1
        self.setup_sum += seconds

    def end(self, answered: bool) -> None:
        """An admitted call ended (answered before, or not)."""
        self.ended["answered" if answered else "failed"] += 1

    def buckets(self) -> list[tuple[str, int]]:
        """``(upper bound, cumulative count)`` pairs, ``+Inf`` last (the exposition's form)."""
        out, total = [], 0
        for bound, n in zip(SETUP_BUCKETS, self._buckets, strict=True):
            total += n
            out.append((repr(bound), total))
        out.append(("+Inf", self.setup_count))
        return out
