"""The appliance's management API (JSON over HTTP, internal interface only).

``GET /v1/status`` what ``hybridvoice appliance status`` shows; ``GET /v1/calls`` call
records, newest first, filtered by ``since`` (ISO 8601), ``party`` (caller or callee contains
it: a user or a number), ``result`` (``answered``, ``failed``, ``active``, ``interrupted`` or a
SIP status) and ``limit`` (``hybridvoice calls list``, the original's Get-CcCallRecords);
``GET /v1/calls/{call_id}`` one call by the Call-ID of either leg or its record id (how
``hybridvoice test-call`` learns the media path the mediation role chose);
``GET /v1/gateways[/{name}]`` the gateways with their OPTIONS health and calls;
``POST /v1/gateways`` adds one and ``PATCH /v1/gateways/{name}`` changes the settings keys
its body names (``hybridvoice gateway add/set/enable/disable``), live, saved for the next
start (:mod:`hybridvoice.mgmt.gateways`); ``POST /v1/maintenance/enter|exit`` drain mode
(no new calls, calls in progress finish); ``GET /metrics`` Prometheus text exposition
(:mod:`hybridvoice.mgmt.metrics`, a registry per app, read at scrape time).
``/v1/tokens`` and ``/v1/audit``. ``GET /v1/calls/{call_id}/trace.pcap`` a call's SIP as
pcap (:mod:`.appliance_traces_api`).

Every route needs a bearer token of the appliance's own (:attr:`Appliance.access`): reads any
scope, changes ``admin``; every change is in the audit log (:mod:`hybridvoice.cms.guard`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Final

from fastapi import Body, FastAPI, HTTPException, Request, Response
from fastapi.encoders import jsonable_encoder
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hybridvoice.cms.api_errors import OPENAPI_URL
from hybridvoice.cms.guard import audit_change, protect, short_text
from hybridvoice.mediation.records_model import CallRecord, CallState

from .appliance_answers import add_appliance_answers
from .appliance_logging_api import add_logging_routes
from .appliance_ops_api import add_ops_routes
from .appliance_segments_api import add_segment_routes, observed_answer
from .appliance_traces_api import add_trace_routes
from .gateways import GatewayChangeError
from .metrics import appliance_registry
from .site_link import SiteUnavailableError

if TYPE_CHECKING:
    from hybridvoice.mediation.records import CallRecordStore

    from .appliance import Appliance

__all__ = ["RESULTS", "call_matches", "create_appliance_api"]

#: how many of the newest calls a search without ``since`` looks through
SCAN_LIMIT: Final = 10_000
#: the words ``result`` takes (or a SIP status code)
RESULTS: Final = ("answered", "failed", "active", "interrupted")
JsonBody = Annotated[dict[str, Any], Body()]


def _error(status: int, error: str, hint: str, **extra: Any) -> HTTPException:
    return HTTPException(status, detail={"error": error, "hint": hint, **extra})


def call_matches(record: CallRecord, party: str | None, result: str | None) -> bool:
    """Does ``record`` involve ``party`` (caller or callee, as dialled or translated, contains
    it) and end with ``result``?"""
    if party is not None:
        names = (record.caller, record.callee, record.caller_translated, record.callee_translated)
        if not any(party.lower() in n.lower() for n in names if n):
            return False
    if result is None:
        return True
    if result.isdigit():
        return record.sip_status == int(result)
    if result == "answered":
        return record.answer_utc is not None
    if result == "failed":
        return record.state is CallState.ENDED and record.answer_utc is None
    return str(record.state) == result


def _search(
    store: CallRecordStore, since: datetime | None, party: str | None, result: str | None,
    limit: int,
) -> list[CallRecord]:  # fmt: skip
    if since is None:
        candidates = store.recent(SCAN_LIMIT)
    else:
        start = since if since.tzinfo else since.replace(tzinfo=UTC)
        candidates = store.between(start, datetime.now(UTC) + timedelta(days=1))[::-1]
    found = (r for r in candidates if call_matches(r, party, result))
    return [r for _, r in zip(range(limit), found, strict=False)]


def create_appliance_api(appliance: Appliance) -> FastAPI:
    app = FastAPI(title="hybridvoice appliance", version="1", docs_url=None, redoc_url=None,
                  openapi_url=OPENAPI_URL)  # fmt: skip
    registry = app.state.metrics = appliance_registry(appliance)
    protect(app, appliance.access)

    def records() -> CallRecordStore:
        mediation = appliance.mediation
        if mediation is None or mediation.records is None:
            raise _error(404, "this appliance keeps no call records",
                         "set [Management] StateDirectory to keep them")  # fmt: skip
        return mediation.records

    @app.get("/v1/status")
    def status() -> dict[str, Any]:
        return appliance.status()

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:  # async: read live state on the event loop's thread
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/calls")
    def calls(
        limit: int = 50, since: datetime | None = None, party: str | None = None,
        result: str | None = None,
    ) -> list[Any]:  # fmt: skip
        if result is not None and not result.isdigit() and result not in RESULTS:
            raise _error(422, f"result {result!r} is not one of {', '.join(RESULTS)} "
                         "or a SIP status", "e.g. result=failed or result=503")  # fmt: skip
        found = _search(records(), since, party, result, max(1, min(limit, 1000)))
        return [jsonable_encoder(r) for r in found]

    @app.get("/v1/calls/{call_id}")
    def call(call_id: str) -> Any:
        store = records()
        record = store.live(call_id) or store.by_call_id(call_id) or store.by_record_id(call_id)
        if record is None:
            raise _error(404, f"no call {short_text(call_id)!r}", "GET /v1/calls lists them")
        answer = jsonable_encoder(record)  # with its observed path by segment (issue 14)
        answer["observed_paths"] = observed_answer(record, appliance.settings)
        return answer

    _gateway_routes(app, appliance)
    add_trace_routes(app, appliance)
    add_ops_routes(app, appliance)  # site CA, test calls
    add_logging_routes(app)
    add_appliance_answers(app)  # call records' models in /v1/openapi.json
    add_segment_routes(app, appliance)  # GET /v1/segments (plan verify)

    @app.post("/v1/leave")
    async def leave(request: Request) -> dict[str, Any]:
        """``appliance remove``: stop heartbeats, delete this appliance's site record."""
        audit_change(request, "appliance.leave", appliance.name, {"state": appliance._state()})
        try:
            return await appliance.leave()
        except SiteUnavailableError as exc:
            raise _error(503, str(exc), "try again when the site's etcd has quorum") from exc

    @app.post("/v1/maintenance/{action}")
    async def maintenance(action: str, request: Request) -> dict[str, Any]:
        # async: the role's state is the event loop's, not a worker thread's
        if action not in ("enter", "exit"):
            raise _error(404, f"unknown action {short_text(action)!r}", "use enter or exit")
        mediation = appliance.mediation
        if mediation is None:  # the appliance's state, not the server's fault: 409, not 5xx
            raise _error(
                409,
                "the mediation role is not running on this appliance",
                "maintenance drains the mediation role; GET /v1/status shows the roles",
            )
        before = {"state": "maintenance" if mediation.admission.maintenance else "online"}
        audit_change(request, f"maintenance.{action}", appliance.name, before)
        if action == "enter":
            mediation.enter_maintenance()
        else:
            mediation.exit_maintenance()
        after = {"state": "maintenance" if mediation.admission.maintenance else "online"}
        if appliance.link is not None:  # the cloud learns it now, not at the next heartbeat
            appliance.link.beat_now()
        audit_change(request, f"maintenance.{action}", appliance.name, before, after)
        return after

    return app


def _gateway_routes(app: FastAPI, appliance: Appliance) -> None:
    @app.get("/v1/gateways")
    async def gateways() -> dict[str, Any]:  # async: live state, on the event loop's thread
        return {"gateways": appliance.gateways()}

    @app.get("/v1/gateways/{name}")
    async def gateway(name: str) -> dict[str, Any]:
        for row in appliance.gateways():
            if row["name"] == name:
                return row
        raise _error(404, f"there is no gateway {name}", "GET /v1/gateways lists them")

    @app.post("/v1/gateways", status_code=201)
    async def add_gateway(body: JsonBody) -> dict[str, Any]:
        name = body.get("Name", body.get("name"))
        if not isinstance(name, str) or not name:
            raise _error(422, "the gateway needs a Name", "send Name with the other keys")
        return await _put(appliance, name, body, create=True)

    @app.patch("/v1/gateways/{name}")
    async def change_gateway(name: str, body: JsonBody) -> dict[str, Any]:
        return await _put(appliance, name, body, create=False)


async def _put(
    appliance: Appliance, name: str, body: dict[str, Any], *, create: bool
) -> dict[str, Any]:
    try:
        return await appliance.put_gateway(name, body, create=create)
    except GatewayChangeError as exc:
        hints = {404: "GET /v1/gateways lists them; POST /v1/gateways adds one",
                 409: f"change it with PATCH /v1/gateways/{name}",
                 422: "fix the keys listed in problems (the settings file's keys)"}  # fmt: skip
        problems = [{"key": p.key, "reason": p.reason} for p in exc.problems]
        text = "; ".join(str(p) for p in exc.problems)
        error = f"{exc.error}: {text}" if text else exc.error
        raise _error(exc.status, error, hints.get(exc.status, ""), problems=problems) from exc
