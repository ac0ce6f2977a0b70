"""The ``/metrics`` of ``hybridvoice mediation serve`` (the mediation role alone in its
process): the appliance's call, gateway, relay and SIP families of the role
(:mod:`.metrics`, :mod:`.metrics_calls`, :mod:`hybridvoice.net.metrics`), in a registry of
its own, read at scrape time on the event loop (:mod:`.metrics_http`). No RFC is implemented
here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.http import AsgiServer
from hybridvoice.net.metrics import endpoint_metrics

from .metrics import gateway_families, relay_families
from .metrics_calls import call_families
from .metrics_http import MetricsListenError, serve_metrics

if TYPE_CHECKING:
    from hybridvoice.mediation.role import MediationRole

__all__ = ["MediationCollector", "mediation_registry", "serve_role_metrics"]


class MediationCollector:
    """What ``mediation serve`` exposes: calls, gateways, relay, the SIP endpoints."""

    __slots__ = ("_role",)

    def __init__(self, role: MediationRole) -> None:
        self._role = role

    def collect(self) -> Iterator[Metric]:
        role = self._role
        adm = role.admission
        yield GaugeMetricFamily("hybridvoice_calls_active", "Calls in progress", value=adm.active)
        yield GaugeMetricFamily("hybridvoice_calls_limit", "Concurrent call limit", value=adm.limit)
        yield from call_families(role)
        yield from gateway_families(role)
        yield from relay_families(role)
        endpoints: list[tuple[str, Endpoint]] = [
            (name, ep)
            for name, ep in (
                ("mediation_edge_side", role.edge_endpoint),
                ("mediation_gateway_side", role.gateway_endpoint),
            )
            if ep is not None
        ]
        if endpoints:
            yield from endpoint_metrics(endpoints)


def mediation_registry(role: MediationRole) -> CollectorRegistry:
    """A registry of its own holding the :class:`MediationCollector` of ``role``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MediationCollector(role))
    return registry


async def serve_role_metrics(role: MediationRole, address: str) -> AsgiServer:
    """``mediation serve --metrics HOST:PORT``: serve the role's registry there and print
    ``METRICS http://HOST:PORT/metrics``; if it cannot listen, stop the role and raise
    :class:`~.metrics_http.MetricsListenError` naming the address."""
    try:
        server = await serve_metrics(mediation_registry(role), address)
    except MetricsListenError:
        await role.stop()
        raise
    print(f"METRICS {server.url}/metrics", flush=True)
    return server
