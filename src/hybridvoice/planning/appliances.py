"""Appliance sizing: appliances per site, sites, spares and the availability they give.

The original's limits (CCE-REFERENCE.md, "Limits, sites, high availability"):

- an appliance carries 500 concurrent calls on Normal hardware (the "large" appliance) and 50
  on Minimum hardware (``HardwareType`` in CloudConnector.ini);
- up to 16 appliances per site (spares included), up to 200 sites;
- N+1 gives 500*N calls at 99.8% availability, N+2 gives 99.9%.

The availability model: appliances fail independently, each up with probability ``a``; a site
of N+k appliances carries its planned calls while at least N are up, so its availability is
the binomial tail ``sum(C(N+k, j) a^j (1-a)^(N+k-j), j = N..N+k)``.
:func:`appliance_availability_for` solves that for ``a``: it tells which per-appliance figure
the original's quoted site figures stand for. They depend on N, and no single ``a`` gives both
quoted figures exactly (N+2 always gives much more than N+1 for the same ``a``), so the
default :data:`DEFAULT_APPLIANCE_AVAILABILITY` is the lowest figure (to 0.001) at which every
site the original allows meets both: 15+1 at least 99.8%, 14+2 at least 99.9%.
Pure functions over frozen dataclasses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from hybridvoice.planning.sizing_errors import SizingError

__all__ = [
    "CALLS_PER_APPLIANCE",
    "DEFAULT_APPLIANCE_AVAILABILITY",
    "HARDWARE",
    "MAX_APPLIANCES_PER_SITE",
    "MAX_SITES",
    "QUOTED_AVAILABILITY",
    "REDUNDANCIES",
    "SPARES",
    "AppliancePlan",
    "Hardware",
    "Redundancy",
    "SiteAppliances",
    "SiteCapacity",
    "appliance_availability_for",
    "plan_appliances",
    "site_availability",
    "site_capacity",
]

Hardware = Literal["normal", "minimum"]
HARDWARE: tuple[Hardware, ...] = ("normal", "minimum")
#: Concurrent calls per appliance (CCE-REFERENCE.md: Normal = 500, Minimum = 50).
CALLS_PER_APPLIANCE: MappingProxyType[str, int] = MappingProxyType({"normal": 500, "minimum": 50})
Redundancy = Literal["N+1", "N+2"]
REDUNDANCIES: tuple[Redundancy, ...] = ("N+1", "N+2")
SPARES: MappingProxyType[str, int] = MappingProxyType({"N+1": 1, "N+2": 2})
#: The site availability the original quoted for each redundancy.
QUOTED_AVAILABILITY: MappingProxyType[str, float] = MappingProxyType({"N+1": 0.998, "N+2": 0.999})
MAX_APPLIANCES_PER_SITE = 16
MAX_SITES = 200
#: See the module docstring: 15+1 gives 99.815%, 14+2 gives 99.997% with it.
DEFAULT_APPLIANCE_AVAILABILITY = 0.996


@dataclass(frozen=True, slots=True)
class SiteCapacity:
    """What a site of ``appliances`` carries: all up, and with its spares down."""

    appliances: int
    spares: int
    calls_per_appliance: int

    @property
    def installed_calls(self) -> int:
        """Every appliance up (the original's "16 large appliances: 8,000 calls")."""
        return self.appliances * self.calls_per_appliance

    @property
    def guaranteed_calls(self) -> int:
        """With ``spares`` appliances down (the original's "3+1: 1,500 calls")."""
        return (self.appliances - self.spares) * self.calls_per_appliance


@dataclass(frozen=True, slots=True)
class SiteAppliances:
    """One site of the plan: ``active`` appliances carry its calls, ``spares`` stand by."""

    name: str
    active: int
    spares: int
    calls_per_appliance: int
    #: P(at least ``active`` of ``active + spares`` appliances up).
    availability: float
    #: The per-appliance availability at which this site reaches the original's quoted figure.
    appliance_availability_for_quoted: float

    @property
    def appliances(self) -> int:
        return self.active + self.spares

    @property
    def guaranteed_calls(self) -> int:
        return self.active * self.calls_per_appliance

    @property
    def installed_calls(self) -> int:
        return self.appliances * self.calls_per_appliance


@dataclass(frozen=True, slots=True)
class AppliancePlan:
    """Sites and appliances for ``concurrent_calls``, and the inputs they follow from."""

    concurrent_calls: int
    hardware: Hardware
    redundancy: Redundancy
    calls_per_appliance: int
    appliance_availability: float
    quoted_availability: float
    sites: tuple[SiteAppliances, ...]

    @property
    def appliances(self) -> int:
        return sum(s.appliances for s in self.sites)

    @property
    def active(self) -> int:
        return sum(s.active for s in self.sites)

    @property
    def guaranteed_calls(self) -> int:
        return sum(s.guaranteed_calls for s in self.sites)

    @property
    def meets_quoted(self) -> bool:
        """Every site at least as available as the original quoted for the redundancy."""
        return all(s.availability >= self.quoted_availability for s in self.sites)


def _check_hardware(hardware: str) -> Hardware:
    for known in HARDWARE:
        if hardware == known:
            return known
    raise SizingError(
        "hardware",
        f"must be normal (500 calls per appliance) or minimum (50), not {hardware!r}",
    )


def _check_redundancy(redundancy: str) -> Redundancy:
    for known in REDUNDANCIES:
        if str(redundancy).upper() == known:
            return known
    raise SizingError("redundancy", f"must be N+1 or N+2, not {redundancy!r}")


def _check_probability(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SizingError(field, f"must be a probability, not {value!r}")
    p = float(value)
    if math.isnan(p) or not 0.0 < p <= 1.0:
        raise SizingError(field, f"must be above 0 and at most 1 (e.g. 0.996), not {p:g}")
    return p


def _check_count(value: object, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SizingError(field, f"must be a whole number, not {value!r}")
    if not low <= value <= high:
        raise SizingError(field, f"must be between {low} and {high:,}, not {value:,}")
    return value


def site_capacity(appliances: int, hardware: str, redundancy: str) -> SiteCapacity:
    """The calls a site of ``appliances`` (spares included) carries."""
    spares = SPARES[_check_redundancy(redundancy)]
    count = _check_count(appliances, "appliances", spares + 1, MAX_APPLIANCES_PER_SITE)
    return SiteCapacity(count, spares, CALLS_PER_APPLIANCE[_check_hardware(hardware)])


def site_availability(active: int, spares: int, appliance_availability: float) -> float:
    """P(at least ``active`` of ``active + spares`` independent appliances are up)."""
    a = _check_probability(appliance_availability, "appliance_availability")
    n = _check_count(active, "active", 1, MAX_APPLIANCES_PER_SITE)
    k = _check_count(spares, "spares", 0, MAX_APPLIANCES_PER_SITE - n)
    total = n + k
    return min(
        1.0, sum(math.comb(total, j) * a**j * (1 - a) ** (total - j) for j in range(n, total + 1))
    )


def appliance_availability_for(site_target: float, active: int, spares: int) -> float:
    """The lowest per-appliance availability at which ``active + spares`` appliances give a
    site availability of at least ``site_target`` (bisection; the tail grows with ``a``)."""
    target = _check_probability(site_target, "site_availability")
    low, high = 0.0, 1.0
    for _ in range(60):
        middle = (low + high) / 2
        if middle > 0 and site_availability(active, spares, middle) >= target:
            high = middle
        else:
            low = middle
    return high


def plan_appliances(
    concurrent_calls: int,
    hardware: str = "normal",
    redundancy: str = "N+1",
    appliance_availability: float = DEFAULT_APPLIANCE_AVAILABILITY,
) -> AppliancePlan:
    """Sites and appliances (at most 16 per site, spares included) for ``concurrent_calls``.

    The active appliances are the fewest that carry the calls; they are spread evenly over the
    fewest sites that hold them with the spares each site needs.
    """
    calls = _check_count(concurrent_calls, "concurrent_calls", 1, 10**9)
    kind = _check_hardware(hardware)
    level = _check_redundancy(redundancy)
    a = _check_probability(appliance_availability, "appliance_availability")
    per, spares = CALLS_PER_APPLIANCE[kind], SPARES[level]
    active = math.ceil(calls / per)
    per_site = MAX_APPLIANCES_PER_SITE - spares
    site_count = math.ceil(active / per_site)
    if site_count > MAX_SITES:
        most = MAX_SITES * per_site * per
        raise SizingError(
            "concurrent_calls",
            f"{calls:,} calls need {site_count:,} sites of {per_site}+{spares} {kind} "
            f"appliances; the original allows at most {MAX_SITES} sites ({most:,} calls)",
        )
    quoted = QUOTED_AVAILABILITY[level]
    base, extra = divmod(active, site_count)
    sites = []
    for i in range(site_count):
        n = base + (1 if i < extra else 0)
        sites.append(
            SiteAppliances(
                f"site-{i + 1}",
                n,
                spares,
                per,
                site_availability(n, spares, a),
                appliance_availability_for(quoted, n, spares),
            )
        )
    return AppliancePlan(calls, kind, level, per, a, quoted, tuple(sites))
