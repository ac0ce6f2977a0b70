"""Prometheus families of the mediation role's calls (in the appliance's ``/metrics`` and in
``hybridvoice mediation serve``'s, :mod:`.metrics_mediation`).

No RFC is implemented here; the setup time is the post-dial delay of RFC 6076 §4.4 as the
B2BUA sees it (:mod:`hybridvoice.mediation.call_tally`). Read at scrape time from the
counters the role keeps anyway; nothing is added to the call path.

- ``hybridvoice_calls_admitted_total``: calls admitted (a slot taken);
- ``hybridvoice_calls_ended_total{result}``: admitted calls that ended, ``answered`` or
  ``failed`` (never answered: busy, no answer, refused by the far end, cancelled);
- ``hybridvoice_calls_rejected_total{status}``: calls whose caller got a final error, by SIP
  status: the role's own refusals (403 from an unknown source, 503 busy or draining, 404/480
  when no route or gateway is left) and the far end's passed back (486 busy...);
- ``hybridvoice_call_setup_seconds``: histogram of the answered calls' setup times.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
)

if TYPE_CHECKING:
    from hybridvoice.mediation.role import MediationRole

__all__ = ["call_families"]


def call_families(mediation: MediationRole) -> list[Metric]:
    """The families of the module docstring."""
    stats = mediation.b2bua.stats
    tally = stats.tally
    admitted = CounterMetricFamily(
        "hybridvoice_calls_admitted", "Calls admitted (a call slot taken)", value=stats.calls
    )
    ended = CounterMetricFamily(
        "hybridvoice_calls_ended",
        "Admitted calls that ended, by result (answered, failed: never answered)",
        labels=["result"],
    )
    for result, n in tally.ended.items():
        ended.add_metric([result], n)
    refused = CounterMetricFamily(
        "hybridvoice_calls_rejected",
        "Calls whose caller got a final error (the role's own or the far end's), by SIP status",
        labels=["status"],
    )
    for status, n in sorted(stats.refused.items()):
        refused.add_metric([str(status)], n)
    setup = HistogramMetricFamily(
        "hybridvoice_call_setup_seconds",
        "Answered calls: from the INVITE in to the 200 OK passed back (post-dial delay)",
        buckets=tally.buckets(),
        sum_value=tally.setup_sum,
    )
    return [admitted, ended, refused, setup]
