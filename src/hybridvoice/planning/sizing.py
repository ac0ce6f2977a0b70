"""Gateway sizing: PSTN gateway ports and gateways per site (seed 004, "Gateway Size and Number").

The rule of thumb of the original's planning guide (seed 004):

- one port per 15 users for light usage (one PSTN call per user per hour), per 10 users for
  moderate usage (two), per 5 users for heavy usage (three or more);
- gateways range from 2 to 960 ports;
- at least two gateways, so that one can fail;
- one or more gateways at each site that gives PSTN connectivity.

When the busy-hour traffic is known, Erlang B (:mod:`hybridvoice.planning.erlang`) gives the
trunks for a grade of service; the larger of the two figures rules. Pure functions over frozen
dataclasses; inputs out of range raise :class:`SizingError` naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from hybridvoice.planning.erlang import check_blocking, check_traffic, trunks_for
from hybridvoice.planning.sizing_errors import SizingError

__all__ = [
    "CALLS_PER_USER_HOUR",
    "MAX_GATEWAY_PORTS",
    "MAX_SITES",
    "MAX_USERS",
    "MIN_GATEWAYS",
    "MIN_GATEWAY_PORTS",
    "USAGES",
    "USERS_PER_PORT",
    "GatewayPlan",
    "SiteGateways",
    "SizingError",
    "Usage",
    "even_sites",
    "plan_gateways",
    "ports_for",
    "split_gateways",
]

Usage = Literal["light", "moderate", "heavy"]
USAGES: tuple[Usage, ...] = ("light", "moderate", "heavy")
#: Users served by one gateway port (seed 004).
USERS_PER_PORT: MappingProxyType[str, int] = MappingProxyType(
    {"light": 15, "moderate": 10, "heavy": 5}
)
#: PSTN calls per user in the busy hour that each usage stands for (seed 004).
CALLS_PER_USER_HOUR: MappingProxyType[str, str] = MappingProxyType(
    {"light": "1", "moderate": "2", "heavy": "3 or more"}
)
#: The gateway sizes most organisations consider (seed 004): 2 to 960 ports.
MIN_GATEWAY_PORTS = 2
MAX_GATEWAY_PORTS = 960
#: A minimum of two gateways, to stay available when one fails (seed 004); at every site.
MIN_GATEWAYS = 2
#: Up to 200 sites (the original's limit of PSTN sites per tenant, CCE-REFERENCE.md).
MAX_SITES = 200
#: More users than any one tenant plans for; keeps the answer a sizing, not an overflow.
MAX_USERS = 10_000_000


@dataclass(frozen=True, slots=True)
class SiteGateways:
    """One site's ports and gateways."""

    name: str
    users: int
    #: Ports by the rule of thumb: ceil(users / users per port).
    rule_ports: int
    #: The site's share of the busy-hour traffic and the Erlang B trunks for it, if given.
    traffic_erlangs: float | None
    erlang_trunks: int | None
    #: Ports of each gateway at the site (at least two gateways, each 2..960 ports).
    gateways: tuple[int, ...]

    @property
    def ports(self) -> int:
        """The ports the site needs: the larger of the rule and Erlang B."""
        return max(self.rule_ports, self.erlang_trunks or 0)

    @property
    def rules(self) -> Literal["rule of thumb", "Erlang B"]:
        """Which figure sets :attr:`ports`."""
        if self.erlang_trunks is not None and self.erlang_trunks > self.rule_ports:
            return "Erlang B"
        return "rule of thumb"

    @property
    def installed_ports(self) -> int:
        """Ports of all the site's gateways together (>= :attr:`ports`)."""
        return sum(self.gateways)


@dataclass(frozen=True, slots=True)
class GatewayPlan:
    """Gateways for every site, and the inputs they follow from."""

    usage: Usage
    users_per_port: int
    busy_hour_erlangs: float | None
    blocking: float | None
    sites: tuple[SiteGateways, ...]

    @property
    def users(self) -> int:
        return sum(s.users for s in self.sites)

    @property
    def ports(self) -> int:
        return sum(s.ports for s in self.sites)

    @property
    def installed_ports(self) -> int:
        return sum(s.installed_ports for s in self.sites)

    @property
    def gateway_count(self) -> int:
        return sum(len(s.gateways) for s in self.sites)


def _check_users(users: object, field: str = "users") -> int:
    if isinstance(users, bool) or not isinstance(users, int):
        raise SizingError(field, f"must be a whole number of users, not {users!r}")
    if not 1 <= users <= MAX_USERS:
        raise SizingError(field, f"must be between 1 and {MAX_USERS:,} users, not {users:,}")
    return users


def _check_usage(usage: str) -> Usage:
    for known in USAGES:
        if usage == known:
            return known
    raise SizingError("usage", f"must be one of {', '.join(USAGES)}, not {usage!r}")


def ports_for(users: int, usage: str) -> int:
    """Gateway ports by the rule of thumb: one per 15, 10 or 5 users (seed 004)."""
    return math.ceil(_check_users(users) / USERS_PER_PORT[_check_usage(usage)])


def split_gateways(ports: int) -> tuple[int, ...]:
    """The fewest gateways (never fewer than two) of 2..960 ports that carry ``ports``, spread
    evenly: sizes differ by at most one port, and every gateway has at least two."""
    if isinstance(ports, bool) or not isinstance(ports, int) or ports < 0:
        raise SizingError("ports", f"must be a whole number, 0 or more, not {ports!r}")
    count = max(MIN_GATEWAYS, math.ceil(ports / MAX_GATEWAY_PORTS))
    base, extra = divmod(ports, count)
    return tuple(max(MIN_GATEWAY_PORTS, base + (1 if i < extra else 0)) for i in range(count))


def even_sites(users: int, count: int) -> tuple[tuple[str, int], ...]:
    """``count`` sites named site-1, site-2, ... sharing ``users`` as evenly as can be."""
    _check_users(users)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_SITES:
        raise SizingError("sites", f"must be between 1 and {MAX_SITES} sites, not {count!r}")
    if count > users:
        raise SizingError(
            "sites", f"{count} sites for {users} users: every site needs at least one user"
        )
    base, extra = divmod(users, count)
    return tuple((f"site-{i + 1}", base + (1 if i < extra else 0)) for i in range(count))


def _check_sites(sites: Sequence[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    if not 1 <= len(sites) <= MAX_SITES:
        raise SizingError("sites", f"must be between 1 and {MAX_SITES} sites, not {len(sites)}")
    seen: set[str] = set()
    checked = []
    for raw_name, users in sites:
        name = raw_name.strip() if isinstance(raw_name, str) else ""
        if not name:
            raise SizingError("sites", "a site needs a name (NAME=USERS)")
        if name in seen:
            raise SizingError("sites", f"site {name!r} is named twice")
        seen.add(name)
        checked.append((name, _check_users(users, f"sites[{name}]")))
    return tuple(checked)


def plan_gateways(
    users: int | None,
    usage: str,
    *,
    sites: Sequence[tuple[str, int]] | None = None,
    busy_hour_erlangs: float | None = None,
    blocking: float = 0.01,
) -> GatewayPlan:
    """Ports and gateways per site for ``users`` of the given ``usage``.

    ``sites``: (name, users) pairs; without them, one site of ``users``. With both, the sites'
    users must add up to ``users`` (``users`` may be None then). ``busy_hour_erlangs``: the
    whole organisation's busy-hour PSTN traffic, shared among the sites by their users; each
    site then also gets the Erlang B trunks for ``blocking``, and the larger figure rules.
    """
    kind = _check_usage(usage)
    if sites is None:
        if users is None:
            raise SizingError("users", "give the number of users (or the sites' users)")
        site_list: tuple[tuple[str, int], ...] = (("site-1", _check_users(users)),)
    else:
        site_list = _check_sites(sites)
        total = sum(n for _, n in site_list)
        if users is not None and _check_users(users) != total:
            raise SizingError("users", f"{users:,} users, but the sites' users add up to {total:,}")
        _check_users(total)
    traffic = (
        None if busy_hour_erlangs is None else check_traffic(busy_hour_erlangs, "busy_hour_erlangs")
    )
    grade = None if traffic is None else check_blocking(blocking)
    total_users = sum(n for _, n in site_list)
    planned = []
    for name, site_users in site_list:
        rule = math.ceil(site_users / USERS_PER_PORT[kind])
        share = trunks = None
        if traffic is not None and grade is not None:
            share = traffic * site_users / total_users
            trunks = trunks_for(share, grade)
        ports = max(rule, trunks or 0)
        planned.append(SiteGateways(name, site_users, rule, share, trunks, split_gateways(ports)))
    return GatewayPlan(kind, USERS_PER_PORT[kind], traffic, grade, tuple(planned))
