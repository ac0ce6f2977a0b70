"""``/v1/update-windows`` and ``/v1/sites/{name}/update-state``: when sites may be updated.

The original's New/Set/Get/Remove-CsTenantUpdateTimeWindow and Set-CsHybridPSTNSite
-EnableAutoUpdate -TenantUpdateTimeWindow (``docs/updates.md``):

- ``GET /v1/update-windows`` lists the tenant's windows, ``GET .../{name}`` one;
- ``POST /v1/update-windows`` creates one (409 when the name is taken), ``PUT .../{name}``
  creates or replaces, ``PATCH .../{name}`` changes the fields given (404 when missing);
- ``DELETE .../{name}`` removes one (409 while a site names it);
- ``GET /v1/sites/{name}/update-state[?at=ISO-8601]``: the site's windows, whether ``at``
  (default: now) is inside one, until when, and when the next one opens
  (:func:`.update_windows.window_state`).

Sites name their windows in their ``update_time_windows`` field (``PUT /v1/sites/{name}``);
naming a window that does not exist is refused (409). Windows replicate to appliances in the
change feed (kind ``update_window``). Writes need an admin token and leave audit rows.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import FastAPI, Request, Response

from hybridvoice.cms.guard import audit_after, audit_change

from .api import ApiError, JsonBody, _build, _dump, _named, _not_found
from .store import StoreError, TenantStore
from .update_windows import TenantUpdateWindow, window_state

__all__ = ["add_update_routes", "site_update_state"]

_LIST = "GET /v1/update-windows lists them; POST /v1/update-windows creates one"


def site_update_state(store: TenantStore, name: str, at: dt.datetime) -> dict[str, Any]:
    """What ``GET /v1/sites/{name}/update-state`` answers (:class:`LookupError`: no site)."""
    site = store.get_site(name)
    if site is None:
        raise LookupError(name)
    windows = store.site_update_windows(site)
    state = window_state(windows, at)
    return {
        "site": site.name,
        "enable_auto_update": site.enable_auto_update,
        "windows": [{**_dump(w), "description": w.describe()} for w in windows],
        "at": state.at.isoformat(),
        "inside": bool(state.inside),
        "open_windows": list(state.inside),
        "ends": None if state.ends is None else state.ends.isoformat(),
        "next_start": None if state.next_start is None else state.next_start.isoformat(),
        "next_window": state.next_window,
    }


def add_update_routes(app: FastAPI, store: TenantStore) -> None:
    """Add the update-window routes to the online API ``app``."""

    @app.get("/v1/update-windows")
    async def windows() -> dict[str, Any]:
        return {"update_windows": [_dump(w) for w in store.update_windows()]}

    @app.get("/v1/update-windows/{name}")
    async def get_window(name: str) -> dict[str, Any]:
        window = store.get_update_window(name)
        if window is None:
            raise _not_found(f"update window {name!r}", _LIST)
        return _dump(window)

    @app.post("/v1/update-windows", status_code=201)
    async def new_window(body: JsonBody, request: Request) -> dict[str, Any]:
        window = _build(TenantUpdateWindow, body)
        audit_change(request, "update-window.new", window.name)
        if store.get_update_window(window.name) is not None:
            raise ApiError(409, f"update window {window.name!r} exists",
                           f"change it with PATCH /v1/update-windows/{window.name}")  # fmt: skip
        return audit_after(request, _dump(store.set_update_window(window)))

    @app.put("/v1/update-windows/{name}")
    async def set_window(name: str, body: JsonBody, request: Request) -> dict[str, Any]:
        old = store.get_update_window(name)
        audit_change(request, "update-window.set", name, None if old is None else _dump(old))
        window = _build(TenantUpdateWindow, _named(body, "name", name, str))
        return audit_after(request, _dump(store.set_update_window(window)))

    @app.patch("/v1/update-windows/{name}")
    async def change_window(name: str, body: JsonBody, request: Request) -> dict[str, Any]:
        old = store.get_update_window(name)
        if old is None:
            raise _not_found(f"update window {name!r}", _LIST)
        before = _dump(old)
        audit_change(request, "update-window.update", name, before)
        window = _build(TenantUpdateWindow, _named({**before, **body}, "name", name, str))
        return audit_after(request, _dump(store.set_update_window(window)))

    @app.delete("/v1/update-windows/{name}", status_code=204)
    async def remove_window(name: str, request: Request) -> Response:
        old = store.get_update_window(name)
        audit_change(request, "update-window.remove", name, None if old is None else _dump(old))
        if old is None:
            raise _not_found(f"update window {name!r}", _LIST)
        try:
            store.remove_update_window(name)
        except StoreError as exc:
            raise ApiError(409, str(exc), "PUT /v1/sites/{name} without the window in "
                           "update_time_windows for each of them first") from exc  # fmt: skip
        return Response(status_code=204)

    @app.get("/v1/sites/{name}/update-state")
    async def update_state(name: str, at: dt.datetime | None = None) -> dict[str, Any]:
        when = dt.datetime.now(dt.UTC) if at is None else at
        if when.tzinfo is None:
            hint = "give an ISO 8601 time with an offset, e.g. 2026-12-07T02:00:00Z"
            raise ApiError(422, f"at {when.isoformat()!r} has no time zone", hint, "query.at")
        try:
            return site_update_state(store, name, when)
        except LookupError:
            raise _not_found(f"site {name!r}", "GET /v1/sites lists the sites") from None
