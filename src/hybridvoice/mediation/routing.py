"""Outbound gateway selection, failover for one call, appliance capacity and drain (sans-IO).

Routes (``[HybridVoiceRoutes]`` name = regex) match the destination number only, as in CCE;
a regex matches when ``re.search`` finds it (.NET ``Regex.IsMatch`` semantics, so ``.*`` and
anchored ``^\\+1\\d{10}$`` both work as admins expect). A gateway is a candidate for a number
when it is enabled and one of its ``VoiceRoutes`` matches.

Choosing the next gateway (done afresh at every attempt, so health and load are current):

1. healthy gateways first (up, or not yet probed). A gateway marked down (by its OPTIONS
   probes, or at once by an INVITE that timed out or could not be sent: ``.gateway_health``)
   is tried after every healthy one (``TryUnhealthyGatewaysLast``, default true, as Teams
   Direct Routing does); with it false, a down gateway gets no calls until it answers again
   (the CCE behaviour);
2. a gateway at its ``MaxConcurrentSessions`` is skipped;
3. among the rest, the fewest active calls wins; ties are broken at random (the injected
   ``random.Random``). Least-active-calls keeps long calls even across gateways, the random
   tie-break spreads short ones evenly and avoids the lock-step of a shared round-robin
   pointer across appliances of one site (all of which use the same gateways).

:class:`OutboundCall` moves on to the next gateway after a response code in the gateway's
``FailoverResponseCodes`` (408/503/504 by default; a locally generated 408 from Timer B,
RFC 3261 §17.1.1.2, counts), a transport error (§18.4), or, with ``EnableFastFailoverTimer``,
no 18x/final response within ``FailoverTimeSeconds`` (a 100 Trying is hop-by-hop, §21.1.1,
and does not stop the timer). When no gateway is left the outcome says why.

:class:`CallAdmission` is the appliance's concurrent call limit (``HardwareType`` or
``MaxConcurrentCalls``; beyond it: 503 with Retry-After, §21.5.4 and §20.33) and its
maintenance (drain) mode: new calls refused, existing calls finish.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass

from hybridvoice.cms.settings import Settings

from .trunks import GatewayState, TrunkTable

__all__ = [
    "NO_GATEWAY_CONFIGURED",
    "Answered",
    "Attempt",
    "AttemptResult",
    "CallAdmission",
    "NoGatewayLeft",
    "OutboundCall",
    "OutboundRouter",
    "Outcome",
    "Refusal",
    "Rejected",
]

#: The SIP status for the cloud leg when a number matches no route.
NO_ROUTE_STATUS = 404
#: The SIP status for the cloud leg when gateways match but none can take the call.
NO_GATEWAY_STATUS = 503
#: Said at start (a warning) and to every outbound call (503 + Warning) when the settings
#: name no gateway at all: the operator's mistake, not the dialled number's.
NO_GATEWAY_CONFIGURED = (
    "no gateway is configured: add a [Gateway1] section (IP, Port, Protocol, VoiceRoutes) "
    "to the settings"
)


# --- outcomes ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attempt:
    """Send the INVITE to ``gateway`` now; arm the fast-failover timer at ``deadline`` (if set).

    ``number`` counts attempts for this call from 1.
    """

    gateway: GatewayState
    number: int
    deadline: float | None


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """How one attempt ended (for the call record)."""

    gateway: str
    outcome: str  # "200", "503", "transport error", "no answer in 10 s", ...


@dataclass(frozen=True, slots=True)
class Answered:
    """A 2xx came: the call is connected on ``gateway``; call :meth:`OutboundCall.ended` at
    the end."""

    gateway: GatewayState
    status: int


@dataclass(frozen=True, slots=True)
class Rejected:
    """A final response that is not a failover code (486, 404, ...): pass it to the caller."""

    gateway: GatewayState
    status: int


@dataclass(frozen=True, slots=True)
class NoGatewayLeft:
    """The call cannot be placed: answer the caller with ``status`` and ``cause``."""

    status: int
    cause: str
    attempts: tuple[AttemptResult, ...]


Outcome = Attempt | NoGatewayLeft


# --- routes and the router --------------------------------------------------------------------


class OutboundRouter:
    """Picks gateways for outbound calls: route match, health, capacity, spreading."""

    __slots__ = ("_routes", "fast_failover", "rng", "trunks", "try_unhealthy_last")

    def __init__(
        self,
        trunks: TrunkTable,
        routes: Mapping[str, str],
        *,
        rng: random.Random,
        fast_failover: bool = True,
        try_unhealthy_last: bool = False,
    ) -> None:
        self.trunks = trunks
        self.rng = rng
        self.fast_failover = fast_failover
        self.try_unhealthy_last = try_unhealthy_last
        self._routes = {name: re.compile(pattern) for name, pattern in routes.items()}

    @classmethod
    def from_settings(
        cls, settings: Settings, trunks: TrunkTable, rng: random.Random
    ) -> OutboundRouter:
        trunk = settings.trunk_configuration
        return cls(
            trunks,
            settings.hybrid_voice_routes,
            rng=rng,
            fast_failover=trunk.enable_fast_failover_timer,
            try_unhealthy_last=trunk.try_unhealthy_gateways_last,
        )

    def matches(self, gateway: GatewayState, number: str) -> bool:
        """Does one of ``gateway``'s VoiceRoutes match ``number``?"""
        routes = self._routes
        return any(
            (rx := routes.get(name)) is not None and rx.search(number) is not None
            for name in gateway.config.voice_routes
        )

    def candidates(self, number: str) -> tuple[GatewayState, ...]:
        """Enabled gateways with a route matching ``number``, in configuration order."""
        return tuple(g for g in self.trunks if g.config.enabled and self.matches(g, number))

    def pick(self, candidates: list[GatewayState]) -> GatewayState | None:
        """The next gateway among ``candidates`` (see the module docstring), or None."""
        usable = [g for g in candidates if g.has_capacity]
        healthy = [g for g in usable if g.healthy]
        pool = healthy or ([g for g in usable if not g.healthy] if self.try_unhealthy_last else [])
        if not pool:
            return None
        fewest = min(g.active_calls for g in pool)
        least = [g for g in pool if g.active_calls == fewest]
        return least[0] if len(least) == 1 else self.rng.choice(least)

    def start(self, number: str, now: float) -> tuple[OutboundCall, Outcome]:
        """Begin an outbound call to ``number``: the call object and its first step."""
        call = OutboundCall(self, number)
        return call, call.first(now)


class OutboundCall:
    """Failover for one outbound call: which gateway now, and what to do on each outcome.

    Drive it with :meth:`first`, then :meth:`provisional`, :meth:`final`, :meth:`retry`,
    :meth:`transport_error` and :meth:`timer_fired`; call :meth:`ended` when the connected call
    ends or the caller gives up (CANCEL) while an attempt is pending.
    """

    __slots__ = ("_deadline", "_left", "answered", "current", "history", "number", "router")

    def __init__(self, router: OutboundRouter, number: str) -> None:
        self.router = router
        self.number = number
        self._left = list(router.candidates(number))
        self.current: GatewayState | None = None
        self.answered = False
        self._deadline: float | None = None
        self.history: list[AttemptResult] = []

    @property
    def attempts(self) -> int:
        return len(self.history) + (1 if self.current is not None else 0)

    @property
    def deadline(self) -> float | None:
        """When the fast-failover timer of the pending attempt fires (None: not armed)."""
        return self._deadline

    def first(self, now: float) -> Outcome:
        """The first attempt (or why there is none: 503 when no gateway is configured at
        all, 404 when no voice route matches the number)."""
        if not self._left and not len(self.router.trunks):
            return NoGatewayLeft(NO_GATEWAY_STATUS, NO_GATEWAY_CONFIGURED, ())
        if not self._left:
            cause = f"no voice route matches {self.number}"
            return NoGatewayLeft(NO_ROUTE_STATUS, cause, ())
        return self._next(now)

    def provisional(self, status: int, now: float) -> None:
        """A 1xx from the gateway: 101-199 stop the fast-failover timer, 100 does not."""
        if status > 100 and self.current is not None:
            self._deadline = None
            self.router.trunks.invite_answered(self.current.name, now, status)

    def final(
        self, status: int, now: float, outcome: str | None = None
    ) -> Answered | Rejected | Outcome:
        """A final response to the pending INVITE (``outcome``: what the attempt's history
        says, default the status; e.g. a 408 with the TLS failure behind it)."""
        gateway = self._pending()
        if status == 408:  # Timer B or a failed send (our own 408, §8.1.3.1): a miss at once
            self.router.trunks.invite_failed(gateway.name, now, outcome or "408 (no answer)")
        else:
            self.router.trunks.invite_answered(gateway.name, now, status)
        if 200 <= status < 300:
            self._deadline = None
            self.answered = True
            return Answered(gateway, status)
        said = outcome or str(status)
        if status in gateway.config.failover_response_codes:
            return self._fail(said, now)
        self.history.append(AttemptResult(gateway.name, said))
        self._release(failed=False)
        return Rejected(gateway, status)

    def retry(self, now: float) -> Attempt:
        """Send the pending gateway a new INVITE in place of the one it refused (the same
        attempt, not a failover: the media bypass fallback after a 488); the fast-failover
        timer starts again."""
        gateway = self._pending()
        timeout = gateway.config.failover_time_seconds
        self._deadline = now + timeout if self.router.fast_failover else None
        return Attempt(gateway, self.attempts, self._deadline)

    def transport_error(self, now: float) -> Outcome:
        """The INVITE could not be sent, or the connection broke before a final response."""
        gateway = self._pending()
        self.router.trunks.invite_failed(gateway.name, now, "transport error")
        return self._fail("transport error", now)

    def timer_fired(self, now: float) -> Outcome | None:
        """The fast-failover timer fired: CANCEL the pending INVITE and use the returned step.

        None when the timer is stale (an 18x came, or ``now`` is before the deadline).
        """
        if self.current is None or self._deadline is None or now < self._deadline:
            return None
        seconds = self.current.config.failover_time_seconds
        return self._fail(f"no answer in {seconds:g} s", now)

    def gateway_down(self, name: str, reason: str, now: float) -> Outcome | None:
        """Gateway ``name`` was marked down: if the pending, unanswered attempt is on it,
        give it up (the caller's INVITE goes to the next gateway) and return the next step;
        None when the call has nothing pending there. A 180 stops the fast-failover timer, so
        this is what moves a call ringing on a gateway that died."""
        if self.current is None or self.current.name != name or self.answered:
            return None
        return self._fail(f"marked down while pending ({reason})", now)

    def ended(self) -> None:
        """The call is over (BYE after answer, or CANCEL by the caller): free the gateway."""
        if self.current is not None:
            self._release(failed=False)

    # --- internals ----------------------------------------------------------------------------

    def _pending(self) -> GatewayState:
        if self.current is None:
            raise RuntimeError("no attempt is pending")
        return self.current

    def _fail(self, outcome: str, now: float) -> Outcome:
        gateway = self._pending()
        if self.answered:
            raise RuntimeError("the call is answered: no failover any more")
        self.history.append(AttemptResult(gateway.name, outcome))
        self._release(failed=True)
        return self._next(now)

    def _release(self, *, failed: bool) -> None:
        if self.current is not None:
            self.router.trunks.call_ended(self.current.name, failed=failed)
        self.current = None
        self.answered = False
        self._deadline = None

    def _next(self, now: float) -> Outcome:
        gateway = self.router.pick(self._left)
        if gateway is None:
            return NoGatewayLeft(NO_GATEWAY_STATUS, self._exhausted(), tuple(self.history))
        self._left.remove(gateway)
        self.router.trunks.call_started(gateway.name)
        self.current = gateway
        timeout = gateway.config.failover_time_seconds
        self._deadline = now + timeout if self.router.fast_failover else None
        return Attempt(gateway, self.attempts, self._deadline)

    def _exhausted(self) -> str:
        reasons = [f"{r.gateway}: {r.outcome}" for r in self.history]
        full = [g.name for g in self._left if not g.has_capacity]
        down = [g.name for g in self._left if g.has_capacity and not g.healthy]
        if full:
            reasons.append(f"at MaxConcurrentSessions: {', '.join(full)}")
        if down:
            reasons.append(f"down: {', '.join(down)}")
        return f"no gateway left for {self.number} ({'; '.join(reasons)})"


# --- appliance capacity and drain -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Refusal:
    """Refuse a new call: answer ``status`` with ``Retry-After: retry_after`` (§20.33)."""

    status: int
    retry_after: int
    reason: str


class CallAdmission:
    """The appliance's concurrent call limit and maintenance (drain) mode.

    :meth:`admit` counts a new call (inbound or outbound) or returns the :class:`Refusal`;
    :meth:`release` ends it. In maintenance no call is admitted and :attr:`drained` turns true
    when the last existing call has ended.
    """

    __slots__ = ("active", "limit", "maintenance", "refused_busy", "refused_maintenance", "retry")

    def __init__(self, limit: int, *, retry_after: int = 10) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.limit = limit
        self.retry = retry_after
        self.active = 0
        self.maintenance = False
        self.refused_busy = 0
        self.refused_maintenance = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> CallAdmission:
        return cls(
            settings.common.max_concurrent_calls,
            retry_after=settings.mediation_server.retry_after_seconds,
        )

    def admit(self) -> Refusal | None:
        """None: the call is admitted and counted. Else the 503 to answer with."""
        if self.maintenance:
            self.refused_maintenance += 1
            return Refusal(503, self.retry, "appliance in maintenance: no new calls")
        if self.active >= self.limit:
            self.refused_busy += 1
            return Refusal(503, self.retry, f"appliance at its limit of {self.limit} calls")
        self.active += 1
        return None

    def release(self) -> None:
        """An admitted call ended."""
        if self.active <= 0:
            raise RuntimeError("release() without a matching admit()")
        self.active -= 1

    def enter_maintenance(self) -> None:
        """Drain: refuse new calls, let existing ones finish."""
        self.maintenance = True

    def exit_maintenance(self) -> None:
        self.maintenance = False

    @property
    def drained(self) -> bool:
        """In maintenance and no call left: safe to stop or update."""
        return self.maintenance and self.active == 0
