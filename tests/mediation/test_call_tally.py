"""The mediation role's call tally: calls ended by result and the setup-time histogram
(cumulative buckets, ``+Inf`` equal to the count), on given times."""

from __future__ import annotations

from hybridvoice.mediation.call_tally import SETUP_BUCKETS, CallTally


def test_setup_times_fall_in_cumulative_buckets() -> None:
    tally = CallTally()
    for started, now in ((100.0, 100.03), (100.0, 100.1), (5.0, 9.0), (0.0, 500.0), (3.0, 2.0)):
        tally.answered(started, now)
    buckets = dict(tally.buckets())
    assert buckets["0.05"] == 2  # 0.03 s and a clock that went back (counted as 0)
    assert buckets["0.1"] == 3  # an upper bound is inclusive
    assert buckets["5.0"] == 4 and buckets["60.0"] == 4
    assert buckets["+Inf"] == tally.setup_count == 5
    assert list(buckets)[: len(SETUP_BUCKETS)] == [repr(b) for b in SETUP_BUCKETS]
    assert abs(tally.setup_sum - (0.03 + 0.1 + 4.0 + 500.0)) < 1e-9


def test_ends_by_result() -> None:
    tally = CallTally()
    tally.end(answered=True)
    tally.end(answered=False)
    tally.end(answered=False)
    assert tally.ended == {"answered": 1, "failed": 2}
