"""The appliance API behind its own tokens (every route, walked from ``app.routes``), the
maintenance switch in its audit log, and the tokens ``hybridvoice up``'s Lab makes: one admin
token for both APIs, a token of scope appliance for the appliance's link to the cloud."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from api_harness import bearer, client, reads, send, writes
from chain_harness import lab, settings_on_free_ports
from ua_harness import run

from hybridvoice.mgmt.appliance import Appliance, ApplianceOptions
from hybridvoice.mgmt.appliance_api import create_appliance_api


def test_every_route_needs_a_token_and_writes_need_admin(tmp_path: Path) -> None:
    settings = settings_on_free_ports(Management={"StateDirectory": str(tmp_path)})
    appliance = Appliance(settings, ApplianceOptions(serve_api=False))
    app = create_appliance_api(appliance)
    _, read = appliance.access.tokens.create("noc", "read")
    assert writes(app) and len(reads(app)) >= 5

    async def main() -> None:
        async with client(app) as anonymous:
            for method, path in reads(app) + writes(app):
                answer = await send(anonymous, method, path)
                assert answer.status_code == 401, (method, path)
                assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        async with client(app, read) as noc:
            for method, path in reads(app):
                assert (await send(noc, method, path)).status_code not in (401, 403), path
            for method, path in writes(app):
                answer = await send(noc, method, path)
                assert answer.status_code == 403, (method, path)
                assert "scope admin" in answer.json()["hint"]

    try:
        asyncio.run(main())
    finally:
        appliance.close()
    stored = (tmp_path / "access.db").read_bytes()
    assert read.encode() not in stored and b"noc" in stored


def test_maintenance_is_audited_and_the_lab_token_works_on_both_apis(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path) as up:
            assert up.admin_token and up.appliance is not None and up.online is not None
            assert up.appliance.api is not None and up.online.api is not None
            admin = bearer(up.admin_token)
            async with httpx.AsyncClient(base_url=up.appliance.api.url, headers=admin) as http:
                entered = await http.post("/v1/maintenance/enter")
                assert entered.json() == {"state": "maintenance"}
                assert (await http.post("/v1/maintenance/exit")).status_code == 200
                assert (await http.get("/v1/status")).status_code == 200
                log = (await http.get("/v1/audit", params={"operation": "maintenance"})).json()
            async with httpx.AsyncClient(base_url=up.online.api.url, headers=admin) as http:
                assert (await http.get("/v1/users")).status_code == 200
            entries = log["entries"]
            assert [e["operation"] for e in entries] == ["maintenance.exit", "maintenance.enter"]
            enter = entries[1]
            assert enter["before"] == {"state": "online"}
            assert enter["after"] == {"state": "maintenance"}
            assert (enter["token_name"], enter["source"]) == ("lab-admin", "127.0.0.1")
            # the appliance reached the cloud with a token of its own, scope appliance
            mine = [t for t in up.online.store.access.tokens.tokens() if t.active]
            assert {(t.name, t.scope) for t in mine} == {
                ("lab-admin", "admin"), (up.appliance.name, "appliance"),
            }  # fmt: skip
            assert up.appliance.link is not None and up.appliance.link.registered

    run(main(), timeout=60)


def test_maintenance_reaches_the_cloud_at_once_not_at_the_next_heartbeat(tmp_path: Path) -> None:
    """A draining appliance must leave the cloud's routing now: with a one-minute heartbeat the
    status the cloud holds changes within seconds of ``maintenance/enter`` and ``exit``."""
    settings = settings_on_free_ports(Online={"HeartbeatSeconds": 60})

    async def main() -> None:
        async with lab(tmp_path, settings) as up:
            assert up.admin_token and up.appliance is not None and up.online is not None
            assert up.appliance.api is not None
            name = up.appliance.name

            async def cloud_sees(status: str) -> None:
                assert up.online is not None
                for _ in range(200):
                    appliance = up.online.store.get_appliance(name)
                    if appliance is not None and appliance.status == status:
                        return
                    await asyncio.sleep(0.05)
                pytest.fail(f"the cloud never saw the appliance {status}")

            await cloud_sees("online")
            admin = bearer(up.admin_token)
            async with httpx.AsyncClient(base_url=up.appliance.api.url, headers=admin) as http:
                assert (await http.post("/v1/maintenance/enter")).status_code == 200
                await cloud_sees("maintenance")
                assert (await http.post("/v1/maintenance/exit")).status_code == 200
                await cloud_sees("online")

    run(main(), timeout=60)


def test_a_restart_on_the_same_state_revokes_the_previous_lab_tokens(tmp_path: Path) -> None:
    settings = settings_on_free_ports()

    async def main() -> None:
        async with lab(tmp_path, settings) as up:
            first = up.admin_token
        async with lab(tmp_path, settings) as up:
            assert up.online is not None and up.appliance is not None
            assert up.admin_token != first
            assert first is not None and up.online.store.access.tokens.verify(first) is None
            assert up.appliance.access.tokens.verify(first) is None
            active = [t.name for t in up.online.store.access.tokens.tokens() if t.active]
            assert sorted(active) == sorted(["lab-admin", up.appliance.name])

    run(main(), timeout=90)


def test_max_request_bytes_limits_both_apis_and_422s_stay_short(tmp_path: Path) -> None:
    settings = settings_on_free_ports(Management={"MaxRequestBytes": 2048})

    async def main() -> None:
        async with lab(tmp_path, settings) as up:
            assert up.admin_token and up.appliance is not None and up.online is not None
            assert up.appliance.api is not None and up.online.api is not None
            admin = bearer(up.admin_token)
            big = {"description": "x" * 4096}
            targets = [(up.online.api.url, "PUT", "/v1/sites/Lab"),
                      (up.appliance.api.url, "POST", "/v1/maintenance/enter")]  # fmt: skip
            for url, method, path in targets:
                async with httpx.AsyncClient(base_url=url, headers=admin) as http:
                    refused = await http.request(method, path, json=big)
                    assert refused.status_code == 413, (url, refused.text)
                    assert "MaxRequestBytes" in refused.json()["hint"]
            async with httpx.AsyncClient(base_url=up.appliance.api.url, headers=admin) as http:
                bad = await http.get("/v1/calls", params={"limit": "9" * 5000})
                assert bad.status_code == 422 and len(bad.content) < 2000
                assert bad.json()["details"][0]["field"] == "query.limit"
            assert up.appliance.mediation is not None
            assert not up.appliance.mediation.admission.maintenance  # refused: nothing done

    run(main(), timeout=60)
