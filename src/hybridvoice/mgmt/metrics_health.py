"""Health metrics: gateway health transitions, and the appliance's own health monitor.

- ``hybridvoice_gateway_health_transitions_total{gateway,to}``: how often each gateway went
  ``up`` or ``down`` (OPTIONS probes and calls, ``mediation.gateway_health``);
- ``hybridvoice_appliance_health_offline``, ``hybridvoice_appliance_health_check_failing{check}``,
  ``hybridvoice_appliance_health_transitions_total{action}`` (drain, restore): the appliance's
  own health monitor (``mgmt.self_health``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from hybridvoice.mediation.trunks import Health, TrunkTable

from .self_health import CHECKS

if TYPE_CHECKING:
    from .self_health_io import SelfHealthMonitor

__all__ = ["gateway_transitions", "self_health_metrics"]


def gateway_transitions(trunks: TrunkTable) -> CounterMetricFamily:
    """Every gateway's up/down changes so far."""
    family = CounterMetricFamily(
        "hybridvoice_gateway_health_transitions",
        "Changes of a gateway's health (to: up or down), by OPTIONS probes and by calls",
        labels=["gateway", "to"],
    )
    for g in trunks:
        for to in (Health.UP, Health.DOWN):
            family.add_metric([g.name, to.value], g.monitor.transitions[to])
    return family


def self_health_metrics(monitor: SelfHealthMonitor | None) -> list[Metric]:
    """The appliance monitor: offline or not, failing checks, drains and restores."""
    if monitor is None:
        return []
    core = monitor.core
    offline = GaugeMetricFamily(
        "hybridvoice_appliance_health_offline",
        "1 while the health monitor holds the appliance offline (drained), else 0",
        value=1 if core.offline else 0,
    )
    failing = GaugeMetricFamily(
        "hybridvoice_appliance_health_check_failing",
        "1 when the last round of the check failed",
        labels=["check"],
    )
    bad = {r.name for r in core.failing}
    for name in CHECKS:
        failing.add_metric([name], 1 if name in bad else 0)
    moves = CounterMetricFamily(
        "hybridvoice_appliance_health_transitions",
        "Drains (offline) and restores (online) by the health monitor",
        labels=["action"],
    )
    for action, count in core.transitions.items():
        moves.add_metric([action], count)
    return [offline, failing, moves]
