"""The online service's REST API: tenant administration, the appliance registry, the change feed.

JSON over HTTP/1.1 (RFC 9110) for the CLI, the dashboard and every appliance, on a
:class:`TenantStore`. It replaces the original's cloud-side cmdlets (``Set-CsUserPstnSettings``,
``New-CsHybridPSTNSite``, ``Set-CsTenantHybridConfiguration``, ``Set-CsNetworkConfiguration``,
``Register-CcAppliance``, ``Get-CsHybridPSTNAppliance``) and its replication, which took up to a
day, with a long-polled change feed:

- ``GET /v1/changes?since=V&wait=S``: the changes after version ``V``, oldest first; with none
  yet, the request is held until one lands or ``S`` seconds pass (at most 60). 410 Gone
  (RFC 9110 §15.5.11) when ``V`` is ahead of the tenant's version (the cloud was restored) or
  was compacted away: the replica loads ``GET /v1/snapshot`` instead.
- ``PUT`` replaces an object (fields left out take their defaults); ``PATCH`` on the two
  tenant configurations changes only the fields given (like ``Set-Cs...Configuration``).
- sites, users (a ``password`` in a PUT becomes Digest HA1s, RFC 7616 §3.4.2, in the tenant's
  realm, its first domain; HA1s are never returned), domains, hybrid and network (media bypass)
  configuration, appliances (register, heartbeat, unregister), dial plan, health.
- ``GET /metrics``: Prometheus text exposition (``CONTENT_TYPE_LATEST``) from a registry of
  this app's own (no global one), read from live state at scrape time: users, appliances by
  status, the tenant's version, plus what the ``metrics`` callable gives (the service passes
  :func:`sip_metrics`: registrar bindings and proxy counters).

Errors are ``{"error": what, "field": which, "hint": what next}`` (docs/api.md), 400 (the request
contradicts itself), 404 (no such object), 409 (the tenant's data does not allow it), 410 (see
above) or 422 (invalid fields, with ``details``).

Appliances not heard from for ``heartbeat_timeout`` seconds are marked offline by a sweep that
runs every quarter of that timeout, started by the app's lifespan. A host that serves the app
without lifespan events (:func:`hybridvoice.net.http.serve_asgi`) runs
:func:`run_offline_sweep` itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import Annotated, Any, Final, NoReturn, TypeVar

from fastapi import Body, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.exceptions import HTTPException

from hybridvoice.cms.audit import masked
from hybridvoice.cms.guard import (
    audit_after,
    audit_change,
    audit_skip,
    caller_of,
    invalid_request,
    protect,
    short_text,
)
from hybridvoice.net.metrics import proxy_metrics
from hybridvoice.net.proxy import Proxy
from hybridvoice.online.api_mtls import ApplianceAuth, own_certificate, require_certificates
from hybridvoice.online.heartbeat_summary import HeartbeatSummary, SummaryBoard, record_summary
from hybridvoice.online.models import (
    Appliance,
    ApplianceStatus,
    DialPlanRule,
    HybridConfig,
    NetworkConfig,
    Site,
    User,
    canonical_aor,
    canonical_fqdn,
    replicated,
)
from hybridvoice.online.registrar import Registrar
from hybridvoice.online.store import StoreError, TenantStore

__all__ = [
    "MAX_WAIT",
    "ApiError",
    "MetricsSource",
    "create_online_api",
    "proxy_metrics",
    "run_offline_sweep",
    "sip_metrics",
]

_log = logging.getLogger(__name__)

MAX_WAIT: Final = 60.0
"""The longest a change-feed request is held open, in seconds."""
MAX_LIMIT: Final = 5000
_M = TypeVar("_M", bound=BaseModel)
JsonBody = Annotated[dict[str, Any], Body()]


class ApiError(Exception):
    """An answer other than success: status, what went wrong, what to do next."""

    def __init__(self, status: int, error: str, hint: str, field: str | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.hint, self.field = status, error, hint, field


def _not_found(what: str, hint: str) -> ApiError:
    return ApiError(404, f"{what} does not exist", hint)


def _conflict(exc: StoreError, hint: str) -> ApiError:
    return ApiError(409, str(exc), hint)


# --- request bodies ------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DomainIn(_Body):
    name: str


class HeartbeatIn(_Body):
    status: ApplianceStatus = "online"
    version: str | None = None
    summary: HeartbeatSummary | None = None  # for the dashboard (heartbeat_summary.py)


class BypassIn(_Body):
    always_bypass: bool | None = None


class ApplianceIn(_Body):
    """What an appliance registers with; status and times are the service's to set."""

    name: str
    site: str
    mediation_fqdn: str
    edge_fqdn: str
    edge_sip_host: str
    edge_sip_port: int = 5061
    edge_sip_transport: str = "TLS"
    mras_url: str = ""
    version: str = ""


def _build(model: type[_M], data: Mapping[str, Any]) -> _M:
    """``model`` from a request body, strictly (JSON types as they are: ``"yes"`` is no
    boolean, ``"5"`` no integer), as FastAPI validates the ``_Body`` models."""
    try:
        return model.model_validate_json(json.dumps(dict(data)), strict=True)
    except ValidationError as exc:
        raise _InvalidBodyError(exc) from exc


class _InvalidBodyError(Exception):
    def __init__(self, exc: ValidationError) -> None:
        super().__init__(str(exc))
        self.exc = exc


def _named(
    body: Mapping[str, Any], field: str, path_value: str, same: Callable[[str], str]
) -> dict[str, Any]:
    """``body`` with ``field`` set from the URL; 400 when the body names another object."""
    data = dict(body)
    given = data.get(field)
    if given is not None:
        try:
            differs = not isinstance(given, str) or same(given) != same(path_value)
        except ValueError:
            differs = True
        if differs:
            raise ApiError(
                400,
                f"the body's {field} {short_text(repr(given))} differs from the URL's "
                f"{short_text(repr(path_value))}",
                f"leave {field} out of the body or make it match the URL; to rename, "
                "create the new one and delete the old one", field,
            )  # fmt: skip
    data[field] = path_value
    return data


_changed = audit_after
APPLIANCE_WRITES: Final = (("POST", r"/v1/appliances"), ("POST", r"/v1/appliances/[^/]+/heartbeat"))
"""The writes an ``appliance`` token may do: register itself, send its heartbeats."""


def _short(exc: Exception) -> str:
    return short_text(str(exc))


def _own(request: Request, name: str, site: str | None = None) -> None:
    """An appliance acts for itself only: its certificate (:mod:`.api_mtls`), or the token
    named after it."""
    if own_certificate(request, name, site):
        return
    token = caller_of(request).token
    if token.scope == "appliance" and token.name != name:
        raise ApiError(
            403, f"token {token.id} is appliance {token.name!r}'s, not {short_text(name)!r}'s",
            "each appliance registers and reports with its own token "
            "(`hybridvoice token create --scope appliance --name <appliance>`)",
        )  # fmt: skip


def _dump_of(model: BaseModel | None) -> dict[str, Any] | None:
    return None if model is None else _dump(model)


def _rule(store: TenantStore, name: str) -> dict[str, Any] | None:
    return next((_dump(r) for r in store.dialplan() if r.name == name), None)


def _user_out(user: User) -> dict[str, Any]:
    return {**replicated(user), "has_password": user.has_password}


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


def _aor(sip_uri: str) -> str:
    try:
        return canonical_aor(sip_uri)
    except ValueError as exc:
        raise ApiError(
            422, _short(exc), "name the user by SIP URI: /v1/users/sip:alice@contoso.com", "sip_uri"
        ) from exc


# --- the offline sweep ---------------------------------------------------------------------------


async def run_offline_sweep(
    store: TenantStore, heartbeat_timeout: float, clock: Callable[[], float] = time.time
) -> NoReturn:
    """Every ``heartbeat_timeout / 4`` seconds, mark offline the appliances not heard from for
    ``heartbeat_timeout`` seconds. Runs until cancelled."""
    interval = heartbeat_timeout / 4
    while True:
        await asyncio.sleep(interval)
        try:
            gone = store.mark_offline(clock(), heartbeat_timeout)
        except StoreError:  # the store was closed under us: nothing to sweep
            _log.exception("offline sweep failed")
            continue
        if gone:
            _log.warning("appliances offline (no heartbeat for %gs): %s", heartbeat_timeout, gone)


# --- metrics -------------------------------------------------------------------------------------

MetricsSource = Callable[[], Iterable[Metric]]
"""Metric families read from live state at scrape time."""

_APPLIANCE_STATES: Final = ("online", "offline", "maintenance")


class _Collected:
    """A collector over a :data:`MetricsSource` (registered without describe: never called
    before the first scrape)."""

    __slots__ = ("_source",)

    def __init__(self, source: MetricsSource) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        return iter(list(self._source()))


def store_metrics(store: TenantStore) -> list[Metric]:
    """Users, appliances by status and the change feed's version of the tenant."""
    users = GaugeMetricFamily("hybridvoice_online_users", "Users of the tenant")
    users.add_metric([], len(store.users()))
    counts = dict.fromkeys(_APPLIANCE_STATES, 0)
    for appliance in store.appliances():
        counts[appliance.status] = counts.get(appliance.status, 0) + 1
    appliances = GaugeMetricFamily(
        "hybridvoice_online_appliances", "Registered appliances by status", labels=["status"]
    )
    for status, n in sorted(counts.items()):
        appliances.add_metric([status], n)
    version = GaugeMetricFamily(
        "hybridvoice_online_tenant_version", "The tenant change feed's latest version"
    )
    version.add_metric([], store.version)
    return [users, appliances, version]


def sip_metrics(registrar: Registrar | None, proxy: Proxy | None) -> list[Metric]:
    """The online service's SIP side: registrar bindings and the proxy's counters (what
    :class:`~hybridvoice.online.service.OnlineService` passes as ``metrics``)."""
    out: list[Metric] = []
    if registrar is not None:
        bindings = GaugeMetricFamily(
            "hybridvoice_online_bindings", "Registrar bindings held (expired until swept)"
        )
        bindings.add_metric([], registrar.bindings)
        out.append(bindings)
    if proxy is not None:
        out += proxy_metrics([("online", proxy.counters)])
    return out


# --- the app -------------------------------------------------------------------------------------


def create_online_api(
    store: TenantStore,
    *,
    heartbeat_timeout: float = 5.0,
    clock: Callable[[], float] = time.time,
    metrics: MetricsSource | None = None,
    appliance_auth: ApplianceAuth | None = None,
) -> FastAPI:
    """The online service's REST API on ``store``; ``clock`` gives epoch seconds; ``metrics``
    adds families to ``GET /metrics`` (read at each scrape); ``appliance_auth``: appliances
    authenticate with their site certificate, not a token (served over HTTPS)."""
    if heartbeat_timeout <= 0:
        raise ValueError(f"heartbeat_timeout must be > 0, got {heartbeat_timeout}")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sweep = asyncio.create_task(run_offline_sweep(store, heartbeat_timeout, clock))
        try:
            yield
        finally:
            sweep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweep

    app = FastAPI(
        title="hybridvoice online service", version="1", lifespan=lifespan,
        docs_url=None, redoc_url=None, openapi_url="/v1/openapi.json",
    )  # fmt: skip
    app.state.store = store
    app.state.summaries = SummaryBoard(clock)  # the appliances' last heartbeat summaries
    protect(app, store.access, appliance_writes=APPLIANCE_WRITES)
    registry = app.state.metrics = CollectorRegistry(auto_describe=False)
    registry.register(_Collected(lambda: store_metrics(store)))
    if metrics is not None:
        registry.register(_Collected(metrics))
    if appliance_auth is not None:
        require_certificates(app, appliance_auth, store)
        registry.register(_Collected(appliance_auth.metrics))

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.error, "field": exc.field, "hint": exc.hint}, exc.status)

    @app.exception_handler(_InvalidBodyError)
    async def model_invalid(request: Request, exc: _InvalidBodyError) -> JSONResponse:
        return invalid_request(exc.exc.errors())

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> JSONResponse:
        hint = "the error says what the tenant's data needs first; fix that and retry"
        return JSONResponse({"error": str(exc), "hint": hint}, 409)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        hint = "see GET /v1/openapi.json for the API's paths and methods"
        return JSONResponse({"error": str(exc.detail), "hint": hint}, exc.status_code, exc.headers)

    _feed_routes(app, store)
    _tenant_routes(app, store)
    _appliance_routes(app, store, clock)

    @app.get("/v1/health")
    async def health() -> dict[str, Any]:
        counts: dict[str, int] = {"online": 0, "offline": 0, "maintenance": 0}
        for appliance in store.appliances():
            counts[appliance.status] = counts.get(appliance.status, 0) + 1
        return {"status": "ok", "tenant": store.tenant, "version": store.version,
                "appliances": counts}  # fmt: skip

    @app.get("/metrics", include_in_schema=False)
    async def scrape() -> Response:  # async: read live state on the event loop's thread
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


async def _held(store: TenantStore, since: int, wait: float, request: Request) -> None:
    """Until a change after ``since`` lands, ``wait`` seconds pass, or the client goes away (so
    an appliance that restarts or gives up leaves no request behind)."""
    change = asyncio.ensure_future(store.wait_for_change(since, wait))
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({change, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        change.cancel()
        gone.cancel()
        await asyncio.gather(change, gone, return_exceptions=True)


async def _disconnected(request: Request) -> None:
    """Returns when the ASGI server reports ``http.disconnect`` (the request has no body)."""
    ended = False
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
        if ended:  # a server that repeats the end of the body instead of waiting: stop asking
            await asyncio.Event().wait()
        ended = not message.get("more_body", False)


def _feed_routes(app: FastAPI, store: TenantStore) -> None:
    @app.get("/v1/changes")
    async def changes(
        request: Request,
        since: int = Query(ge=0, description="the last version the replica applied"),
        wait: float = Query(0.0, ge=0, description="hold the request this long for a change"),
        limit: int = Query(1000, ge=1, le=MAX_LIMIT),
    ) -> Any:
        version = store.version
        compacted = int(getattr(store, "compacted_through", 0))  # a store that prunes its feed
        if since > version or since < compacted:
            where = "ahead of" if since > version else "older than the feed of"
            body = {
                "error": f"version {since} is {where} the tenant (version {version})",
                "hint": "load GET /v1/snapshot, then follow /v1/changes from its version",
                "version": version,
            }
            return JSONResponse(body, 410)
        found = store.changes_since(since, limit)
        if not found and wait > 0:
            await _held(store, since, min(wait, MAX_WAIT), request)
            found = store.changes_since(since, limit)
        last = found[-1].version if found else since
        return {
            "version": last,
            "changes": [c.to_json() for c in found],
            "more": last < store.version,
        }

    @app.get("/v1/snapshot")
    async def snapshot() -> dict[str, Any]:
        version, rows = store.snapshot()
        return {"version": version, "changes": [c.to_json() for c in rows]}


def _tenant_routes(app: FastAPI, store: TenantStore) -> None:
    # --- domains ---
    @app.get("/v1/domains")
    async def domains() -> dict[str, Any]:
        return {"domains": store.domains()}

    @app.post("/v1/domains", status_code=201)
    async def add_domain(body: DomainIn, request: Request) -> dict[str, Any]:
        try:
            name = canonical_fqdn(body.name, "SIP domain")
        except ValueError as exc:
            raise ApiError(422, _short(exc), "give a DNS name like contoso.com", "name") from exc
        before = {"name": name} if name in store.domains() else None
        store.add_domain(name)
        audit_change(request, "domain.add", name, before, {"name": name})
        return {"name": name}

    @app.delete("/v1/domains/{name}", status_code=204)
    async def remove_domain(name: str, request: Request) -> Response:
        if name.lower().rstrip(".") not in store.domains():
            raise _not_found(f"domain {name!r}", "GET /v1/domains lists the tenant's domains")
        audit_change(request, "domain.remove", name, {"name": name})
        try:
            store.remove_domain(name)
        except StoreError as exc:
            raise _conflict(exc, "DELETE /v1/users/{sip_uri} each of them first") from exc
        return Response(status_code=204)

    # --- sites ---
    @app.get("/v1/sites")
    async def sites() -> dict[str, Any]:
        return {"sites": [_dump(s) for s in store.sites()]}

    @app.post("/v1/sites", status_code=201)
    async def new_site(body: JsonBody, request: Request) -> dict[str, Any]:
        site = _build(Site, body)
        audit_change(request, "site.new", site.name, _dump_of(store.get_site(site.name)))
        try:
            return _changed(request, _dump(store.new_site(site)))
        except StoreError as exc:
            raise _conflict(exc, f"change it with PUT /v1/sites/{site.name}") from exc

    @app.get("/v1/sites/{name}")
    async def get_site(name: str) -> dict[str, Any]:
        site = store.get_site(name)
        if site is None:
            raise _not_found(f"site {name!r}", "GET /v1/sites lists them; POST /v1/sites adds one")
        return _dump(site)

    @app.put("/v1/sites/{name}")
    async def set_site(name: str, body: JsonBody, request: Request) -> dict[str, Any]:
        audit_change(request, "site.set", name, _dump_of(store.get_site(name)))
        site = _build(Site, _named(body, "name", name, str))
        return _changed(request, _dump(store.set_site(site)))

    @app.delete("/v1/sites/{name}", status_code=204)
    async def remove_site(name: str, request: Request) -> Response:
        audit_change(request, "site.remove", name, _dump_of(store.get_site(name)))
        if store.get_site(name) is None:
            raise _not_found(f"site {name!r}", "GET /v1/sites lists the sites")
        try:
            store.remove_site(name)
        except StoreError as exc:
            hint = ("DELETE /v1/appliances/{name} for its appliances and move its users "
                    "(PUT /v1/users/{sip_uri} with another hybrid_pstn_site) first")  # fmt: skip
            raise _conflict(exc, hint) from exc
        return Response(status_code=204)

    # --- users ---
    @app.get("/v1/users")
    async def users() -> dict[str, Any]:
        return {"users": [_user_out(u) for u in store.users()]}

    @app.get("/v1/users/{sip_uri}")
    async def get_user(sip_uri: str) -> dict[str, Any]:
        user = store.get_user(_aor(sip_uri))
        if user is None:
            raise _not_found(f"user {sip_uri!r}", "PUT /v1/users/{sip_uri} creates it")
        return _user_out(user)

    @app.put("/v1/users/{sip_uri}")
    async def set_user(sip_uri: str, body: JsonBody, request: Request) -> dict[str, Any]:
        aor = _aor(sip_uri)
        old = store.get_user(aor)
        audit_change(request, "user.set", aor, None if old is None else _user_out(old),
                     masked(dict(body)))  # fmt: skip
        data = _named(body, "sip_uri", aor, canonical_aor)
        password = data.pop("password", None)
        if password is not None and (not isinstance(password, str) or not password):
            raise ApiError(422, "password must be a non-empty string",
                           "send a password or leave it out", "password")  # fmt: skip
        user = _build(User, data)
        if password is not None:
            realms = store.domains()
            if not realms:
                raise ApiError(409, "the tenant has no domain, so no realm for the password",
                               "POST /v1/domains first")  # fmt: skip
            user = user.with_password(password, realms[0])
        try:
            return _changed(request, _user_out(store.set_user(user)))
        except StoreError as exc:
            hint = ("add the domain (POST /v1/domains), create the site (POST /v1/sites) or "
                    "free the line URI, as the error says")  # fmt: skip
            raise _conflict(exc, hint) from exc

    @app.delete("/v1/users/{sip_uri}", status_code=204)
    async def remove_user(sip_uri: str, request: Request) -> Response:
        user = store.get_user(_aor(sip_uri))
        audit_change(request, "user.remove", sip_uri, None if user is None else _user_out(user))
        if user is None:
            raise _not_found(f"user {sip_uri!r}", "GET /v1/users lists the users")
        store.remove_user(sip_uri)
        return Response(status_code=204)

    # --- tenant configuration ---
    @app.get("/v1/hybrid-config")
    async def hybrid_config() -> dict[str, Any]:
        return _dump(store.hybrid_config())

    @app.put("/v1/hybrid-config")
    async def set_hybrid_config(body: JsonBody, request: Request) -> dict[str, Any]:
        audit_change(request, "tenant.set", "hybrid-config", _dump(store.hybrid_config()))
        return _changed(request, _dump(store.set_hybrid_config(_build(HybridConfig, body))))

    @app.patch("/v1/hybrid-config")
    async def update_hybrid_config(body: JsonBody, request: Request) -> dict[str, Any]:
        before = _dump(store.hybrid_config())
        audit_change(request, "tenant.update", "hybrid-config", before)
        merged = _build(HybridConfig, {**before, **body})
        return _changed(request, _dump(store.set_hybrid_config(merged)))

    @app.get("/v1/network-config")
    async def network_config() -> dict[str, Any]:
        return _dump(store.network_config())

    @app.put("/v1/network-config")
    async def set_network_config(body: JsonBody, request: Request) -> dict[str, Any]:
        audit_change(request, "network.set", "network-config", _dump(store.network_config()))
        return _changed(request, _dump(store.set_network_config(_build(NetworkConfig, body))))

    @app.patch("/v1/network-config")
    async def update_network_config(body: JsonBody, request: Request) -> dict[str, Any]:
        before = _dump(store.network_config())
        audit_change(request, "network.update", "network-config", before)
        merged = _build(NetworkConfig, {**before, **body})
        return _changed(request, _dump(store.set_network_config(merged)))

    @app.post("/v1/network-config/media-bypass/{action}")
    async def media_bypass(
        action: str, request: Request, body: BypassIn | None = None
    ) -> dict[str, Any]:
        before = _dump(store.network_config())
        audit_change(request, f"bypass.{action}", "network-config", before)
        if action not in ("enable", "disable"):
            hint = "POST /v1/network-config/media-bypass/enable or .../disable"
            raise ApiError(404, f"no media bypass action {action!r}", hint)
        update: dict[str, Any] = {"media_bypass_enabled": action == "enable"}
        if body is not None and body.always_bypass is not None:
            update["always_bypass"] = body.always_bypass
        cfg = store.network_config().model_copy(update=update)
        return _changed(request, _dump(store.set_network_config(cfg)))

    # --- dial plan ---
    @app.get("/v1/dialplan")
    async def dialplan() -> dict[str, Any]:
        return {"rules": [_dump(r) for r in store.dialplan()]}

    @app.get("/v1/dialplan/{name}")
    async def get_rule(name: str) -> dict[str, Any]:
        for rule in store.dialplan():
            if rule.name == name:
                return _dump(rule)
        raise _not_found(f"dial plan rule {name!r}", "PUT /v1/dialplan/{name} creates it")

    @app.put("/v1/dialplan/{name}")
    async def set_rule(name: str, body: JsonBody, request: Request) -> dict[str, Any]:
        audit_change(request, "dialplan.set", name, _rule(store, name))
        rule = _build(DialPlanRule, _named(body, "name", name, str))
        return _changed(request, _dump(store.set_dialplan_rule(rule)))

    @app.delete("/v1/dialplan/{name}", status_code=204)
    async def remove_rule(name: str, request: Request) -> Response:
        audit_change(request, "dialplan.remove", name, _rule(store, name))
        if all(rule.name != name for rule in store.dialplan()):
            raise _not_found(f"dial plan rule {name!r}", "GET /v1/dialplan lists the rules")
        store.remove_dialplan_rule(name)
        return Response(status_code=204)


def _appliance_routes(app: FastAPI, store: TenantStore, clock: Callable[[], float]) -> None:
    @app.get("/v1/appliances")
    async def appliances(site: str | None = None) -> dict[str, Any]:
        return {"appliances": [_dump(a) for a in store.appliances(site)]}

    @app.get("/v1/appliances/{name}")
    async def get_appliance(name: str) -> dict[str, Any]:
        appliance = store.get_appliance(name)
        if appliance is None:
            raise _not_found(f"appliance {name!r}", "POST /v1/appliances registers it")
        return _dump(appliance)

    @app.post("/v1/appliances", status_code=201)
    async def register(body: ApplianceIn, response: Response, request: Request) -> dict[str, Any]:
        _own(request, body.name, body.site)
        appliance = _build(Appliance, body.model_dump())
        old = store.get_appliance(appliance.name)
        known = old is not None
        audit_change(request, "appliance.register", appliance.name, _dump_of(old))
        try:
            registered = store.register_appliance(appliance, clock())
        except StoreError as exc:
            hint = ("DELETE /v1/appliances/{name} to move it to another site, or register it "
                    "with the site's edge FQDN (GET /v1/sites/{site})")  # fmt: skip
            raise _conflict(exc, hint) from exc
        if known:
            response.status_code = 200
        return _changed(request, _dump(registered))

    @app.post("/v1/appliances/{name}/heartbeat")
    async def heartbeat(
        name: str, request: Request, body: HeartbeatIn | None = None
    ) -> dict[str, Any]:
        beat = body or HeartbeatIn()
        old = store.get_appliance(name)
        _own(request, name, old.site if old else None)
        if old is None:
            raise _not_found(f"appliance {name!r}", "register it first: POST /v1/appliances")
        try:
            new = store.heartbeat(name, beat.status, clock(), beat.version)
            record_summary(request, name, beat.summary)
            if (new.status, new.version) == (old.status, old.version):
                audit_skip(request)  # a heartbeat that reports what is known changes nothing
            else:
                audit_change(request, "appliance.status", name, _dump(old), _dump(new))
            return _dump(new)
        except StoreError as exc:  # unregistered between the check and the write
            raise _not_found(
                f"appliance {name!r}", "register it first: POST /v1/appliances"
            ) from exc

    @app.delete("/v1/appliances/{name}", status_code=204)
    async def unregister(name: str, request: Request) -> Response:
        audit_change(request, "appliance.remove", name, _dump_of(store.get_appliance(name)))
        if store.get_appliance(name) is None:
            raise _not_found(f"appliance {name!r}", "GET /v1/appliances lists them")
        store.remove_appliance(name)
        return Response(status_code=204)
