"""The appliance's own health monitor, the adapter: runs the checks of ``mgmt.self_health`` on
the event loop and carries out its decisions.

Checks (each a :class:`~.self_health.CheckResult`):

- ``roles``: the edge and mediation roles are running;
- ``listeners``: every SIP TCP/TLS listener of the roles accepts a connection (a loopback
  connect to its own address, closed at once) within ``ConnectTimeoutSeconds``;
- ``gateways``: not every enabled gateway is marked down (``mediation.gateway_health``); an
  appliance without gateways passes;
- ``certificates``: no certificate of the site PKI has expired (``mgmt.cert_status``).

A ``drain`` puts the mediation role in maintenance (new calls get 503 + Retry-After, calls in
progress finish) and reports the appliance ``offline`` to the cloud at once
(``ApplianceLink.beat_now``); a ``restore`` leaves the maintenance the monitor entered (never
one the admin entered) and reports it ``online``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hybridvoice.mediation.trunks import Health

from .cert_status import certificate_rows
from .self_health import CheckResult, SelfHealth, Verdict

if TYPE_CHECKING:
    from .appliance import Appliance

__all__ = ["SelfHealthMonitor", "start_self_health"]

_log = logging.getLogger(__name__)


class SelfHealthMonitor:
    """Checks the appliance when the core says so; start, then stop."""

    __slots__ = (
        "_task", "_wake", "appliance", "clock", "connect_timeout", "core", "drained", "wall",
    )  # fmt: skip

    def __init__(
        self,
        appliance: Appliance,
        core: SelfHealth,
        *,
        connect_timeout: float = 2.0,
        clock: Callable[[], float] | None = None,
        wall: Callable[[], datetime] | None = None,
    ) -> None:
        self.appliance = appliance
        self.core = core
        self.connect_timeout = connect_timeout
        self.clock = clock or asyncio.get_running_loop().time
        #: the date certificates are checked against (tests move it)
        self.wall = wall or (lambda: datetime.now(UTC))
        #: True while the monitor holds the appliance in maintenance
        self.drained = False
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="self-health")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def check_soon(self) -> None:
        """Check now instead of at the next deadline."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            wait = self.core.next_check - self.clock()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                self._wake.clear()
            try:
                await self.check_once()
            except Exception:  # a bug in a check must not end the monitor
                _log.exception("appliance health check failed")
                self.core.next_check = self.clock() + self.core.retry

    async def check_once(self) -> Verdict:
        """One round of checks, and what it led to."""
        results = [self._roles(), await self._listeners(), self._gateways(), self._certs()]
        verdict = self.core.checked(results, self.clock())
        if verdict.action == "drain":
            self._drain(verdict)
        elif verdict.action == "restore":
            self._restore()
        return verdict

    # --- decisions ----------------------------------------------------------------------------
    def _drain(self, verdict: Verdict) -> None:
        failing = "; ".join(f"{r.name}: {r.detail}" for r in verdict.failing)
        _log.error("appliance health: %s; draining and reporting offline", failing)
        mediation = self.appliance.mediation
        if mediation is not None and not mediation.admission.maintenance:
            mediation.enter_maintenance()
            self.drained = True
        self._tell_cloud()

    def _restore(self) -> None:
        _log.warning("appliance health: every check passes again; back online")
        mediation = self.appliance.mediation
        if mediation is not None and self.drained:
            mediation.exit_maintenance()
        self.drained = False
        self._tell_cloud()

    def _tell_cloud(self) -> None:
        if self.appliance.link is not None:
            self.appliance.link.beat_now()

    # --- checks -------------------------------------------------------------------------------
    def _roles(self) -> CheckResult:
        a = self.appliance
        missing = [
            name for name, role in (("edge", a.edge), ("mediation", a.mediation)) if not role
        ]
        if missing:
            return CheckResult("roles", False, f"not running: {', '.join(missing)}")
        return CheckResult("roles", True)

    async def _listeners(self) -> CheckResult:
        bad = []
        for host, port in self._listening():
            target = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(target, port), self.connect_timeout
                )
            except (OSError, TimeoutError) as exc:
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "no answer"
                bad.append(f"{host}:{port} ({why})")
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        if bad:
            return CheckResult("listeners", False, f"not accepting: {', '.join(bad)}")
        return CheckResult("listeners", True)

    def _listening(self) -> list[tuple[str, int]]:
        a = self.appliance
        endpoints: list[Any] = []
        if a.mediation is not None:
            endpoints += [a.mediation.edge_endpoint, a.mediation.gateway_endpoint]
        if a.edge is not None:
            endpoints.append(a.edge.endpoint)
        found: list[tuple[str, int]] = []
        for endpoint in endpoints:
            for t in getattr(endpoint, "transports", ()):
                if getattr(t, "_server", None) is not None:  # a TCP/TLS listener
                    found.append((str(t.local[0]), int(t.local[1])))
        return list(dict.fromkeys(found))

    def _gateways(self) -> CheckResult:
        mediation = self.appliance.mediation
        trunks = None if mediation is None else mediation.trunks
        enabled = [] if trunks is None else [g for g in trunks if g.config.enabled]
        if enabled and all(g.health is Health.DOWN for g in enabled):
            names = ", ".join(g.name for g in enabled)
            return CheckResult("gateways", False, f"every gateway is down: {names}")
        return CheckResult("gateways", True)

    def _certs(self) -> CheckResult:
        rows = certificate_rows(self.appliance.options.pki_dir, self.wall())
        expired = [str(r["name"]) for r in rows if r.get("expired")]
        if expired:
            return CheckResult("certificates", False, f"expired: {', '.join(expired)}")
        return CheckResult("certificates", True)

    # --- status -------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """For ``appliance status``: state, last check, failing checks, next check/retry."""
        core, now = self.core, self.clock()
        return {
            "state": core.state,
            "last_check_seconds_ago": None
            if core.last_check is None
            else round(now - core.last_check, 3),
            "failing": [{"check": r.name, "detail": r.detail} for r in core.failing],
            "failures_in_a_row": core.failures,
            "next_check_in_seconds": round(max(0.0, core.next_check - now), 3),
            "drained_by_monitor": self.drained,
        }


def start_self_health(appliance: Appliance) -> SelfHealthMonitor | None:
    """Build and start the monitor from ``[HealthMonitor]`` (None when ``Enabled = false``)."""
    section = appliance.settings.health_monitor
    if not section.enabled:
        return None
    core = SelfHealth.from_settings(section)
    monitor = SelfHealthMonitor(appliance, core, connect_timeout=section.connect_timeout_seconds)
    core.next_check = monitor.clock() + section.interval_seconds  # the roles settle first
    monitor.start()
    return monitor
