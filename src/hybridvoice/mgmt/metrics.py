"""Prometheus metrics of one appliance, read from live state at scrape time.

Exposition: the Prometheus text format 0.0.4 (``CONTENT_TYPE_LATEST``) served as
``GET /metrics`` by :mod:`hybridvoice.mgmt.appliance_api`. No RFC is implemented here; the
SIP counters are the per-method requests and per-status responses of RFC 3261 §7.1/§7.2 as
each :class:`~hybridvoice.net.endpoint.Endpoint` counts them.

Nothing is added to a hot path: :class:`ApplianceCollector` reads the counters the roles keep
anyway (call admission, the trunk table, the relay engine, endpoint and proxy counters, the
replicator and the link to the cloud) when the registry is scraped. Every app gets its own
:class:`~prometheus_client.CollectorRegistry` from :func:`appliance_registry` (no global one).
A role that is not running has no families.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from hybridvoice.mediation.trunks import Health
from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.metrics import endpoint_metrics, proxy_metrics

from .metrics_calls import call_families
from .metrics_health import gateway_transitions, self_health_metrics
from .metrics_traces import quality_metrics
from .metrics_turn import turn_metrics

if TYPE_CHECKING:
    from hybridvoice.mediation.role import MediationRole

    from .appliance import Appliance

__all__ = [
    "ApplianceCollector",
    "appliance_registry",
    "endpoint_metrics",
    "gateway_families",
    "relay_families",
]


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=value)


def _counter(name: str, text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, text, value=value)


class ApplianceCollector:
    """The appliance's families (see the module docstring), read at each :meth:`collect`."""

    __slots__ = ("_appliance",)

    def __init__(self, appliance: Appliance) -> None:
        self._appliance = appliance

    def collect(self) -> Iterator[Metric]:
        a = self._appliance
        yield from self._calls()
        yield from self._gateways()
        yield from self._relay()
        endpoints: list[tuple[str, Endpoint]] = []
        if a.edge is not None and a.edge.endpoint is not None:
            endpoints.append(("edge", a.edge.endpoint))
        if a.mediation is not None:
            for name, ep in (
                ("mediation_edge_side", a.mediation.edge_endpoint),
                ("mediation_gateway_side", a.mediation.gateway_endpoint),
            ):
                if ep is not None:
                    endpoints.append((name, ep))
        if endpoints:
            yield from endpoint_metrics(endpoints)
        yield from self._edge()
        yield from self._cloud()
        yield from self_health_metrics(a.self_health)
        yield from quality_metrics(a)

    def _calls(self) -> Iterable[Metric]:
        mediation = self._appliance.mediation
        if mediation is None:
            return []
        adm = mediation.admission
        refusals = CounterMetricFamily(
            "hybridvoice_admission_refusals", "New calls refused (503), by reason",
            labels=["reason"],
        )  # fmt: skip
        refusals.add_metric(["busy"], adm.refused_busy)
        refusals.add_metric(["maintenance"], adm.refused_maintenance)
        out: list[Metric] = [
            _gauge("hybridvoice_calls_active", "Calls in progress (admitted)", adm.active),
            _gauge("hybridvoice_calls_limit", "Concurrent call limit", adm.limit),
            refusals,
            _gauge("hybridvoice_maintenance", "1 in maintenance (drain) mode", adm.maintenance),
        ]
        out += _failures(mediation) + call_families(mediation)
        if mediation.trunks is not None:
            total = sum(g.calls_total for g in mediation.trunks.status())
            out.append(_counter("hybridvoice_calls", "Calls placed to or from a gateway", total))
        return out

    def _gateways(self) -> Iterable[Metric]:
        return gateway_families(self._appliance.mediation)

    def _relay(self) -> Iterable[Metric]:
        return relay_families(self._appliance.mediation)

    def _edge(self) -> Iterable[Metric]:
        edge = self._appliance.edge
        if edge is None:
            return []
        out: list[Metric] = []
        if edge.policy is not None:
            out.append(
                _counter(
                    "hybridvoice_edge_refusals",
                    "Requests refused (403) from addresses the edge does not trust",
                    edge.policy.refused,
                )
            )
        if edge.proxy is not None:
            out += proxy_metrics([("edge", edge.proxy.counters)])
        return out + turn_metrics(edge.media)

    def _cloud(self) -> Iterable[Metric]:
        a = self._appliance
        rep, link = a.replicator, a.link
        out: list[Metric] = [
            _gauge(
                "hybridvoice_replica_version", "Tenant version of the replica", a.replica.version
            )
        ]
        if rep is not None:
            out.append(_gauge("hybridvoice_replica_lag_seconds", "Replica lag", rep.lag))
            out.append(
                _gauge("hybridvoice_replica_connected", "1 if following the feed", rep.connected)
            )
        if link is not None:
            out.append(
                _gauge(
                    "hybridvoice_cloud_registered",
                    "1 if registered with the online service",
                    link.registered,
                )
            )
            out.append(_counter("hybridvoice_cloud_heartbeats", "Heartbeats sent", link.heartbeats))
        return out


def gateway_families(mediation: MediationRole | None) -> list[Metric]:
    """Each gateway's health, calls and OPTIONS round trip (none without a trunk table)."""
    if mediation is None or mediation.trunks is None:
        return []
    labels = ["gateway"]
    up = GaugeMetricFamily(
        "hybridvoice_gateway_up",
        "0 when OPTIONS probes found the gateway down, else 1 (unprobed counts as up)",
        labels=labels,
    )
    enabled = GaugeMetricFamily("hybridvoice_gateway_enabled", "1 if enabled", labels=labels)
    active = GaugeMetricFamily(
        "hybridvoice_gateway_calls_active", "Calls holding a session", labels=labels
    )
    total = CounterMetricFamily(
        "hybridvoice_gateway_calls", "Call attempts to or from the gateway", labels=labels
    )
    failed = CounterMetricFamily(
        "hybridvoice_gateway_calls_failed", "Call attempts that failed", labels=labels
    )
    rtt = GaugeMetricFamily(
        "hybridvoice_gateway_options_rtt_seconds",
        "Round trip of the last answered OPTIONS probe",
        labels=labels,
    )
    for g in mediation.trunks.status():
        up.add_metric([g.name], 0 if g.health is Health.DOWN else 1)
        enabled.add_metric([g.name], g.enabled)
        active.add_metric([g.name], g.active_calls)
        total.add_metric([g.name], g.calls_total)
        failed.add_metric([g.name], g.calls_failed)
        if g.last_options_rtt_ms is not None:
            rtt.add_metric([g.name], g.last_options_rtt_ms / 1000)
    return [up, enabled, active, total, failed, rtt, gateway_transitions(mediation.trunks)]


def relay_families(mediation: MediationRole | None) -> list[Metric]:
    """The media relay's packets, bytes, drops and free ports (none without a relay)."""
    if mediation is None or mediation.relay is None:
        return []
    s = mediation.relay.stats()
    return [
        _gauge("hybridvoice_relay_calls", "Calls whose media is relayed now", s.calls),
        _counter("hybridvoice_relay_packets", "RTP packets relayed", s.packets),
        _counter("hybridvoice_relay_bytes", "RTP bytes relayed", s.bytes),
        _counter("hybridvoice_relay_dropped_packets", "RTP packets dropped", s.dropped),
        _counter("hybridvoice_relay_rtcp_packets", "RTCP packets relayed", s.rtcp_packets),
        _counter("hybridvoice_relay_send_errors", "Relay sends that failed", s.send_errors),
        _counter(
            "hybridvoice_relay_srtp_auth_failures",
            "SRTP/SRTCP packets dropped: authentication failed",
            s.srtp_auth_failures,
        ),
        _counter(
            "hybridvoice_relay_srtp_replays",
            "SRTP/SRTCP packets dropped: replayed",
            s.srtp_replays,
        ),
        _gauge("hybridvoice_relay_ports_available", "Free media ports", s.ports_available),
    ]


def _failures(mediation: MediationRole) -> list[Metric]:
    """Calls a failure ended, by cause (``sdp``, ``internal``: the bridge's guard;
    ``application``: the UA's last line), and exceptions no task or callback handled."""
    failures = CounterMetricFamily(
        "hybridvoice_call_failures",
        "Calls ended because handling them failed (one bad call costs only itself), by cause",
        labels=["cause"],
    )
    for cause, n in mediation.call_failures().items():
        failures.add_metric([cause], n)
    out: list[Metric] = [failures]
    tasks = mediation.task_failures
    if tasks is not None:
        out.append(
            _counter(
                "hybridvoice_unhandled_exceptions",
                "Exceptions no task or callback handled (logged with their call)",
                tasks.count,
            )
        )
    return out


def appliance_registry(appliance: Appliance) -> CollectorRegistry:
    """A registry of its own holding the :class:`ApplianceCollector` of ``appliance``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ApplianceCollector(appliance))
    return registry
