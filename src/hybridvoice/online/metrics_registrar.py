"""Prometheus families of the online service's registrar (RFC 3261 §10.3): REGISTER
requests answered, by result and status, and the bindings held.

No state of its own: read from :attr:`Registrar.answers` at scrape time.

``hybridvoice_online_registrations_total{result, status}``: ``result`` is ``accepted``
(2xx), ``challenged`` (401: the Digest challenge every client gets first) or ``refused``
(anything else: 403 wrong password or user, 423 interval too brief, 400 malformed...).
"""

from __future__ import annotations

from prometheus_client.metrics_core import CounterMetricFamily, Metric

from .registrar import Registrar

__all__ = ["registration_metrics", "registration_result"]


def registration_result(status: int) -> str:
    """``accepted``, ``challenged`` or ``refused`` for a REGISTER answered ``status``."""
    if 200 <= status < 300:
        return "accepted"
    return "challenged" if status == 401 else "refused"


def registration_metrics(registrar: Registrar | None) -> list[Metric]:
    """The family of the module docstring (none without a registrar)."""
    if registrar is None:
        return []
    family = CounterMetricFamily(
        "hybridvoice_online_registrations",
        "REGISTER requests answered, by result (accepted, challenged, refused) and status",
        labels=["result", "status"],
    )
    for status, n in sorted(registrar.answers.items()):
        family.add_metric([registration_result(status), str(status)], n)
    return [family]
