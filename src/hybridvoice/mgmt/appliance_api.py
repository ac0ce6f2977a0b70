"""The appliance's management API (JSON over HTTP, internal interface only).

``GET /v1/status`` what ``hybridvoice appliance status`` shows; ``GET /v1/calls`` the latest
call records; ``GET /v1/calls/{call_id}`` one call by the Call-ID of its cloud-side leg (how
``hybridvoice test-call`` learns the media path the mediation role chose);
``POST /v1/maintenance/enter|exit`` drain mode (no new calls, calls in progress finish);
``GET /metrics`` Prometheus text exposition (:mod:`hybridvoice.mgmt.metrics`, a registry per
app, read at scrape time); ``/v1/tokens`` and ``/v1/audit``.

Every route needs a bearer token of the appliance's own (:attr:`Appliance.access`): reads any
scope, maintenance ``admin``; every change is in the audit log
(:mod:`hybridvoice.cms.guard`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.encoders import jsonable_encoder
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hybridvoice.cms.guard import audit_change, protect, short_text

from .metrics import appliance_registry

if TYPE_CHECKING:
    from .appliance import Appliance

__all__ = ["create_appliance_api"]


def create_appliance_api(appliance: Appliance) -> FastAPI:
    app = FastAPI(title="hybridvoice appliance", version="1", docs_url=None, redoc_url=None)
    registry = app.state.metrics = appliance_registry(appliance)
    protect(app, appliance.access)

    def records() -> Any:
        mediation = appliance.mediation
        if mediation is None or mediation.records is None:
            raise HTTPException(
                404,
                detail={
                    "error": "this appliance keeps no call records",
                    "hint": "set [Management] StateDirectory to keep them",
                },
            )
        return mediation.records

    @app.get("/v1/status")
    def status() -> dict[str, Any]:
        return appliance.status()

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:  # async: read live state on the event loop's thread
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/calls")
    def calls(limit: int = 50) -> list[Any]:
        return [jsonable_encoder(r) for r in records().recent(max(1, min(limit, 1000)))]

    @app.get("/v1/calls/{call_id}")
    def call(call_id: str) -> Any:
        store = records()
        record = store.live(call_id) or store.by_call_id(call_id)
        if record is None:
            raise HTTPException(
                404,
                detail={
                    "error": f"no call {short_text(call_id)!r}",
                    "hint": "GET /v1/calls lists them",
                },
            )
        return jsonable_encoder(record)

    @app.post("/v1/maintenance/{action}")
    async def maintenance(action: str, request: Request) -> dict[str, Any]:
        # async: the role's state is the event loop's, not a worker thread's
        mediation = appliance.mediation
        if mediation is None:
            raise HTTPException(503, detail={"error": "the mediation role is not running"})
        before = {"state": "maintenance" if mediation.admission.maintenance else "online"}
        audit_change(request, f"maintenance.{action}", appliance.name, before)
        if action == "enter":
            mediation.enter_maintenance()
        elif action == "exit":
            mediation.exit_maintenance()
        else:
            raise HTTPException(404, detail={"error": f"unknown action {short_text(action)!r}",
                                             "hint": "use enter or exit"})  # fmt: skip
        after = {"state": "maintenance" if mediation.admission.maintenance else "online"}
        audit_change(request, f"maintenance.{action}", appliance.name, before, after)
        return after

    return app
