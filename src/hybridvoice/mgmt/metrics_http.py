"""``GET /metrics`` on its own HTTP listener, for processes without a management API
(``hybridvoice mediation serve``, ``hybridvoice turn serve``).

No RFC is implemented here; HTTP/1.1 (RFC 9112) comes from :func:`hybridvoice.net.http.
serve_asgi`, in the running event loop. The registry is read on the loop's thread at each
scrape (never from a thread of its own, so the counters are never read while the loop
changes them). ``/metrics`` answers the Prometheus text format (``CONTENT_TYPE_LATEST``);
any other path 404, any other method 405.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from hybridvoice.net.http import AsgiServer, HttpServeError, serve_asgi

__all__ = ["MetricsListenError", "metrics_app", "parse_metrics_address", "serve_metrics"]

Scope = MutableMapping[str, Any]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class MetricsListenError(ValueError):
    """A ``--metrics`` address that cannot be read or listened on (the message names it)."""


def parse_metrics_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (an IP address; ``[::1]:9100`` for IPv6) of ``--metrics``."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise MetricsListenError(f"--metrics: {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9100")
    return host, int(port)


def metrics_app(registry: CollectorRegistry) -> Callable[..., Awaitable[None]]:
    """An ASGI app answering ``GET /metrics`` from ``registry``."""

    async def app(scope: Scope, receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] != "/metrics":
            status, body, kind = 404, b"not found: try /metrics\n", "text/plain"
        elif scope["method"] not in ("GET", "HEAD"):
            status, body, kind = 405, b"GET /metrics\n", "text/plain"
        else:
            status, body, kind = 200, generate_latest(registry), CONTENT_TYPE_LATEST
        headers = [(b"content-type", kind.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


async def serve_metrics(registry: CollectorRegistry, address: str) -> AsgiServer:
    """Serve ``registry`` on ``address`` (``HOST:PORT``) in this loop; the running server."""
    host, port = parse_metrics_address(address)
    try:
        return await serve_asgi(metrics_app(registry), host, port)
    except HttpServeError as exc:
        raise MetricsListenError(f"--metrics {address}: {exc}") from exc
