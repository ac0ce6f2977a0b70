"""Walk every route of a management API (FastAPI app) for the access tests of both APIs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute

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
