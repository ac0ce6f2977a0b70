"""Update windows through the online API: CRUD, sites naming them, the site's update state, the
audit log, and the change feed that carries them to appliances' replicas."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from hybridvoice.cms.replica import LocalStore
from hybridvoice.online.api import create_online_api
from hybridvoice.online.api_updates import add_update_routes
from hybridvoice.online.models import Site
from hybridvoice.online.store import StoreError, TenantStore
from hybridvoice.online.update_windows import TenantUpdateWindow

Scenario = Callable[[httpx.AsyncClient, TenantStore], Awaitable[None]]
NIGHT = {"name": "Night", "start_time": "02:00", "duration_minutes": 120,
         "time_zone": "Europe/Amsterdam"}  # fmt: skip


def run(scenario: Scenario, store: TenantStore | None = None) -> TenantStore:
    store = store or TenantStore()
    app = create_online_api(store)
    add_update_routes(app, store)
    _, token = store.access.tokens.create("test", "admin")

    async def main() -> None:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://online",
            headers={"Authorization": f"Bearer {token}"},
        ) as http:  # fmt: skip
            await scenario(http, store)

    asyncio.run(main())
    return store


def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["hint"], body
    return str(body["error"])


async def site(http: httpx.AsyncClient, **fields: object) -> httpx.Response:
    body = {"name": "Amsterdam", "edge_fqdn": "edge.contoso.com", **fields}
    return await http.put("/v1/sites/Amsterdam", json=body)


def test_windows_crud() -> None:
    async def scenario(http: httpx.AsyncClient, store: TenantStore) -> None:
        made = await http.post("/v1/update-windows", json=NIGHT)
        assert made.status_code == 201, made.text
        assert made.json()["recurrence"] == "daily"
        assert "exists" in error_of(await http.post("/v1/update-windows", json=NIGHT), 409)
        weekend = {"recurrence": "weekly", "days_of_week": ["Sat", "sun"], "start_time": "01:00"}
        put = await http.put("/v1/update-windows/Weekend", json=weekend)
        assert put.json()["days_of_week"] == ["saturday", "sunday"]
        listed = (await http.get("/v1/update-windows")).json()["update_windows"]
        assert [w["name"] for w in listed] == ["Night", "Weekend"]
        patched = await http.patch("/v1/update-windows/Night", json={"duration_minutes": 30})
        assert patched.json() == {**made.json(), "duration_minutes": 30}
        assert "Nope" in error_of(await http.patch("/v1/update-windows/Nope", json={}), 404)
        assert "Nope" in error_of(await http.get("/v1/update-windows/Nope"), 404)
        assert (await http.delete("/v1/update-windows/Weekend")).status_code == 204
        assert "Weekend" in error_of(await http.delete("/v1/update-windows/Weekend"), 404)
        expected = TenantUpdateWindow.model_validate({**NIGHT, "duration_minutes": 30})
        assert store.get_update_window("Night") == expected

    run(scenario)


def test_bad_windows_are_refused_with_the_field_and_reason() -> None:
    async def scenario(http: httpx.AsyncClient, store: TenantStore) -> None:
        for body, field, words in [
            ({**NIGHT, "start_time": "25:00"}, "start_time", "HH:MM"),
            ({**NIGHT, "time_zone": "Mars/Base"}, "time_zone", "IANA"),
            ({**NIGHT, "duration_minutes": "60"}, "duration_minutes", "integer"),
            ({**NIGHT, "recurrence": "weekly"}, "", "days_of_week: a weekly window needs"),
        ]:
            error = error_of(await http.post("/v1/update-windows", json=body), 422)
            assert field in error and words in error, error
        error = error_of(
            await http.put("/v1/update-windows/Other", json=NIGHT), 400
        )  # the body names another window
        assert "differs from the URL" in error
        patch = await http.patch("/v1/update-windows/Night", json={"day_of_month": 3})
        assert patch.status_code == 404
        assert store.update_windows() == []

    run(scenario)


def test_sites_name_existing_windows_and_windows_in_use_stay() -> None:
    async def scenario(http: httpx.AsyncClient, store: TenantStore) -> None:
        error = error_of(await site(http, update_time_windows=["Night"]), 409)
        assert "update window 'Night' does not exist" in error
        assert (await http.post("/v1/update-windows", json=NIGHT)).status_code == 201
        answer = await site(http, update_time_windows=["Night"], enable_auto_update=False)
        assert answer.status_code == 200, answer.text
        assert answer.json()["update_time_windows"] == ["Night"]
        error = error_of(await http.delete("/v1/update-windows/Night"), 409)
        assert "assigned to site(s) Amsterdam" in error
        assert (await site(http)).status_code == 200  # the site without windows
        assert (await http.delete("/v1/update-windows/Night")).status_code == 204

    run(scenario)


def test_site_update_state() -> None:
    async def scenario(http: httpx.AsyncClient, store: TenantStore) -> None:
        await http.post("/v1/update-windows", json=NIGHT)
        await site(http, update_time_windows=["Night"])
        inside = await http.get("/v1/sites/Amsterdam/update-state",
                                params={"at": "2026-12-07T01:30:00+00:00"})  # fmt: skip
        body = inside.json()
        assert body["inside"] and body["open_windows"] == ["Night"]
        assert body["ends"] == "2026-12-07T03:00:00+00:00"
        assert body["next_start"] == "2026-12-08T01:00:00+00:00"
        assert body["windows"][0]["description"] == "daily 02:00 for 2h (Europe/Amsterdam)"
        assert body["enable_auto_update"] is True
        outside = await http.get("/v1/sites/Amsterdam/update-state",
                                 params={"at": "2026-12-07T12:00:00Z"})  # fmt: skip
        assert not outside.json()["inside"] and outside.json()["ends"] is None
        naive = await http.get("/v1/sites/Amsterdam/update-state",
                               params={"at": "2026-12-07T12:00:00"})  # fmt: skip
        assert "no time zone" in error_of(naive, 422)
        assert "Nowhere" in error_of(await http.get("/v1/sites/Nowhere/update-state"), 404)
        now = (await http.get("/v1/sites/Amsterdam/update-state")).json()
        assert now["next_start"] is not None

    run(scenario)


def test_writes_are_audited() -> None:
    async def scenario(http: httpx.AsyncClient, store: TenantStore) -> None:
        await http.post("/v1/update-windows", json=NIGHT)
        await http.patch("/v1/update-windows/Night", json={"start_time": "03:00"})
        await http.delete("/v1/update-windows/Night")

    store = run(scenario)
    rows = store.access.audit.entries(operation="update-window", limit=10)
    assert [(r.operation, r.target) for r in rows][::-1] == [
        ("update-window.new", "Night"),
        ("update-window.update", "Night"),
        ("update-window.remove", "Night"),
    ]


def test_windows_reach_the_replica_and_survive_a_restart(tmp_path: Path) -> None:
    path = f"{tmp_path}/online.db"
    store = TenantStore(path)
    window = store.set_update_window(TenantUpdateWindow.model_validate(NIGHT))
    changes = store.changes_since(0)
    assert [(c.kind, c.key) for c in changes] == [("update_window", "Night")]
    replica = LocalStore(":memory:")
    replica.apply(changes)
    assert replica.get("update_window", "Night") == window.model_dump(mode="json")
    store.close()
    again = TenantStore(path)
    assert again.get_update_window("Night") == window
    with pytest.raises(StoreError, match="update window 'Day' does not exist"):
        again.new_site(Site(name="S", edge_fqdn="e.contoso.com", update_time_windows=("Day",)))
    again.new_site(Site(name="S", edge_fqdn="e.contoso.com", update_time_windows=("Night",)))
    with pytest.raises(StoreError, match="assigned to site"):
        again.remove_update_window("Night")
    again.close()


def test_a_tenant_stored_by_the_version_before_windows_still_opens(tmp_path: Path) -> None:
    """Every site row written before tenant windows holds ``"update_windows": []``."""
    path = tmp_path / "online.db"
    store = TenantStore(path)
    store.new_site(Site(name="Amsterdam", edge_fqdn="edge.contoso.com"))
    store.close()
    db = sqlite3.connect(path)
    old = ('{"name":"Amsterdam","edge_fqdn":"edge.contoso.com","country_code":null,'
           '"update_windows":[],"description":""}')  # fmt: skip
    db.execute("UPDATE rows SET value = ? WHERE kind = 'site'", (old,))
    db.commit()
    db.close()
    again = TenantStore(path)  # refused before: "stored site 'Amsterdam' is invalid"
    site = again.get_site("Amsterdam")
    assert site is not None and site.update_time_windows == () and site.enable_auto_update
    again.close()
