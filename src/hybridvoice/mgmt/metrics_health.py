"""Health metrics: gateway health transitions, and the appliance's own health monitor.

- ``hybridvoice_gateway_health_transitions_total{gateway,to}``: how often each gateway went
  ``up`` or ``down`` (OPTIONS probes and calls, ``mediation.gateway_health``);
- the appliance monitor's families (``mgmt.self_health``) come from :func:`self_health_metrics`.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from hybridvoice.mediation.trunks import Health, TrunkTable

__all__ = ["gateway_transitions"]


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


def gauges(
    name: str, text: str, labels: list[str], rows: Iterable[tuple[list[str], float]]
) -> Metric:
    family = GaugeMetricFamily(name, text, labels=labels)
    for values, value in rows:
        family.add_metric(values, value)
    return family
