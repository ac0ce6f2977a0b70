"""One gateway's health: a state machine fed by OPTIONS probes and by calls (sans-IO).

Inputs (RFC 3261 §11.2, §17.1.1.2, §18.4):

- an *answer*: any final response to an OPTIONS probe (even 404 or 405: the gateway is
  alive), or a response of the gateway to an INVITE (passive: a call it answered or
  refused shows it is there);
- a *miss*: an OPTIONS probe without a final response within its timeout, or a transport
  error; and, passively, an INVITE to the gateway that timed out (Timer B: the local 408) or
  could not be sent (a transport error). A passive miss counts at once and asks for a probe
  at once (:meth:`GatewayHealth.next_probe` returns ``now``), so a gateway that dies between
  two probes is confirmed in one probe timeout instead of a whole interval.

States: ``unknown`` (not probed yet; routing treats it as up), ``up``, ``down``. The moves
are in :data:`MOVES`: ``UnhealthyAfterMissed`` consecutive misses take an unknown or up
gateway down, ``HealthyAfterAnswered`` consecutive answers bring a down one up (the first
answer makes an unknown gateway up). An answer clears the miss count and a miss the answer
count.

Probing (:meth:`GatewayHealth.next_probe`): every ``OptionsIntervalSeconds`` when the
gateway has ``SendSipOptions``; without it only while it is down (so a gateway that calls
marked down is probed back and returns by itself) or after a passive miss. Time is a
parameter (``now``, monotonic seconds).
"""

from __future__ import annotations

import enum
import types
from collections import deque
from dataclasses import dataclass
from typing import Final, Literal, TypeVar

from hybridvoice.cms.settings import Gateway, TrunkConfiguration

__all__ = ["MOVES", "GatewayHealth", "Health", "HealthChange", "HealthPolicy", "Signal"]


class Health(enum.Enum):
    """A gateway's health as its OPTIONS probes and calls see it."""

    UNKNOWN = "unknown"  # not probed yet, or never (SendSipOptions = false): treated as up
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class HealthChange:
    """A gateway went up or down at ``at``; ``reason`` says why (for logs and events)."""

    gateway: str
    health: Health
    at: float
    reason: str


Signal = Literal["answer", "miss"]
_N = TypeVar("_N", int, float)

#: (state, signal) -> (the state it leads to, the policy's threshold that must be reached:
#: consecutive signals of that kind). A pair not listed changes nothing.
MOVES: Final = types.MappingProxyType(
    {
        (Health.UNKNOWN, "answer"): (Health.UP, "one"),
        (Health.UNKNOWN, "miss"): (Health.DOWN, "down_after"),
        (Health.UP, "miss"): (Health.DOWN, "down_after"),
        (Health.DOWN, "answer"): (Health.UP, "up_after"),
    }
)


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """How one gateway is watched: its own keys, else ``[TrunkConfiguration]``'s."""

    interval: float = 60.0
    timeout: float = 60.0
    down_after: int = 3
    up_after: int = 1
    #: probe all the time (``SendSipOptions``); False: only while down or after a passive miss
    probe: bool = True

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.timeout <= 0:
            raise ValueError(f"interval and timeout must be > 0, got {self.interval}, "
                             f"{self.timeout}")  # fmt: skip
        if self.down_after < 1 or self.up_after < 1:
            raise ValueError(f"thresholds must be >= 1, got {self.down_after}, {self.up_after}")

    @classmethod
    def of(cls, gateway: Gateway, trunk: TrunkConfiguration | None = None) -> HealthPolicy:
        """The policy of ``gateway``: its ``Options*``/``*After*`` keys, else the trunk's."""
        t = trunk if trunk is not None else TrunkConfiguration()
        g = gateway
        interval = _or(g.options_interval_seconds, t.options_interval_seconds)
        timeout = _or(g.options_timeout_seconds, _or(t.options_timeout_seconds, interval))
        return cls(
            interval=interval,
            timeout=timeout,
            down_after=_or(g.unhealthy_after_missed, t.unhealthy_after_missed),
            up_after=_or(g.healthy_after_answered, t.healthy_after_answered),
            probe=g.send_sip_options,
        )

    def threshold(self, name: str) -> int:
        return 1 if name == "one" else int(getattr(self, name))


def _or(value: _N | None, default: _N) -> _N:
    return default if value is None else value


class GatewayHealth:
    """The health state machine of one gateway (see the module docstring)."""

    __slots__ = (
        "_last_probe", "_probe_soon", "answers", "changes", "gateway", "misses", "policy",
        "since", "state", "transitions",
    )  # fmt: skip

    def __init__(self, gateway: str, policy: HealthPolicy) -> None:
        self.gateway = gateway
        self.policy = policy
        self.state = Health.UNKNOWN
        self.since: float | None = None
        self.misses = 0
        self.answers = 0
        #: changes so far, by the state entered (``hybridvoice_gateway_health_transitions``)
        self.transitions: dict[Health, int] = {Health.UP: 0, Health.DOWN: 0}
        #: changes not yet taken by whoever reports them (the pinger: :meth:`take_changes`),
        #: whatever caused them, a probe or a call; the newest few only
        self.changes: deque[HealthChange] = deque(maxlen=8)
        self._last_probe: float | None = None
        self._probe_soon = False

    @property
    def healthy(self) -> bool:
        """Up, or not known to be down."""
        return self.state is not Health.DOWN

    def answered(self, now: float, reason: str) -> HealthChange | None:
        """The gateway answered (an OPTIONS probe or an INVITE): the change, if any."""
        self.misses = 0
        self.answers += 1
        return self._signal("answer", self.answers, now, reason)

    def missed(self, now: float, reason: str, *, passive: bool = False) -> HealthChange | None:
        """A probe or (``passive``) an INVITE got no answer: the change, if any. A passive
        miss also asks for a probe at once."""
        self.answers = 0
        self.misses += 1
        if passive:
            self._probe_soon = True
        return self._signal("miss", self.misses, now, reason)

    def _signal(self, signal: Signal, count: int, now: float, reason: str) -> HealthChange | None:
        move = MOVES.get((self.state, signal))
        if move is None:
            return None
        target, threshold = move
        if count < self.policy.threshold(threshold):
            return None
        self.state = target
        self.since = now
        self.transitions[target] += 1
        if target is Health.DOWN:
            reason = f"{count} OPTIONS or calls without an answer (last: {reason})"
        change = HealthChange(self.gateway, target, now, reason)
        self.changes.append(change)
        return change

    def take_changes(self) -> list[HealthChange]:
        """The changes since the last call, oldest first."""
        taken = list(self.changes)
        self.changes.clear()
        return taken

    # --- probing --------------------------------------------------------------------------------

    def next_probe(self) -> float | None:
        """When the next OPTIONS probe is due (None: not probed until something happens)."""
        last = self._last_probe
        if self._probe_soon:
            return last if last is not None else 0.0
        if not self.policy.probe and self.state is not Health.DOWN:
            return None
        return 0.0 if last is None else last + self.policy.interval

    def probe_due(self, now: float) -> bool:
        due = self.next_probe()
        return due is not None and now >= due

    def probing(self, now: float) -> None:
        """A probe is sent at ``now``: the next one is an interval later."""
        self._last_probe = now
        self._probe_soon = False
