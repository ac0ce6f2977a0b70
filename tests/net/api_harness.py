"""Walk every route of a management API (FastAPI app) for the access tests of both APIs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute

from hybridvoice.online.api import create_online_api
from hybridvoice.online.api_answers import add_online_answers
from hybridvoice.online.api_trust import add_trust_routes
from hybridvoice.online.api_turn import add_turn_routes
from hybridvoice.online.api_updates import add_update_routes
from hybridvoice.online.store import TenantStore

READS = frozenset({"GET", "HEAD"})


def routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path with every ``{param}`` filled) of every route the app has."""
    for route in app.routes:
        if isinstance(route, APIRoute):
            path = re.sub(r"\{[^}]+\}", "x1", route.path)
            for method in sorted(route.methods):
                yield method, path


def writes(app: FastAPI) -> list[tuple[str, str]]:
    return [(m, p) for m, p in routes(app) if m not in READS]


def reads(app: FastAPI) -> list[tuple[str, str]]:
    return [(m, p) for m, p in routes(app) if m in READS]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def client(app: FastAPI, token: str | None = None) -> httpx.AsyncClient:
    """A client of ``app`` through httpx's ASGI transport (no socket), from 192.0.2.7."""
    transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 40000))
    headers = bearer(token) if token else None
    return httpx.AsyncClient(transport=transport, base_url="http://api", headers=headers)


async def send(http: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request; a change-feed poll never waits."""
    params = {"since": 0} if path == "/v1/changes" else None
    return await http.request(method, path, params=params, **kwargs)


def online_api(store: TenantStore) -> FastAPI:
    """The online service's API with every router the service adds (update windows, site
    roots, TURN credentials from an MRAS that is never reached), as ``OnlineService`` builds
    it: for the tests that walk or fuzz every route."""

    async def no_mras(url: str, user: str) -> dict[str, Any]:
        raise ValueError(f"no MRAS in this test ({url}, {user})")

    app = create_online_api(store)
    add_update_routes(app, store)
    add_turn_routes(app, store, no_mras)
    add_trust_routes(app, store, None)
    add_online_answers(app)
    return app
