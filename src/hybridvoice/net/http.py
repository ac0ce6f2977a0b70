"""An HTTP/1.1 server (RFC 9112) for an ASGI app, inside the running event loop.

:func:`serve_asgi` runs uvicorn's ``Server`` as a task of the current loop: no new process, no
signal handlers of its own (the host process owns SIGINT/SIGTERM), no logging configuration of
its own (``log_config=None``: the host's logging applies), no ``Server`` header, the app's
lifespan events only when asked. It binds the IP address literal it is given (``port=0``: any
free port) and refuses the wildcard addresses ``0.0.0.0``/``::`` unless asked, so a service
meant for one interface is not exposed on all of them by a configuration slip. A bind failure
(address in use, not local), which uvicorn reports with ``SystemExit``, becomes
:class:`HttpServeError`.

Request bodies are limited (``max_body``, :data:`DEFAULT_MAX_BODY` unless asked): the server
shares the event loop with SIP, and reading and parsing a body of tens of megabytes stalls
every call for seconds. A ``Content-Length`` over the limit is answered 413 (RFC 9110 §15.5.14)
at once, before the app runs and before any of the body is asked for (uvicorn stops reading a
connection whose body nobody receives); a chunked body is counted as it arrives and cut off
when it passes the limit (the app sees the client go away, the client gets the 413). Either
way the connection is closed after the answer, so the rest of the body is never read.

Slow clients (``request_timeout``, off unless asked): uvicorn times out only an idle
keep-alive connection, so a client that connects and sends nothing, or half a request head,
or a ``Content-Length`` and then a trickle of the body, holds its connection (and a file
descriptor) for ever; a few thousand of them (slowloris) starve the server. With a
``request_timeout`` a sweep closes every connection that has been waiting that long for the
rest of a request (head or body) without progress to the next phase; a request the app is
answering (a long poll) is never cut.

HTTPS (``ssl_context``): the server does each handshake itself (:mod:`.http_tls`) so that a
refused client certificate is logged and reported to ``on_tls_refused`` with its reason, and
the app sees the verified peer certificate in the ASGI TLS extension.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, cast

import uvicorn

from .http_tls import HANDSHAKE_TIMEOUT, ServerTls, TlsRefused, tls_protocol

if TYPE_CHECKING:
    import ssl

_log = logging.getLogger("hybridvoice.net.http")

__all__ = ["DEFAULT_MAX_BODY", "AsgiApp", "AsgiServer", "BodyLimit", "HttpServeError",
           "TlsRefused", "serve_asgi"]  # fmt: skip

AsgiApp = Callable[..., Awaitable[None]]
"""An ASGI 3 application: ``await app(scope, receive, send)``."""
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DEFAULT_MAX_BODY: Final = 1 << 20
"""The largest request body :func:`serve_asgi` lets an app read unless told otherwise: 1 MiB."""


class BodyLimit:
    """ASGI middleware: request bodies over ``max_body`` bytes get 413 and the connection
    closes (see the module docstring)."""

    __slots__ = ("app", "max_body", "refusal")

    def __init__(self, app: AsgiApp, max_body: int, hint: str | None = None) -> None:
        if max_body < 0:
            raise ValueError(f"max_body must be >= 0, got {max_body}")
        self.app, self.max_body = app, max_body
        hint = hint or "send less, or raise [Management] MaxRequestBytes"
        text = json.dumps({"error": f"request body over {max_body} bytes", "hint": hint})
        body = text.encode()
        self.refusal: Final = (
            {"type": "http.response.start", "status": 413, "headers": [
                (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)),
                (b"connection", b"close"),
            ]},
            {"type": "http.response.body", "body": body},
        )  # fmt: skip

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and int(value) > self.max_body:  # h11 checked digits
                await self._refuse(send)
                return
        await _Metered(self, receive, send).run(scope)

    async def _refuse(self, send: Send) -> None:
        for message in self.refusal:
            await send(message)


class _Metered:
    """One request under :class:`BodyLimit`: counts the body, swaps the answer for 413."""

    __slots__ = ("_limit", "_over", "_receive", "_send", "_started", "_total")

    def __init__(self, limit: BodyLimit, receive: Receive, send: Send) -> None:
        self._limit, self._receive, self._send = limit, receive, send
        self._total, self._over, self._started = 0, False, False

    async def run(self, scope: Message) -> None:
        await self._limit.app(scope, self.receive, self.send)
        if self._over and not self._started:  # the app answered nothing: we still must
            await self._limit._refuse(self._send)

    async def receive(self) -> Message:
        if self._over:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self._total += len(message.get("body", b""))
            if self._total > self._limit.max_body:
                self._over = True  # tell the app the client left; the client gets 413
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        if not self._over:
            self._started = self._started or message["type"] == "http.response.start"
            await self._send(message)
        elif not self._started:  # whatever the app says about a cut body: 413 instead
            self._started = True
            await self._limit._refuse(self._send)


class _Sweep:
    """Closes connections waiting longer than ``timeout`` for the rest of a request: the
    whole head, or the body the app is reading (see the module docstring). It looks every
    ``timeout / 2`` seconds; a connection is closed at the first look at least ``timeout``
    after it was first seen waiting in the same phase of the same request."""

    __slots__ = ("closed", "server", "timeout")

    def __init__(self, server: uvicorn.Server, timeout: float) -> None:
        self.server, self.timeout = server, timeout
        self.closed = 0  # connections closed for being too slow

    @staticmethod
    def _waiting(connection: Any) -> tuple[str, object] | None:
        cycle = getattr(connection, "cycle", None)
        if cycle is None or cycle.response_complete:
            return ("head", cycle)  # nothing yet, or the next request's head
        if cycle.more_body and not cycle.response_started:
            return ("body", cycle)
        return None  # the app is answering

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        seen: dict[Any, tuple[tuple[str, object], float]] = {}
        while True:
            await asyncio.sleep(self.timeout / 2)
            now = loop.time()
            live = self.server.server_state.connections
            for connection in list(live):
                state = self._waiting(connection)
                mark = seen.get(connection)
                if state is None:
                    seen.pop(connection, None)
                elif mark is None or mark[0] != state:
                    seen[connection] = (state, now)
                elif now - mark[1] >= self.timeout:
                    transport = getattr(connection, "transport", None)
                    if transport is not None and not transport.is_closing():
                        self.closed += 1
                        _log.info("HTTP client %s too slow (%s): closed",
                                  getattr(connection, "client", None), state[0])  # fmt: skip
                        transport.close()
                    seen.pop(connection, None)
            for connection in [c for c in seen if c not in live]:
                del seen[connection]


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

    __slots__ = ("_server", "_sweep", "_task", "_tls", "host", "port", "sweep")

    def __init__(
        self, server: _EmbeddedServer, task: asyncio.Task[None], host: str, port: int,
        tls: ServerTls | None = None, *, sweep: _Sweep | None = None,
    ) -> None:  # fmt: skip
        self._server = server
        self._task = task
        self._tls = tls
        self.host = host
        self.port = port
        #: closes slow clients (``request_timeout``); its ``closed`` counts them
        self.sweep = sweep
        self._sweep = None if sweep is None else asyncio.create_task(sweep.run())

    @property
    def url(self) -> str:
        """``http(s)://host:port`` on the bound address (IPv6 in brackets), no trailing
        slash."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self._tls else 'http'}://{host}:{self.port}"

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish, close the socket."""
        self._server.should_exit = True
        if self._sweep is not None:
            self._sweep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweep
        await self._task
        if self._tls is not None:
            await self._tls.close()


async def _run(server: _EmbeddedServer, where: str) -> None:
    try:
        await server.serve()
    except SystemExit as exc:  # uvicorn exits when it cannot bind; keep that out of the loop
        raise HttpServeError(f"HTTP server could not listen on {where}") from exc


async def serve_asgi(
    app: AsgiApp,
    host: str,
    port: int,
    *,
    allow_wildcard: bool = False,
    lifespan: bool = False,
    max_body: int = DEFAULT_MAX_BODY,
    ssl_context: ssl.SSLContext | None = None,
    on_tls_refused: TlsRefused | None = None,
    tls_handshake_timeout: float = HANDSHAKE_TIMEOUT,
    request_timeout: float | None = None,
    body_limit_hint: str | None = None,
) -> AsgiServer:
    """Serve ``app`` on ``host:port`` (``port=0``: any free port) in this event loop.

    ``host`` must be an IP address literal; ``0.0.0.0``/``::`` are refused unless
    ``allow_wildcard`` is set; ``lifespan`` runs the app's startup/shutdown events (background
    tasks such as a sweep); request bodies over ``max_body`` bytes get 413 (:class:`BodyLimit`).
    With ``ssl_context`` it serves HTTPS (the context decides whether a client certificate
    is asked for); each refused handshake (not finished within ``tls_handshake_timeout``
    seconds, too) is logged and reported to ``on_tls_refused``. ``request_timeout``: close a
    connection that waits that many seconds for the rest of a request (:class:`_Sweep`).
    ``body_limit_hint``: what the 413 tells the client to do.
    Returns once the socket listens; raises :class:`HttpServeError` when it cannot.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError as exc:
        raise HttpServeError(f"bind address must be an IP address, not {host!r}") from exc
    if address.is_unspecified and not allow_wildcard:
        raise HttpServeError(f"refusing to bind to the wildcard address {host}")
    tls = None
    if ssl_context is not None:
        tls = ServerTls(ssl_context, on_tls_refused, tls_handshake_timeout)
    config = uvicorn.Config(
        BodyLimit(app, max_body, body_limit_hint), host=host, port=port,
        lifespan="on" if lifespan else "off",
        log_config=None, access_log=False, server_header=False, timeout_graceful_shutdown=5,
    )  # fmt: skip
    if tls is not None:  # uvicorn builds each connection's protocol with this
        config.http = cast("type[asyncio.Protocol]", tls_protocol(tls))
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
    sweep = None if request_timeout is None else _Sweep(server, request_timeout)
    return AsgiServer(server, task, host, bound_port, tls, sweep=sweep)
