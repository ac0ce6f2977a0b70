"""The call-trace routes of the appliance's management API (behind the same bearer tokens
as every route of :mod:`.appliance_api`).

``GET /v1/calls/{call_id}/trace.pcap``: the SIP of one call, both legs, as a pcap file
(:mod:`hybridvoice.trace.pcap`) for tshark, Wireshark or sngrep; ``call_id`` is the Call-ID
of either leg or the call record's id, as for ``GET /v1/calls/{call_id}``. 404 with the
reason when capture is off or the call's messages are no longer held (the oldest calls are
evicted first). ``GET /v1/calls/{call_id}/quality``: the call's MOS estimate (ITU-T
G.107, :mod:`hybridvoice.mediation.records_quality`), worked out now from the relay's counters
for a call in progress, as recorded for an ended one. ``GET /v1/traces`` what the capture
holds and what HEP sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException, Response
from starlette.concurrency import run_in_threadpool

from hybridvoice.cms.guard import short_text
from hybridvoice.media.quality import CallQuality
from hybridvoice.mediation.b2bua_legs import media_counters
from hybridvoice.mediation.records_model import CallRecord, CallState
from hybridvoice.mediation.records_quality import call_mos
from hybridvoice.trace.pcap import pcap_bytes

if TYPE_CHECKING:
    from .appliance import Appliance

__all__ = ["PCAP_MEDIA_TYPE", "add_trace_routes"]

PCAP_MEDIA_TYPE = "application/vnd.tcpdump.pcap"


def _error(status: int, error: str, hint: str) -> HTTPException:
    return HTTPException(status, detail={"error": error, "hint": hint})


def _call_ids(appliance: Appliance, call_id: str) -> tuple[str, ...]:
    """Both legs' Call-IDs when a call record knows ``call_id``; else ``call_id`` itself."""
    mediation = appliance.mediation
    store = None if mediation is None else mediation.records
    if store is not None:
        record = store.live(call_id) or store.by_call_id(call_id) or store.by_record_id(call_id)
        if record is not None:
            return tuple(c for c in (record.a_call_id, record.b_call_id) if c)
    return (call_id,)


def _record(appliance: Appliance, call_id: str) -> CallRecord | None:
    mediation = appliance.mediation
    store = None if mediation is None else mediation.records
    if store is None:
        return None
    return store.live(call_id) or store.by_call_id(call_id) or store.by_record_id(call_id)


def _live_quality(appliance: Appliance, record: CallRecord) -> CallQuality | None:
    """The MOS estimate of a call in progress from its relay call's counters (on the loop)."""
    mediation = appliance.mediation
    relay = None if mediation is None else mediation.relay
    relay_call = None if relay is None else relay.calls.get(record.a_call_id)
    if relay_call is None or mediation is None or mediation.records is None:
        return None
    a, b = media_counters(relay_call, "edge")
    return call_mos(a, b, mediation.records.mos_threshold)


def add_trace_routes(app: FastAPI, appliance: Appliance) -> None:
    @app.get("/v1/calls/{call_id}/quality")
    async def call_quality(call_id: str) -> dict[str, Any]:
        record = await run_in_threadpool(_record, appliance, call_id)
        if record is None:
            raise _error(404, f"no call {short_text(call_id)!r}", "GET /v1/calls lists them")
        live = record.state is CallState.ACTIVE
        row: dict[str, Any] = {
            "record_id": record.record_id, "a_call_id": record.a_call_id, "live": live,
            "mos": record.mos, "mos_poor": record.mos_poor,
        }  # fmt: skip
        if live:
            quality = _live_quality(appliance, record)
            row["mos"] = None if quality is None else quality.mos
            row["mos_poor"] = None if quality is None else quality.poor
            if quality is not None:
                row.update(r=quality.r, delay_ms=quality.delay_ms,
                           loss_percent=quality.loss_percent)  # fmt: skip
        return row

    @app.get("/v1/calls/{call_id}/trace.pcap")
    async def trace_pcap(call_id: str) -> Response:
        traces = getattr(appliance, "traces", None)
        if traces is None or traces.buffer is None:
            raise _error(404, "this appliance does not capture SIP",
                         "set [Traces] Capture = true and restart")  # fmt: skip
        call_ids = await run_in_threadpool(_call_ids, appliance, call_id)
        messages = traces.messages(call_ids)  # on the loop: the transports feed the buffer
        if not messages:
            raise _error(404, f"no SIP held for call {short_text(call_id)!r}",
                         "GET /v1/calls lists the calls; the oldest traces are evicted first "
                         "([Traces] MaxCalls, MaxMegabytes)")  # fmt: skip
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in call_ids[0])[:60]
        disposition = f'attachment; filename="{name}.pcap"'
        return Response(pcap_bytes(messages), media_type=PCAP_MEDIA_TYPE,
                        headers={"Content-Disposition": disposition})  # fmt: skip

    @app.get("/v1/traces")
    async def traces_status() -> dict[str, Any]:
        traces = getattr(appliance, "traces", None)
        return {"capture": False, "calls": 0} if traces is None else traces.status()
