"""Prometheus families of ``hybridvoice dns serve`` (the geo-DNS responder), at scrape time.

- ``hybridvoice_geo_dns_queries_total{site, result}``: queries answered, by the client's site
  (a site name, ``unmatched`` for clients of no site, ``-`` when no site is involved: the
  apex, other names, malformed queries) and result (``answer``, ``nodata``, ``nxdomain``,
  ``refused``, ``formerr``, ``notimp``, ``badvers``, ``dropped``, ``truncated``);
- ``hybridvoice_geo_dns_down_addresses``: mediation addresses marked down now;
- ``hybridvoice_geo_dns_handler_errors_total``: queries the server could not answer because
  the core failed (0 unless there is a bug).

The scrape runs in prometheus_client's thread: it reads a copy of the counters (``dict.copy``
runs under the GIL in one step), never the live mapping.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from hybridvoice.mediation.geo_dns import GeoDns
    from hybridvoice.net.dns_server import DnsServer

__all__ = ["GeoDnsCollector", "geo_dns_registry"]


class GeoDnsCollector:
    """Reads the core's counters and the server's error count when scraped."""

    __slots__ = ("core", "server")

    def __init__(self, core: GeoDns, server: DnsServer) -> None:
        self.core, self.server = core, server

    def collect(self) -> Iterator[Metric]:
        stats = dict.copy(self.core.stats)
        queries = CounterMetricFamily(
            "hybridvoice_geo_dns_queries", "DNS queries by client site and result",
            labels=["site", "result"],
        )  # fmt: skip
        for (site, result), count in sorted(stats.items()):
            queries.add_metric([site, result], count)
        yield queries
        yield GaugeMetricFamily(
            "hybridvoice_geo_dns_down_addresses", "Mediation addresses marked down",
            value=len(self.core.down),
        )  # fmt: skip
        yield CounterMetricFamily(
            "hybridvoice_geo_dns_handler_errors", "Queries left unanswered by a core failure",
            value=self.server.errors,
        )  # fmt: skip


def geo_dns_registry(core: GeoDns, server: DnsServer) -> CollectorRegistry:
    """A registry of its own (no global one) with the responder's families."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GeoDnsCollector(core, server))
    return registry
