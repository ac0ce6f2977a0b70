"""The appliance's own health monitor, the core (sans-IO): check results in, decisions and the
next deadline out.

As CCE's health monitor does, the appliance checks itself regularly: its roles are running,
its listeners accept connections, its gateways can be reached (not every one of them down),
its certificates are valid (none expired). The adapter (``mgmt.self_health_io``) runs the
checks and hands the results to :meth:`SelfHealth.checked` with ``now``; the answer says what
to do and when to check next:

- all pass while online: nothing; next check after ``interval``;
- a check fails while online: ``drain`` (enter maintenance, so the cloud sends no new calls,
  and report the appliance offline); next check after ``retry``;
- still failing: nothing; the k-th consecutive failure waits ``retry`` for k <= ``retries``,
  then ``retry x 2^(k - retries)``, never more than ``cap`` (CCE: 10 s x 3, then doubling up
  to 1 h: 10, 10, 10, 20, 40, ..., 2560, 3600, 3600 ...);
- all pass while offline: ``restore`` (leave maintenance, online again); next check after
  ``interval``.

The states and inputs are a table (:data:`MOVES`). Time is a parameter (monotonic seconds).
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from hybridvoice.cms.settings_health import HealthMonitor as HealthMonitorSettings

__all__ = ["CHECKS", "MOVES", "CheckResult", "SelfHealth", "Verdict", "backoff"]

#: what is checked, in this order
CHECKS: Final = ("roles", "listeners", "gateways", "certificates")

State = Literal["starting", "online", "offline"]
Action = Literal["none", "drain", "restore"]

#: (state, all checks passed) -> (next state, action)
MOVES: Final[Mapping[tuple[State, bool], tuple[State, Action]]] = types.MappingProxyType(
    {
        ("starting", True): ("online", "none"),
        ("starting", False): ("offline", "drain"),
        ("online", True): ("online", "none"),
        ("online", False): ("offline", "drain"),
        ("offline", True): ("online", "restore"),
        ("offline", False): ("offline", "none"),
    }
)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's outcome: ``detail`` says what failed (empty when it passed)."""

    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do after a round of checks, and when to check again."""

    action: Action
    state: State
    failing: tuple[CheckResult, ...]
    next_check: float


def backoff(failures: int, retry: float, retries: int, cap: float) -> float:
    """The wait after the ``failures``-th consecutive failed round (``failures`` >= 1)."""
    if failures < 1:
        raise ValueError(f"failures must be >= 1, got {failures}")
    if failures <= retries:
        return min(retry, cap)
    return float(min(retry * 2 ** (failures - retries), cap))


class SelfHealth:
    """The monitor's state: online or offline, the failures in a row, the last results."""

    __slots__ = (
        "cap", "failures", "interval", "last_check", "next_check", "results", "retries",
        "retry", "state", "transitions",
    )  # fmt: skip

    def __init__(
        self, *, interval: float, retry: float = 10.0, retries: int = 3, cap: float = 3600.0
    ) -> None:
        if interval <= 0 or retry <= 0 or cap <= 0 or retries < 0:
            raise ValueError(
                f"interval, retry and cap must be > 0 and retries >= 0, got {interval}, "
                f"{retry}, {cap}, {retries}"
            )
        self.interval, self.retry, self.retries, self.cap = interval, retry, retries, cap
        self.state: State = "starting"
        self.failures = 0
        self.last_check: float | None = None
        self.next_check = 0.0
        self.results: tuple[CheckResult, ...] = ()
        #: drains and restores so far (``hybridvoice_appliance_health_transitions``)
        self.transitions = {"drain": 0, "restore": 0}

    @classmethod
    def from_settings(cls, section: HealthMonitorSettings) -> SelfHealth:
        return cls(
            interval=section.interval_seconds,
            retry=section.retry_seconds,
            retries=section.retries,
            cap=section.max_retry_seconds,
        )

    @property
    def failing(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if not r.ok)

    @property
    def offline(self) -> bool:
        return self.state == "offline"

    def due(self, now: float) -> bool:
        return now >= self.next_check

    def checked(self, results: Iterable[CheckResult], now: float) -> Verdict:
        """A round of checks finished at ``now``: the decision and the next deadline."""
        self.results = tuple(results)
        self.last_check = now
        ok = all(r.ok for r in self.results)
        self.state, action = MOVES[(self.state, ok)]
        if ok:
            self.failures = 0
            self.next_check = now + self.interval
        else:
            self.failures += 1
            self.next_check = now + backoff(self.failures, self.retry, self.retries, self.cap)
        if action != "none":
            self.transitions[action] += 1
        return Verdict(action, self.state, self.failing, self.next_check)
