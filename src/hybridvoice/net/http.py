"""An HTTP/1.1 server (RFC 9112) for an ASGI app, inside the running event loop.

:func:`serve_asgi` runs uvicorn's ``Server`` as a task of the current loop: no new process, no
signal handlers of its own (the host process owns SIGINT/SIGTERM), no logging configuration of
its own (``log_config=None``: the host's logging applies), no ``Server`` header, the app's
lifespan events only when asked. It binds the IP address literal it is given (``port=0``: any
free port) and refuses the wildcard addresses ``0.0.0.0``/``::`` unless asked, so a service
meant for one interface is not exposed on all of them by a configuration slip. A bind failure
(address in use, not local), which uvicorn reports with ``SystemExit``, becomes
:class:`HttpServeError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import uvicorn

__all__ = ["AsgiApp", "AsgiServer", "HttpServeError", "serve_asgi"]

AsgiApp = Callable[..., Awaitable[None]]
"""An ASGI 3 application: ``await app(scope, receive, send)``."""


class HttpServeError(RuntimeError):
    """The HTTP server could not start (bad bind address, wildcard refused, address in use)."""


class _EmbeddedServer(uvicorn.Server):
    """uvicorn's server without its signal handlers, telling us when it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the host process owns SIGINT/SIGTERM

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        self.listening.set()


class AsgiServer:
    """A running HTTP server: where it listens, and :meth:`stop`."""

    __slots__ = ("_server", "_task", "host", "port")

    def __init__(self, server: _EmbeddedServer, task: asyncio.Task[None], host: str, port: int):
        self._server = server
        self._task = task
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        """``http://host:port`` on the bound address (IPv6 in brackets), no trailing slash."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish, close the socket."""
        self._server.should_exit = True
        await self._task


async def _run(server: _EmbeddedServer, where: str) -> None:
    try:
        await server.serve()
    except SystemExit as exc:  # uvicorn exits when it cannot bind; keep that out of the loop
        raise HttpServeError(f"HTTP server could not listen on {where}") from exc


async def serve_asgi(
    app: AsgiApp, host: str, port: int, *, allow_wildcard: bool = False, lifespan: bool = False
) -> AsgiServer:
    """Serve ``app`` on ``host:port`` (``port=0``: any free port) in this event loop.

    ``host`` must be an IP address literal; ``0.0.0.0``/``::`` are refused unless
    ``allow_wildcard`` is set; ``lifespan`` runs the app's startup/shutdown events (background
    tasks such as a sweep). Returns once the socket listens; raises :class:`HttpServeError`
    when it cannot.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError as exc:
        raise HttpServeError(f"bind address must be an IP address, not {host!r}") from exc
    if address.is_unspecified and not allow_wildcard:
        raise HttpServeError(f"refusing to bind to the wildcard address {host}")
    config = uvicorn.Config(
        app, host=host, port=port, lifespan="on" if lifespan else "off", log_config=None,
        access_log=False, server_header=False, timeout_graceful_shutdown=5,
    )  # fmt: skip
    server = _EmbeddedServer(config)
    task = asyncio.create_task(_run(server, f"{host}:{port}"))
    listening = asyncio.create_task(server.listening.wait())
    await asyncio.wait({task, listening}, return_when=asyncio.FIRST_COMPLETED)
    if not server.listening.is_set():
        listening.cancel()
        await task  # raises HttpServeError
        raise HttpServeError(f"HTTP server stopped during startup on {host}:{port}")
    sockets = server.servers[0].sockets
    bound_port = int(sockets[0].getsockname()[1]) if sockets else port
    return AsgiServer(server, task, host, bound_port)
