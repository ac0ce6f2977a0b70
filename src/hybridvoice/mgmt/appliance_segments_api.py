"""The appliance API's view of network segments (``docs/planning.md``, "Observed paths").

``GET /v1/segments``: the segment map this appliance classifies addresses with (``[Segments]``
and its defaults, :class:`~hybridvoice.planning.observed.SegmentMap`), the online service's
SIP address and whether the edge's media relay is on (an internet client's media needs it):
what ``hybridvoice plan verify`` needs to place its test clients. ``GET /v1/calls/{call_id}``
answers a call's observed path classified by segment (:func:`observed_answer`) beside the
record's raw addresses.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from hybridvoice.edge.media_relay import edge_relay_addresses
from hybridvoice.planning.observed import SegmentMap, classify

if TYPE_CHECKING:
    from fastapi import FastAPI

    from hybridvoice.cms.settings import Settings
    from hybridvoice.mediation.records_model import CallRecord
    from hybridvoice.mgmt.appliance import Appliance

__all__ = ["add_segment_routes", "observed_answer", "segments_answer"]


def observed_answer(record: CallRecord, settings: Settings) -> dict[str, Any] | None:
    """The record's observed hops with node names, addresses and the segments they crossed
    (None: the record has no observed path, e.g. a call before schema 4 or unanswered)."""
    if record.observed is None:
        return None
    segments = SegmentMap.of(settings)
    flow = classify(record.observed, segments)
    return {
        "signalling": [asdict(h) for h in flow.signalling],
        "media": [asdict(h) for h in flow.media],
        "segment_map": segments.to_json(),
    }


def segments_answer(settings: Settings) -> dict[str, Any]:
    online = settings.online
    return {
        **SegmentMap.of(settings).to_json(),
        "online_sip": {"host": online.sip_addresses[0], "port": online.sip_port},
        "edge_relay": sorted(edge_relay_addresses(settings)),
    }


def add_segment_routes(app: FastAPI, appliance: Appliance) -> None:
    @app.get("/v1/segments")
    def segments() -> dict[str, Any]:
        return segments_answer(appliance.settings)
