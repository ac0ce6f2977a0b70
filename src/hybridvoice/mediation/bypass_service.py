"""The media bypass web service every mediation role hosts (``docs/reference.md``, "Media bypass").

Clients learn that they are *internal* by reaching ``GET /hybridconfig/hybridconfigservice.svc``
on the bypass service name, an internal-only DNS name that geo-DNS answers with the client's own
site's mediation servers. The service answers the hybrid configuration (bypass enabled,
AlwaysBypass, site name, the bypass service name, the settings version) as JSON, or as XML when
the client prefers ``application/xml``/``text/xml`` (RFC 9110 §12.5.1 ``Accept`` with q-values).

It answers only clients inside the site's internal subnets; others get HTTP 403 with the reason
(RFC 9110 §15.5.4), and so does everyone while bypass is disabled in the tenant's network
configuration: the original's way to switch bypass off for clients. The external check comes
first so an outside client learns nothing about the tenant's settings.

The configuration comes from a provider callable, read on every request: a settings change is
visible on the next request, with no restart (``Cache-Control: no-store`` keeps clients from
holding an old answer). A provider that cannot answer raises :class:`ConfigUnavailableError`
(HTTP 503).

:func:`serve_bypass` runs the app with :func:`hybridvoice.net.http.serve_asgi` (uvicorn's
``Server`` inside the running event loop: no new process, no signal handlers of its own, the host
process owns those), bound to the address it is given, which must be the internal interface;
wildcard addresses are refused unless asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from hybridvoice.mediation.bypass import BypassPolicy
from hybridvoice.net.http import AsgiServer, HttpServeError, serve_asgi

__all__ = [
    "BYPASS_PATH",
    "BypassServer",
    "BypassServiceError",
    "ConfigUnavailableError",
    "HybridConfig",
    "create_bypass_app",
    "serve_bypass",
    "wants_xml",
]

BYPASS_PATH = "/hybridconfig/hybridconfigservice.svc"
_XML_TYPES = ("application/xml", "text/xml")
_NO_STORE = {"Cache-Control": "no-store"}


class BypassServiceError(HttpServeError):
    """The bypass web service could not start (bad bind address, address in use)."""


class ConfigUnavailableError(RuntimeError):
    """Raised by a config provider that cannot give the configuration right now."""


@dataclass(frozen=True, slots=True)
class HybridConfig:
    """What the service answers: the tenant's bypass policy and this site's identity."""

    policy: BypassPolicy
    site_name: str
    service_name: str
    version: int


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def wants_xml(accept: str | None) -> bool:
    """Whether ``Accept`` names an XML type with a higher q than ``application/json``.

    Wildcards count for JSON, the default representation.
    """
    xml_q = json_q = 0.0
    for item in (accept or "").split(","):
        media_type, *params = item.split(";")
        media_type = media_type.strip().lower()
        if media_type in _XML_TYPES:
            xml_q = max(xml_q, _quality(params))
        elif media_type in ("application/json", "application/*", "*/*"):
            json_q = max(json_q, _quality(params))
    return xml_q > 0 and xml_q > json_q


def _to_xml(root: str, fields: dict[str, Any]) -> bytes:
    element = ElementTree.Element(root)
    for name, value in fields.items():
        child = ElementTree.SubElement(element, name)
        child.text = str(value).lower() if isinstance(value, bool) else str(value)
    return bytes(ElementTree.tostring(element, encoding="utf-8", xml_declaration=True))


def _answer(request: Request, status: int, root: str, fields: dict[str, Any]) -> Response:
    if wants_xml(request.headers.get("accept")):
        body = _to_xml(root, {_camel(k): v for k, v in fields.items()})
        return Response(body, status, _NO_STORE, media_type="application/xml")
    return JSONResponse(fields, status, _NO_STORE)


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _reject(request: Request, status: int, reason: str) -> Response:
    return _answer(request, status, "Error", {"error": "forbidden", "reason": reason})


def create_bypass_app(config_provider: Callable[[], HybridConfig]) -> FastAPI:
    """The bypass web service as an ASGI app.

    ``config_provider`` is called on every request, on the event loop: it must return at once
    (hand it the in-memory settings snapshot, not a database read).
    """
    app = FastAPI(
        title="hybridvoice media bypass service", docs_url=None, redoc_url=None, openapi_url=None
    )

    @app.get(BYPASS_PATH)
    async def hybrid_config(request: Request) -> Response:  # on the loop: the provider is sync
        try:
            config = config_provider()
        except ConfigUnavailableError as exc:
            reason = f"configuration unavailable: {exc}"
            return _answer(request, 503, "Error", {"error": "unavailable", "reason": reason})
        client = request.client.host if request.client is not None else None
        subnet = None if client is None else config.policy.subnet_of(client)
        if client is None or subnet is None:
            return _reject(request, 403, f"client {client} is not in the site's internal subnets")
        if not config.policy.enabled:
            return _reject(request, 403, "bypass disabled in tenant network configuration")
        fields = {
            "bypass_enabled": config.policy.enabled,
            "always_bypass": config.policy.always_bypass,
            "site_name": config.site_name,
            "bypass_service_name": config.service_name,
            "settings_version": config.version,
            "client_address": client,
            "internal_subnet": str(subnet),
        }
        return _answer(request, 200, "HybridConfiguration", fields)

    return app


class BypassServer:
    """A running bypass web service: where it listens, and :meth:`stop`."""

    __slots__ = ("_server",)

    def __init__(self, server: AsgiServer) -> None:
        self._server = server

    @property
    def host(self) -> str:
        """The bound address."""
        return self._server.host

    @property
    def port(self) -> int:
        """The bound port (the one picked when asked for port 0)."""
        return self._server.port

    @property
    def url(self) -> str:
        """The service URL on the bound address."""
        return f"{self._server.url}{BYPASS_PATH}"

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish, close the socket."""
        await self._server.stop()


async def serve_bypass(
    app: FastAPI, host: str, port: int, *, allow_wildcard: bool = False
) -> BypassServer:
    """Serve ``app`` on ``host:port`` (``port=0``: any free port) in this event loop.

    ``host`` must be an IP address literal, the mediation role's internal interface;
    ``0.0.0.0``/``::`` are refused unless ``allow_wildcard`` is set (the service is
    internal-only).
    """
    try:
        server = await serve_asgi(app, host, port, allow_wildcard=allow_wildcard)
    except HttpServeError as exc:
        raise BypassServiceError(f"bypass web service: {exc}") from exc
    return BypassServer(server)
