"""The appliance's call traces assembled: the capture buffer and the HEP sender from
``[Traces]`` (:mod:`hybridvoice.cms.settings_traces`), one
:class:`~hybridvoice.net.trace_tap.TraceTap` given to every SIP transport of the appliance's
roles, and a call's messages by the Call-ID of either leg (a call record names both,
RFC 3261 §8.1.1.4).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from hybridvoice.cms.settings_traces import Traces
from hybridvoice.net.trace_tap import HepSender, TraceTap, parse_collector, tap_endpoint
from hybridvoice.trace.capture import CaptureBuffer, Captured, CaptureLimits
from hybridvoice.trace.hep import HepOptions

if TYPE_CHECKING:
    from hybridvoice.mediation.role import MediationRole
    from hybridvoice.net.endpoint import Endpoint

    from .appliance import Appliance

__all__ = ["CallTraces", "attach_mediation", "attach_traces", "open_traces"]

_log = logging.getLogger(__name__)


class CallTraces:
    """What an appliance captures; :meth:`attach` an endpoint to capture its SIP."""

    __slots__ = ("buffer", "hep", "tap", "threshold")

    def __init__(self, buffer: CaptureBuffer | None, hep: HepSender | None,
                 threshold: float) -> None:  # fmt: skip
        self.buffer = buffer
        self.hep = hep
        self.tap = TraceTap(buffer, hep)
        #: a call whose MOS estimate is below this is flagged poor
        self.threshold = threshold

    def attach(self, endpoint: Endpoint | None) -> None:
        if endpoint is not None:
            tap_endpoint(endpoint, self.tap)

    def messages(self, call_ids: Iterable[str | None]) -> list[Captured]:
        """The messages of the Call-IDs (both legs of a call), in time order."""
        return [] if self.buffer is None else self.buffer.messages_of(call_ids)

    def status(self) -> dict[str, object]:
        b, h = self.buffer, self.hep
        return {
            "capture": b is not None,
            "calls": 0 if b is None else len(b),
            "bytes": 0 if b is None else b.size,
            "evicted_calls": 0 if b is None else b.evicted,
            "hep_sent": 0 if h is None else h.sent,
            "hep_dropped": 0 if h is None else h.dropped,
            "errors": self.tap.errors,
        }

    def close(self) -> None:
        self.tap.close()


def open_traces(settings: Traces) -> CallTraces:
    """The buffer (when ``Capture``) and the HEP sender (when ``HepCollector``); a collector
    that does not resolve is logged and left out: traces never stop an appliance."""
    buffer = None
    if settings.capture:
        buffer = CaptureBuffer(CaptureLimits(
            max_calls=settings.max_calls,
            max_call_bytes=settings.max_call_kilobytes * 1024,
            max_bytes=settings.max_megabytes * 1024 * 1024,
        ))  # fmt: skip
    hep = None
    if settings.hep_collector:
        collector = parse_collector(settings.hep_collector)
        options = HepOptions(settings.hep_capture_id, settings.hep_password or None)
        try:
            hep = HepSender(collector, options)
        except OSError as exc:
            _log.warning("[Traces] HepCollector %s: %s; not sending HEP",
                         settings.hep_collector, exc)  # fmt: skip
    return CallTraces(buffer, hep, settings.mos_threshold)


def attach_traces(appliance: Appliance) -> CallTraces | None:
    """Capture the SIP of every role of ``appliance`` (None: capture and HEP both off)."""
    traces = attach_mediation(appliance.settings.traces, appliance.mediation)
    if traces is not None and appliance.edge is not None:
        traces.attach(appliance.edge.endpoint)
    return traces


def attach_mediation(settings: Traces, mediation: MediationRole | None) -> CallTraces | None:
    """The mediation role's part (alone in ``hybridvoice mediation serve``): its MOS
    threshold, and the capture of both of its sides (None: capture and HEP both off)."""
    if mediation is not None and mediation.records is not None:
        mediation.records.mos_threshold = settings.mos_threshold
    if not settings.capture and not settings.hep_collector:
        return None
    traces = open_traces(settings)
    if mediation is not None:
        traces.attach(mediation.edge_endpoint)
        traces.attach(mediation.gateway_endpoint)
    return traces
