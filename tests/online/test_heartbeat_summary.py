"""Heartbeat summaries (the dashboard's overview of a tenant): the online API keeps the last
one per appliance, refuses a bad one naming the field, and an appliance whose online service
predates summaries keeps beating without them."""

from __future__ import annotations

import asyncio
import json

import httpx

from hybridvoice.cms.replicator import ApplianceLink
from hybridvoice.online.api import create_online_api
from hybridvoice.online.heartbeat_summary import SummaryBoard
from hybridvoice.online.store import TenantStore

APPLIANCE = {
    "name": "ams-1", "site": "Amsterdam", "mediation_fqdn": "med1.contoso.com",
    "edge_fqdn": "edge.contoso.com", "edge_sip_host": "192.0.2.10", "version": "1.0",
}  # fmt: skip
SUMMARY = {"calls_now": 3, "call_limit": 500, "gateways": 2, "gateways_up": 1,
           "replica_version": 7, "replica_lag_seconds": 0.0, "cert_days_left": 700}  # fmt: skip


def test_the_last_summary_of_each_appliance_is_kept_and_a_bad_one_named() -> None:
    store = TenantStore()
    app = create_online_api(store, clock=lambda: 1000.0)
    _, token = store.access.tokens.create("t", "admin")
    board = app.state.summaries
    assert isinstance(board, SummaryBoard)

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://o",
                                     headers=headers) as http:  # fmt: skip
            assert (await http.post("/v1/appliances", json=APPLIANCE)).status_code == 201
            url = "/v1/appliances/ams-1/heartbeat"
            assert (await http.post(url, json={"status": "online"})).status_code == 200
            assert board.rows() == {}  # a heartbeat without a summary leaves none
            beat = await http.post(url, json={"status": "online", "summary": SUMMARY})
            assert beat.status_code == 200, beat.text
            bad = await http.post(url, json={"summary": {**SUMMARY, "calls_now": -1}})
            assert bad.status_code == 422
            assert "summary.calls_now" in bad.text
            odd = await http.post(url, json={"summary": {"secret": "x"}})
            assert odd.status_code == 422 and "summary.secret" in odd.text

    asyncio.run(main())
    rows = board.rows()
    assert set(rows) == {"ams-1"}
    assert {k: v for k, v in rows["ams-1"].items() if k != "at"} == SUMMARY


def test_an_online_service_without_summaries_still_gets_heartbeats() -> None:
    bodies: list[dict[str, object]] = []

    def old_service(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/heartbeat"):
            body = json.loads(request.content)
            bodies.append(body)
            if "summary" in body:  # extra="forbid" before summaries existed
                return httpx.Response(422, json={"error": "summary: extra inputs"})
        return httpx.Response(200, json={})

    async def main() -> None:
        client = httpx.AsyncClient(transport=httpx.MockTransport(old_service))
        link = ApplianceLink("http://o", APPLIANCE, interval=60.0, status=lambda: "online",
                             client=client)  # fmt: skip
        link.summary = lambda: dict(SUMMARY)
        link.registered = True
        await link.heartbeat()
        await link.heartbeat()
        await client.aclose()
        assert link.heartbeats == 2 and link.summary is None

    asyncio.run(main())
    assert ["summary" in b for b in bodies] == [True, False, False]
