"""The summary an appliance sends in each heartbeat (``online/heartbeat_summary.py``): calls
now and the limit, gateways up of all, the replica's version and lag, and the days left of
its soonest-expiring certificate, so that the dashboard's overview of the tenant shows
every appliance without asking each one.

Built from memory at every heartbeat; the certificates are read from the site PKI at most
every :attr:`SummaryMaker.cert_every` seconds (they change by days, heartbeats come every
second).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..cert_status import certificate_rows

if TYPE_CHECKING:
    from ..appliance import Appliance

__all__ = ["SummaryMaker"]

_log = logging.getLogger(__name__)


class SummaryMaker:
    """``maker()`` -> the heartbeat's ``summary`` for ``appliance``."""

    __slots__ = ("_cert_at", "_cert_days", "appliance", "cert_every", "clock")

    def __init__(
        self, appliance: Appliance, *, cert_every: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.appliance, self.cert_every, self.clock = appliance, cert_every, clock
        self._cert_at: float | None = None
        self._cert_days: int | None = None

    def __call__(self) -> dict[str, Any]:
        try:
            return self._summary()
        except Exception:  # a summary must never stop a heartbeat
            _log.exception("heartbeat summary of %s failed", self.appliance.name)
            return {}

    def _summary(self) -> dict[str, Any]:
        a = self.appliance
        out: dict[str, Any] = {"replica_version": a.replica.version}
        if a.replicator is not None:
            out["replica_lag_seconds"] = round(max(0.0, a.replicator.lag), 3)
        mediation = a.mediation
        if mediation is not None:
            out["calls_now"] = mediation.admission.active
            out["call_limit"] = mediation.admission.limit
            gateways = a.gateways()
            out["gateways"] = len(gateways)
            out["gateways_up"] = sum(g["health"] == "up" and g["enabled"] for g in gateways)
        days = self._cert_days_left()
        if days is not None:
            out["cert_days_left"] = days
        return out

    def _cert_days_left(self) -> int | None:
        now = self.clock()
        if self._cert_at is None or now - self._cert_at >= self.cert_every:
            rows = certificate_rows(self.appliance.options.pki_dir, datetime.now(UTC))
            days = [r["days_left"] for r in rows if isinstance(r.get("days_left"), int)]
            self._cert_days = min(days) if days else None
            self._cert_at = now
        return self._cert_days
