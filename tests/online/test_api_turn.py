"""``GET /v1/users/{sip_uri}/turn-credentials``: the online service hands a user's client the
TURN credentials the MRAS of an online appliance of the user's site issues."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from hybridvoice.online.api import create_online_api
from hybridvoice.online.api_turn import add_turn_routes
from hybridvoice.online.store import TenantStore

APPLIANCE = {
    "name": "ams-1", "site": "Amsterdam", "mediation_fqdn": "med1.contoso.com",
    "edge_fqdn": "edge.contoso.com", "edge_sip_host": "192.0.2.10",
    "mras_url": "http://192.0.2.10:8474/mras/v1/credentials",
}  # fmt: skip
ANSWER = {
    "username": "1900000000:sip:alice@contoso.com", "password": "cGFzcw==", "ttl": 28800,
    "expires": 1900000000, "uris": ["turn:192.0.2.10:3478?transport=udp"],
}  # fmt: skip
URL = "/v1/users/sip:alice@contoso.com/turn-credentials"


def run(
    scenario: Callable[[httpx.AsyncClient, TenantStore, list[tuple[str, str]]], Awaitable[None]],
    fail: bool = False,
) -> None:
    store = TenantStore()
    asked: list[tuple[str, str]] = []

    async def fetch(url: str, user: str) -> dict[str, Any]:
        asked.append((url, user))
        if fail:
            raise httpx.ConnectError("connection refused")
        return dict(ANSWER)

    app = create_online_api(store)
    add_turn_routes(app, store, fetch)
    _, token = store.access.tokens.create("admin", "admin")

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://online",
                                     headers=headers) as http:  # fmt: skip
            assert (await http.post("/v1/domains", json={"name": "contoso.com"})).status_code == 201
            site = {"name": "Amsterdam", "edge_fqdn": "edge.contoso.com", "country_code": "31"}
            assert (await http.post("/v1/sites", json=site)).status_code == 201
            await scenario(http, store, asked)

    asyncio.run(main())


def _error(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    assert answer.json()["hint"]
    return str(answer.json()["error"])


async def _user(http: httpx.AsyncClient, site: str | None = "Amsterdam") -> None:
    body = {"display_name": "Alice", "hybrid_pstn_site": site}
    answer = await http.put("/v1/users/sip:alice@contoso.com", json=body)
    assert answer.status_code == 200, answer.text


def test_credentials_from_the_sites_edge() -> None:
    async def scenario(
        http: httpx.AsyncClient, store: TenantStore, asked: list[tuple[str, str]]
    ) -> None:
        await _user(http)
        assert (await http.post("/v1/appliances", json=APPLIANCE)).status_code == 201
        assert (await http.get("/v1/appliances/ams-1")).json()["mras_url"] == APPLIANCE["mras_url"]
        _, read = store.access.tokens.create("alice-client", "read")
        answer = await http.get(URL, headers={"Authorization": f"Bearer {read}"})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {**ANSWER, "site": "Amsterdam", "appliance": "ams-1"}
        assert asked == [(APPLIANCE["mras_url"], "sip:alice@contoso.com")]
        assert (await http.get(URL, headers={"Authorization": ""})).status_code == 401

    run(scenario)


def test_errors_name_what_is_missing() -> None:
    async def scenario(
        http: httpx.AsyncClient, store: TenantStore, asked: list[tuple[str, str]]
    ) -> None:
        assert "no user" in _error(await http.get(URL), 404)
        assert "SIP URI" in (await http.get("/v1/users/%20/turn-credentials")).json()["hint"]
        await _user(http, site=None)
        assert "no hybrid PSTN site" in _error(await http.get(URL), 409)
        await _user(http)
        assert "runs a media relay" in _error(await http.get(URL), 503)
        without = {**APPLIANCE, "mras_url": ""}
        assert (await http.post("/v1/appliances", json=without)).status_code == 201
        assert "runs a media relay" in _error(await http.get(URL), 503)
        bad = {**APPLIANCE, "mras_url": "not a url"}
        assert (await http.post("/v1/appliances", json=bad)).status_code == 422
        assert asked == []

    run(scenario)


def test_mras_failure_is_502() -> None:
    async def scenario(
        http: httpx.AsyncClient, store: TenantStore, asked: list[tuple[str, str]]
    ) -> None:
        await _user(http)
        assert (await http.post("/v1/appliances", json=APPLIANCE)).status_code == 201
        assert "connection refused" in _error(await http.get(URL), 502)

    run(scenario, fail=True)
