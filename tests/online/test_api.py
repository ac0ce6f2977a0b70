"""The online service's REST API through httpx's ASGI transport: CRUD, error bodies with hints,
the long-polled change feed and its 410 + snapshot path, appliance heartbeats and the sweep."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from hybridvoice.cms.changes import Change
from hybridvoice.net.http import serve_asgi
from hybridvoice.online.api import create_online_api, run_offline_sweep
from hybridvoice.online.models import Appliance, ha1
from hybridvoice.online.store import TenantStore

APPLIANCE = {
    "name": "ams-1", "site": "Amsterdam", "mediation_fqdn": "med1.contoso.com",
    "edge_fqdn": "edge.contoso.com", "edge_sip_host": "192.0.2.10", "version": "1.0",
}  # fmt: skip


class Clock:
    """Epoch seconds the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


Scenario = Callable[[httpx.AsyncClient, TenantStore], Awaitable[None]]


def bearer(store: TenantStore, scope: str = "admin", name: str = "test") -> dict[str, str]:
    """The Authorization header of a new token of ``scope``."""
    _, token = store.access.tokens.create(name, scope)
    return {"Authorization": f"Bearer {token}"}


def run(scenario: Scenario, clock: Clock | None = None, **kwargs: Any) -> TenantStore:
    store = TenantStore()
    app = create_online_api(store, clock=clock or Clock(), **kwargs)

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://online", headers=bearer(store)
        ) as http:
            await scenario(http, store)

    asyncio.run(main())
    return store


def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["hint"], body
    return str(body["error"])


async def tenant(http: httpx.AsyncClient) -> None:
    """contoso.com with site Amsterdam."""
    assert (await http.post("/v1/domains", json={"name": "Contoso.COM."})).status_code == 201
    site = {"name": "Amsterdam", "edge_fqdn": "edge.contoso.com", "country_code": "31"}
    assert (await http.post("/v1/sites", json=site)).status_code == 201


# --- tenant objects ------------------------------------------------------------------------------


def test_domains() -> None:
    async def scenario(http: httpx.AsyncClient, store: TenantStore) -> None:
        answer = await http.post("/v1/domains", json={"name": "Contoso.COM."})
        assert answer.json() == {"name": "contoso.com"}
        assert (await http.get("/v1/domains")).json() == {"domains": ["contoso.com"]}
        assert "DNS name" in error_of(await http.post("/v1/domains", json={"name": "a b"}), 422)
        await http.put("/v1/users/sip:alice@contoso.com", json={"display_name": "Alice"})
        assert "alice" in error_of(await http.delete("/v1/domains/contoso.com"), 409)
        await http.delete("/v1/users/sip:alice@contoso.com")
        assert (await http.delete("/v1/domains/contoso.com")).status_code == 204
        error_of(await http.delete("/v1/domains/contoso.com"), 404)
        assert store.domains() == []

    run(scenario)


def test_sites_crud() -> None:
    async def scenario(http: httpx.AsyncClient, store: TenantStore) -> None:
        await tenant(http)
        site = (await http.get("/v1/sites/Amsterdam")).json()
        assert site["edge_fqdn"] == "edge.contoso.com"
        assert site["country_code"] == "31"
        again = {"name": "Amsterdam", "edge_fqdn": "x.contoso.com"}
        assert (
            "PUT /v1/sites/Amsterdam" in (await http.post("/v1/sites", json=again)).json()["hint"]
        )
        changed = await http.put("/v1/sites/Amsterdam", json={"edge_fqdn": "EDGE2.contoso.com"})
        assert changed.status_code == 200
        assert changed.json()["edge_fqdn"] == "edge2.contoso.com"
        other = await http.put("/v1/sites/Paris", json={"name": "Paris", "edge_fqdn": "p.fr"})
        assert other.status_code == 200
        names = [s["name"] for s in (await http.get("/v1/sites")).json()["sites"]]
        assert sorted(names) == ["Amsterdam", "Paris"]
        assert "differs" in error_of(
            await http.put("/v1/sites/Paris", json={"name": "Rome", "edge_fqdn": "p.fr"}), 400
        )
        assert (await http.delete("/v1/sites/Paris")).status_code == 204
        error_of(await http.get("/v1/sites/Paris"), 404)
        error_of(await http.delete("/v1/sites/Paris"), 404)
        assert store.get_site("Paris") is None

    run(scenario)


def test_invalid_fields_are_listed() -> None:
    async def scenario(http: httpx.AsyncClient, store: TenantStore) -> None:
        bad = await http.post("/v1/sites", json={"name": "Amsterdam", "edge_fqdn": "not a name"})
        error = error_of(bad, 422)
        assert "edge_fqdn" in error
        assert bad.json()["details"][0]["field"] == "edge_fqdn"
        unknown = await http.post("/v1/sites", json={"name": "A", "edge_fqdn": "e.c", "x": 1})
        assert "x" in [d["field"] for d in unknown.json()["details"]]
        error_of(await http.post("/v1/sites", content=b"{not json"), 422)
        error_of(await http.get("/v1/changes", params={"since": -1}), 422)
        error_of(await http.get("/v1/nowhere"), 404)
        error_of(await http.patch("/v1/sites"), 405)

    run(scenario)


def test_users_with_password_never_return_secrets() -> None:
    async def scenario(http: httpx.AsyncClient, store: TenantStore) -> None:
        await tenant(http)
        body = {
            "display_name": "Alice", "enterprise_voice_enabled": True,
            "line_uri": "tel:+31 20 555 0100", "hybrid_pstn_site": "Amsterdam",
            "password": "s3cret",
        }  # fmt: skip
        answer = await http.put("/v1/users/sip:alice@contoso.com", json=body)
        assert answer.status_code == 200, answer.text
        out = answer.json()
        assert out["line_uri"] == "tel:+31205550100"
        assert out["has_password"] is True
        for shown in (out, (await http.get("/v1/users/alice@contoso.com")).json(),
                      (await http.get("/v1/users")).json()["users"][0]):  # fmt: skip
            assert not {"ha1_md5", "ha1_sha256", "ha1_realm", "password"} & set(shown)
        user = store.get_user("sip:alice@contoso.com")
        assert user is not None
        assert user.ha1_md5 == ha1("MD5", "alice", "contoso.com", "s3cret")
        # an update without a password keeps it
        await http.put("/v1/users/sip:alice@contoso.com", json={"display_name": "Alice B"})
        user = store.get_user("sip:alice@contoso.com")
        assert user is not None and user.display_name == "Alice B" and user.has_password
        assert (await http.delete("/v1/users/sip:alice@contoso.com")).status_code == 204
        error_of(await http.get("/v1/users/sip:alice@contoso.com"), 404)

    run(scenario)


def test_user_errors_have_hints() -> None:
    async def scenario(http: httpx.AsyncClient, store: TenantStore) -> None:
        await tenant(http)
        foreign = await http.put("/v1/users/sip:bob@fabrikam.com", json={})
        assert "fabrikam.com" in error_of(foreign, 409)
        assert "POST /v1/domains" in foreign.json()["hint"]
        nosite = {"hybrid_pstn_site": "Nowhere"}
        error_of(await http.put("/v1/users/sip:bob@contoso.com", json=nosite), 409)
        mismatch = {"sip_uri": "sip:carol@contoso.com"}
        error_of(await http.put("/v1/users/sip:bob@contoso.com", json=mismatch), 400)
        same = {"sip_uri": "bob@CONTOSO.com"}
        assert (await http.put("/v1/users/sip:bob@contoso.com", json=same)).status_code == 200
        error_of(await http.put("/v1/users/sip:bob@contoso.com", json={"password": ""}), 422)
        error_of(await http.put("/v1/users/sip:bob@contoso.com", json={"line_uri": "+1"}), 422)
        error_of(await http.get("/v1/users/nobody"), 422)
        number = {"line_uri": "tel:+31205550100"}
        await http.put("/v1/users/sip:bob@contoso.com", json=number)
        taken = await http.put("/v1/users/sip:carol@contoso.com", json=number)
        assert "bob" in error_of(taken, 409)

    run(scenario)


def test_tenant_configuration_and_media_bypass() -> None:
    async def scenario(http: httpx.AsyncClient, store: TenantStore) -> None:
        url = "https://hv.contoso.com/hybridconfig/hybridconfigservice.svc"
        hybrid = {"hybrid_config_service_internal_url": url, "peer_destination": "Edge.contoso.com"}
        answer = await http.put("/v1/hybrid-config", json=hybrid)
        assert answer.json()["peer_destination"] == "edge.contoso.com"
        assert (await http.get("/v1/hybrid-config")).json()[
            "hybrid_config_service_internal_url"
        ] == url
        error_of(await http.put("/v1/hybrid-config", json={"peer_destination": "a b"}), 422)
        patched = await http.patch("/v1/hybrid-config", json={"use_onprem_dialplan": True})
        assert patched.json()["hybrid_config_service_internal_url"] == url  # kept
        assert store.hybrid_config().use_onprem_dialplan is True
        replaced = await http.put("/v1/hybrid-config", json={"use_onprem_dialplan": True})
        assert replaced.json()["peer_destination"] is None  # PUT replaces
        error_of(await http.patch("/v1/network-config", json={"always_bypass": "maybe"}), 422)

        net = {"internal_subnets": ["10.1.2.3/16"], "always_bypass": False}
        assert (await http.put("/v1/network-config", json=net)).json() == {
            "media_bypass_enabled": False, "always_bypass": False,
            "internal_subnets": ["10.1.0.0/16"],
        }  # fmt: skip
        patched_net = await http.patch("/v1/network-config", json={"always_bypass": True})
        assert patched_net.json()["internal_subnets"] == ["10.1.0.0/16"]
        enabled = await http.post("/v1/network-config/media-bypass/enable")
        assert enabled.json()["media_bypass_enabled"] is True
        assert enabled.json()["internal_subnets"] == ["10.1.0.0/16"]  # the rest is kept
        always = await http.post(
            "/v1/network-config/media-bypass/enable", json={"always_bypass": True}
        )
        assert always.json()["always_bypass"] is True
        disabled = await http.post("/v1/network-config/media-bypass/disable")
        assert disabled.json()["media_bypass_enabled"] is False
        assert store.network_config().media_bypass_enabled is False
        error_of(await http.post("/v1/network-config/media-bypass/toggle"), 404)

    run(scenario)


def test_dial_plan() -> None:
    async def scenario(http: httpx.AsyncClient, store: TenantStore) -> None:
        rule = {"pattern": r"^0(\d{9})$", "translation": "+31$1", "priority": 2}
        assert (await http.put("/v1/dialplan/nl-national", json=rule)).status_code == 200
        first = {"pattern": r"^112$", "translation": "+112", "priority": 1}
        await http.put("/v1/dialplan/emergency", json=first)
        names = [r["name"] for r in (await http.get("/v1/dialplan")).json()["rules"]]
        assert names == ["emergency", "nl-national"]
        assert (await http.get("/v1/dialplan/nl-national")).json()["translation"] == "+31$1"
        bad = {"pattern": "^(1$", "translation": "x"}
        assert "regex" in error_of(await http.put("/v1/dialplan/bad", json=bad), 422)
        assert (await http.delete("/v1/dialplan/emergency")).status_code == 204
        error_of(await http.get("/v1/dialplan/emergency"), 404)
        error_of(await http.delete("/v1/dialplan/emergency"), 404)

    run(scenario)


# --- the change feed -----------------------------------------------------------------------------


def test_changes_and_snapshot() -> None:
    async def scenario(http: httpx.AsyncClient, store: TenantStore) -> None:
        await tenant(http)
        await http.put("/v1/users/sip:alice@contoso.com", json={"password": "pw"})
        feed = (await http.get("/v1/changes", params={"since": 0})).json()
        assert feed["version"] == store.version == 3
        assert feed["more"] is False
        changes = [Change.from_json(c) for c in feed["changes"]]
        assert [(c.kind, c.key) for c in changes] == [
            ("domain", "contoso.com"), ("site", "Amsterdam"), ("user", "sip:alice@contoso.com"),
        ]  # fmt: skip
        assert changes[2].value is not None and "ha1_md5" not in changes[2].value
        page = (await http.get("/v1/changes", params={"since": 0, "limit": 2})).json()
        assert [c["version"] for c in page["changes"]] == [1, 2]
        assert page["version"] == 2 and page["more"] is True
        empty = (await http.get("/v1/changes", params={"since": 3})).json()
        assert empty == {"version": 3, "changes": [], "more": False}
        snapshot = (await http.get("/v1/snapshot")).json()
        assert snapshot["version"] == 3
        assert {c["key"] for c in snapshot["changes"]} == {
            "contoso.com", "Amsterdam", "sip:alice@contoso.com",
        }  # fmt: skip

    run(scenario)


def test_a_replica_ahead_of_the_cloud_gets_410_and_loads_the_snapshot() -> None:
    async def scenario(http: httpx.AsyncClient, store: TenantStore) -> None:
        await tenant(http)
        gone = await http.get("/v1/changes", params={"since": 99, "wait": 5})
        assert "ahead" in error_of(gone, 410)
        assert "/v1/snapshot" in gone.json()["hint"]
        assert gone.json()["version"] == 2

    run(scenario)


def test_long_poll_returns_as_soon_as_a_change_lands() -> None:
    async def scenario(http: httpx.AsyncClient, store: TenantStore) -> None:
        await tenant(http)
        since = store.version
        poll = asyncio.create_task(http.get("/v1/changes", params={"since": since, "wait": 60}))
        await asyncio.sleep(0.05)
        assert not poll.done()  # held open: nothing new yet
        store.add_domain("fabrikam.com")
        answer = await asyncio.wait_for(poll, 30)  # far below the 60 s the request may wait
        feed = answer.json()
        assert feed["version"] == since + 1
        assert [(c["kind"], c["key"]) for c in feed["changes"]] == [("domain", "fabrikam.com")]

    run(scenario)


def test_long_poll_times_out_empty() -> None:
    async def scenario(http: httpx.AsyncClient, store: TenantStore) -> None:
        answer = await http.get("/v1/changes", params={"since": 0, "wait": 0.05})
        assert answer.json() == {"version": 0, "changes": [], "more": False}

    run(scenario)


# --- appliances ----------------------------------------------------------------------------------


def test_register_heartbeat_unregister() -> None:
    clock = Clock()

    async def scenario(http: httpx.AsyncClient, store: TenantStore) -> None:
        first = await http.post("/v1/appliances", json=APPLIANCE)
        assert first.status_code == 201, first.text
        assert first.json()["registered_at"] == clock.now
        assert store.get_site("Amsterdam") is not None  # the first appliance creates its site
        assert (await http.post("/v1/appliances", json=APPLIANCE)).status_code == 200
        moved = {**APPLIANCE, "site": "Paris"}
        assert (
            "DELETE /v1/appliances"
            in (await http.post("/v1/appliances", json=moved)).json()["hint"]
        )
        error_of(await http.post("/v1/appliances", json={**APPLIANCE, "status": "online"}), 422)
        clock.now += 3
        beat = await http.post("/v1/appliances/ams-1/heartbeat",
                               json={"status": "maintenance", "version": "1.1"})  # fmt: skip
        assert beat.status_code == 200
        assert beat.json()["status"] == "maintenance"
        assert beat.json()["last_heartbeat"] == clock.now
        assert (await http.post("/v1/appliances/ams-1/heartbeat")).json()["status"] == "online"
        error_of(await http.post("/v1/appliances/ams-1/heartbeat", json={"status": "x"}), 422)
        missing = await http.post("/v1/appliances/ams-9/heartbeat", json={"status": "online"})
        assert "POST /v1/appliances" in missing.json()["hint"]
        error_of(missing, 404)
        listed = (await http.get("/v1/appliances", params={"site": "Amsterdam"})).json()
        assert [a["name"] for a in listed["appliances"]] == ["ams-1"]
        assert (await http.get("/v1/appliances", params={"site": "Paris"})).json() == {
            "appliances": []
        }
        assert (await http.get("/v1/appliances/ams-1")).json()["version"] == "1.1"
        health = (await http.get("/v1/health")).json()
        assert health["appliances"]["online"] == 1
        assert health["version"] == store.version
        error_of(await http.delete("/v1/sites/Amsterdam"), 409)
        assert (await http.delete("/v1/appliances/ams-1")).status_code == 204
        error_of(await http.get("/v1/appliances/ams-1"), 404)
        error_of(await http.delete("/v1/appliances/ams-1"), 404)

    run(scenario, clock)


def test_the_lifespan_sweep_marks_silent_appliances_offline() -> None:
    clock = Clock()
    store = TenantStore()
    app = create_online_api(store, heartbeat_timeout=0.2, clock=clock)

    async def main() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://online", headers=bearer(store)
            ) as http:
                await http.post("/v1/appliances", json=APPLIANCE)
                await http.post("/v1/appliances", json={**APPLIANCE, "name": "ams-2"})
                clock.now += 0.1
                await http.post("/v1/appliances/ams-2/heartbeat")
                clock.now += 0.15  # ams-1 silent for 0.25 s, ams-2 for 0.15 s
                await until(lambda: status(store, "ams-1") == "offline")
                assert status(store, "ams-2") == "online"
                back = await http.post("/v1/appliances/ams-1/heartbeat")
                assert back.json()["status"] == "online"
                assert [a.name for a in store.routable_appliances("Amsterdam")] == [
                    "ams-1", "ams-2",
                ]  # fmt: skip

    asyncio.run(main())


def test_the_sweep_can_run_without_lifespan() -> None:
    clock = Clock()
    store = TenantStore()
    store.register_appliance(Appliance.model_validate(APPLIANCE), clock.now)

    async def main() -> None:
        sweep = asyncio.create_task(run_offline_sweep(store, 0.2, clock))
        clock.now += 1
        await until(lambda: status(store, "ams-1") == "offline")
        sweep.cancel()

    asyncio.run(main())


def status(store: TenantStore, name: str) -> str | None:
    appliance = store.get_appliance(name)
    return None if appliance is None else appliance.status


async def until(condition: Callable[[], bool], limit: float = 20.0) -> None:
    """Poll ``condition`` every 10 ms; fail the test after ``limit`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not condition():
        if loop.time() > deadline:
            pytest.fail("condition not reached")
        await asyncio.sleep(0.01)


def test_a_held_poll_ends_when_its_client_goes_away() -> None:
    """An appliance that restarts or gives up leaves no request waiting for 60 s."""
    store = TenantStore()
    ended: list[str] = []
    wait_for_change = store.wait_for_change

    async def watched(version: int, timeout: float) -> bool:
        try:
            return await wait_for_change(version, timeout)
        except asyncio.CancelledError:
            ended.append("cancelled")
            raise

    store.wait_for_change = watched  # type: ignore[method-assign]

    async def main() -> None:
        server = await serve_asgi(create_online_api(store), "127.0.0.1", 0)
        try:
            async with httpx.AsyncClient(timeout=70, headers=bearer(store)) as http:
                poll = asyncio.create_task(
                    http.get(f"{server.url}/v1/changes", params={"since": 0, "wait": 60})
                )
                await asyncio.sleep(0.2)
                assert not poll.done()
                poll.cancel()  # closes the connection
            await until(lambda: ended == ["cancelled"])
        finally:
            await server.stop()

    asyncio.run(main())
