"""Trace and call-quality metrics of an appliance.

- ``hybridvoice_trace_calls``, ``hybridvoice_trace_bytes``: calls and bytes of SIP the
  capture holds now; ``hybridvoice_trace_evicted_calls_total``: calls evicted for the bounds
  (``[Traces] MaxCalls``, ``MaxMegabytes``); ``hybridvoice_trace_errors_total``: capture
  failures (counted, never seen by a call);
- ``hybridvoice_hep_packets_total{result}``: HEPv3 packets ``sent`` to the collector or
  ``dropped`` (the kernel would not take them at once, or too large);
- ``hybridvoice_call_mos{gateway}``: a histogram of the calls' MOS estimates (ITU-T G.107,
  ``mediation.records_quality``), per gateway: over time per gateway in Prometheus, per site
  by the scrape's target; ``hybridvoice_calls_poor_quality_total{gateway}``: calls below
  ``[Traces] MosThreshold``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

if TYPE_CHECKING:
    from hybridvoice.mediation.records_quality import MosTally

    from .appliance import Appliance
    from .traces import CallTraces

__all__ = ["mos_metrics", "quality_metrics", "trace_metrics"]


def quality_metrics(appliance: Appliance) -> list[Metric]:
    """Every family of this module for ``appliance``."""
    mediation = appliance.mediation
    records = None if mediation is None else mediation.records
    return trace_metrics(appliance.traces) + mos_metrics(
        None if records is None else records.mos_tally
    )


def trace_metrics(traces: CallTraces | None) -> list[Metric]:
    if traces is None:
        return []
    out: list[Metric] = []
    buffer, hep = traces.buffer, traces.hep
    if buffer is not None:
        out += [
            GaugeMetricFamily("hybridvoice_trace_calls", "Calls whose SIP the capture holds",
                              value=len(buffer)),
            GaugeMetricFamily("hybridvoice_trace_bytes", "Bytes of SIP the capture holds",
                              value=buffer.size),
            CounterMetricFamily("hybridvoice_trace_evicted_calls",
                                "Calls evicted from the capture for its bounds",
                                value=buffer.evicted),
        ]  # fmt: skip
    out.append(CounterMetricFamily("hybridvoice_trace_errors",
                                   "SIP capture failures (counted, never seen by calls)",
                                   value=traces.tap.errors))  # fmt: skip
    if hep is not None:
        packets = CounterMetricFamily("hybridvoice_hep_packets",
                                      "HEPv3 packets to the collector, by result",
                                      labels=["result"])  # fmt: skip
        packets.add_metric(["sent"], hep.sent)
        packets.add_metric(["dropped"], hep.dropped)
        out.append(packets)
    return out


def mos_metrics(tally: MosTally | None) -> list[Metric]:
    if tally is None:
        return []
    mos = HistogramMetricFamily("hybridvoice_call_mos",
                                "MOS estimate of calls with relayed media (ITU-T G.107)",
                                labels=["gateway"])  # fmt: skip
    poor = CounterMetricFamily("hybridvoice_calls_poor_quality",
                               "Calls whose MOS estimate was below the threshold",
                               labels=["gateway"])  # fmt: skip
    for gateway, counts in sorted(tally.by_gateway.items()):
        buckets, running = [], 0
        for bound, n in zip(tally.bounds, counts.buckets, strict=True):
            running += n
            buckets.append((f"{bound}", running))
        buckets.append(("+Inf", counts.count))
        mos.add_metric([gateway], buckets, counts.total)
        poor.add_metric([gateway], counts.poor)
    return [mos, poor]
