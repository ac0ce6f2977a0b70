"""Erlang B: the blocking probability of a trunk group, and the trunks a traffic needs.

Erlang's loss formula (ITU-T E.520 and the classic telephone-traffic tables): with
``E`` erlangs of busy-hour traffic offered to ``N`` trunks, lost calls cleared, the share of
calls that find every trunk busy is

    B(E, N) = (E^N / N!) / sum(E^k / k!, k = 0..N)

Computed here with the recursion ``B(E, 0) = 1``, ``B(E, n) = E*B(E, n-1) / (n + E*B(E, n-1))``,
which never forms the factorials or powers: every step stays in [0, 1], so it neither
overflows nor loses precision for thousands of trunks. Pure functions, no I/O.
"""

from __future__ import annotations

import math

from hybridvoice.planning.sizing_errors import SizingError

__all__ = [
    "MAX_TRAFFIC_ERLANGS",
    "MAX_TRUNKS",
    "SizingError",
    "check_blocking",
    "check_traffic",
    "erlang_b",
    "trunks_for",
]

#: The largest traffic accepted (erlangs). 200 sites of 16 appliances at 500 calls is
#: 1.6 million concurrent calls; a single trunk group of 100,000 erlangs is far past any
#: gateway plan and keeps :func:`trunks_for` under a second.
MAX_TRAFFIC_ERLANGS = 100_000.0
#: The largest trunk count :func:`erlang_b` takes.
MAX_TRUNKS = 1_000_000


def check_traffic(traffic_erlangs: float, field: str = "traffic_erlangs") -> float:
    """``traffic_erlangs`` as a float in 0..MAX_TRAFFIC_ERLANGS, else SizingError(field)."""
    if isinstance(traffic_erlangs, bool) or not isinstance(traffic_erlangs, int | float):
        raise SizingError(field, f"must be a number of erlangs, not {traffic_erlangs!r}")
    value = float(traffic_erlangs)
    if math.isnan(value):
        raise SizingError(field, "must be a number of erlangs, not NaN")
    if value < 0:
        raise SizingError(field, f"must be 0 or more erlangs, not {value:g}")
    if value > MAX_TRAFFIC_ERLANGS:
        raise SizingError(
            field, f"must be at most {MAX_TRAFFIC_ERLANGS:,.0f} erlangs, not {value:g}"
        )
    return value


def check_blocking(blocking: float, field: str = "blocking") -> float:
    """``blocking`` as a float strictly between 0 and 1, else SizingError(field)."""
    if isinstance(blocking, bool) or not isinstance(blocking, int | float):
        raise SizingError(field, f"must be a probability, not {blocking!r}")
    value = float(blocking)
    if math.isnan(value) or not 0.0 < value < 1.0:
        raise SizingError(
            field, f"must be a probability between 0 and 1 (exclusive, e.g. 0.01), not {value:g}"
        )
    return value


def erlang_b(traffic_erlangs: float, trunks: int) -> float:
    """The blocking probability of ``trunks`` trunks offered ``traffic_erlangs`` erlangs.

    In [0, 1]: 1 with no trunks (every call is lost), 0 with no traffic.
    """
    traffic = check_traffic(traffic_erlangs)
    if isinstance(trunks, bool) or not isinstance(trunks, int):
        raise SizingError("trunks", f"must be a whole number of trunks, not {trunks!r}")
    if trunks < 0:
        raise SizingError("trunks", f"must be 0 or more, not {trunks}")
    if trunks > MAX_TRUNKS:
        raise SizingError("trunks", f"must be at most {MAX_TRUNKS:,}, not {trunks:,}")
    b = 1.0
    for n in range(1, trunks + 1):
        b = traffic * b / (n + traffic * b)
    return b


def trunks_for(traffic_erlangs: float, blocking: float) -> int:
    """The smallest number of trunks ``N`` with ``erlang_b(traffic, N) <= blocking``."""
    traffic = check_traffic(traffic_erlangs)
    target = check_blocking(blocking)
    b, n = 1.0, 0
    # B(E, n) falls strictly towards 0 as n grows, so the loop ends; for E erlangs it ends
    # near E + a few times sqrt(E) trunks.
    while b > target:
        n += 1
        b = traffic * b / (n + traffic * b)
    return n
