"""Trace and call-quality metrics (mgmt/metrics_traces.py), read back with prometheus-client's
parser: what the capture holds, HEP packets, and the MOS histogram per gateway."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from hybridvoice.cms.settings_traces import Traces
from hybridvoice.media.quality import CallQuality
from hybridvoice.mediation.records_quality import MosTally
from hybridvoice.mgmt.metrics_traces import quality_metrics
from hybridvoice.mgmt.traces import open_traces


class _Collector:
    def __init__(self, appliance: Any) -> None:
        self.appliance = appliance

    def collect(self) -> Iterator[Metric]:
        yield from quality_metrics(self.appliance)


def scrape(appliance: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(appliance))  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def quality(mos: float, poor: bool) -> CallQuality:
    return CallQuality(r=0.0, mos=mos, delay_ms=20.0, loss_percent=0.0, poor=poor)


def test_capture_and_mos_histogram_per_gateway() -> None:
    traces = open_traces(Traces())
    data = b"OPTIONS sip:x SIP/2.0\r\nCall-ID: abc\r\n\r\n"
    traces.tap("UDP", ("127.0.0.1", 1), ("127.0.0.1", 2), data, True, None)
    tally = MosTally()
    tally.add("gw1", quality(4.4, False))
    tally.add("gw1", quality(3.1, True))
    tally.add("gw2", quality(4.41, False))
    records = SimpleNamespace(mos_tally=tally)
    appliance = SimpleNamespace(traces=traces, mediation=SimpleNamespace(records=records))
    got = scrape(appliance)
    assert got[("hybridvoice_trace_calls", frozenset())] == 1
    assert got[("hybridvoice_trace_bytes", frozenset())] == len(data)
    assert got[("hybridvoice_trace_evicted_calls_total", frozenset())] == 0
    gw1 = frozenset({("gateway", "gw1")})
    assert got[("hybridvoice_call_mos_count", gw1)] == 2
    assert got[("hybridvoice_call_mos_sum", gw1)] == 4.4 + 3.1
    assert got[("hybridvoice_call_mos_bucket", gw1 | {("le", "3.5")})] == 1
    assert got[("hybridvoice_call_mos_bucket", gw1 | {("le", "4.4")})] == 2
    assert got[("hybridvoice_calls_poor_quality_total", gw1)] == 1
    gw2 = frozenset({("gateway", "gw2")})
    assert got[("hybridvoice_call_mos_bucket", gw2 | {("le", "4.4")})] == 0
    assert got[("hybridvoice_call_mos_bucket", gw2 | {("le", "4.5")})] == 1
    traces.close()


def test_nothing_without_traces_or_records() -> None:
    assert scrape(SimpleNamespace(traces=None, mediation=None)) == {}
