"""HTTPS for :func:`hybridvoice.net.http.serve_asgi`: the TLS handshake done here, so that a
refused one is seen, and the verified peer certificate handed to the app.

uvicorn (0.55) tells the app nothing about the peer's certificate (its scope has no TLS
extension) and, given an ``ssl`` context, lets the event loop do the handshake: a client certificate
that does not verify (another CA, expired) ends the connection inside asyncio's SSL protocol,
and nobody above hears of it. Python's ``ssl`` has no per-connection verify callback either.
So the server listens in the clear and each connection starts with
:meth:`asyncio.loop.start_tls` here (RFC 8446 §4; §4.3.2 CertificateRequest when the context
asks for a client certificate): a failure is classified by the project's one classifier
(:func:`hybridvoice.net.identity.refusal_reason`, the labels of
:data:`~hybridvoice.net.identity.RefusalReason`: ``untrusted-chain``, ``expired``,
``no-certificate``...), logged and reported to ``on_refused``; a success
hands the TLS transport to uvicorn's HTTP/1.1 protocol, whose app then sees the ASGI TLS
extension (``scope["extensions"]["tls"]``, ASGI spec 2.3 "TLS"): ``client_cert_chain`` holds
the peer's certificate in PEM when it sent one (the context verified it against its trusted
roots; ``ssl`` of Python 3.11 gives the leaf only), ``tls_version`` the protocol version as an
integer (0x0304 for TLS 1.3). A plain-HTTP server never sets the extension, and no header can,
so an app may trust it.

A connection that closes before or during the handshake without a TLS error (a port probe) is
not a refusal: nothing is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, cast

from uvicorn.protocols.http.h11_impl import H11Protocol

from .identity import RefusalReason, refusal_detail, refusal_reason

__all__ = ["HANDSHAKE_TIMEOUT", "ServerTls", "TlsRefused", "tls_protocol"]

_log = logging.getLogger(__name__)

TlsRefused = Callable[[RefusalReason, str, str], None]
"""Told of each refused handshake: ``(reason, peer "ip:port", detail)``."""

#: the longest a client may take to finish its handshake, in seconds
HANDSHAKE_TIMEOUT: Final = 20.0
_VERSIONS: Final = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


@dataclass(slots=True)
class ServerTls:
    """The TLS side of one server: its context, who hears of refusals, handshakes under way."""

    context: ssl.SSLContext
    on_refused: TlsRefused | None = None
    timeout: float = HANDSHAKE_TIMEOUT
    pending: set[asyncio.Task[None]] = field(default_factory=set)

    def refused(self, exc: BaseException, peer: str) -> None:
        reason, detail = refusal_reason(exc), refusal_detail(exc, self.timeout)
        _log.warning("TLS handshake from %s refused (%s): %s", peer, reason, detail)
        if self.on_refused is not None:
            try:
                self.on_refused(reason, peer, detail)
            except Exception:  # the host's callback: report it, keep serving
                _log.exception("on_refused callback failed")

    async def close(self) -> None:
        """Abandon the handshakes still under way (the server stopped)."""
        for task in list(self.pending):
            task.cancel()
        await asyncio.gather(*self.pending, return_exceptions=True)


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any]:
    """The ASGI TLS extension for a connection whose handshake is done."""
    ssl_object = transport.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    version = ssl_object.version() if ssl_object is not None else None
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": _VERSIONS.get(version or ""),
        "cipher_suite": None,
    }


class _WithTls:
    """The app of one connection: every request's scope carries the TLS extension."""

    __slots__ = ("app", "info")

    def __init__(self, app: Any, info: dict[str, Any]) -> None:
        self.app, self.info = app, info

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope["extensions"] = {**scope.get("extensions", {}), "tls": self.info}
        await self.app(scope, receive, send)


class _TlsFirst(asyncio.Protocol):
    """One connection: the handshake, then uvicorn's HTTP/1.1 protocol on the TLS transport."""

    def __init__(
        self,
        tls: ServerTls,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._tls, self._config, self._server_state, self._app_state = (
            tls, config, server_state, app_state,
        )  # fmt: skip
        self._loop = _loop or asyncio.get_running_loop()
        self._raw: list[bytes] | None = []  # read before the TLS layer took over
        self._early: list[bytes] = []  # decrypted before the HTTP protocol took over
        self._eof = False
        self._inner: H11Protocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's or uvloop's transport (uvloop's is no subclass of asyncio.Transport)
        stream = cast("asyncio.Transport", transport)
        stream.pause_reading()  # asyncio honours this; uvloop starts reading all the same
        task = self._loop.create_task(self._handshake(stream))
        self._tls.pending.add(task)
        task.add_done_callback(self._tls.pending.discard)

    async def _handshake(self, transport: asyncio.Transport) -> None:
        peer = _peer(transport)
        try:
            secure = await self._start_tls(transport)
        except (ssl.SSLError, TimeoutError) as exc:
            self._tls.refused(exc, peer)
            transport.abort()
            return
        except (OSError, EOFError) as exc:
            if isinstance(exc, ConnectionAbortedError) and "longer than" in str(exc):
                self._tls.refused(TimeoutError(), peer)  # asyncio ends a slow handshake so
            else:  # gone before the end of the handshake: no refusal
                _log.debug("TLS handshake from %s ended: %r", peer, exc)
            transport.abort()
            return
        except asyncio.CancelledError:
            transport.abort()
            raise
        if secure is None:  # the loop closed the transport meanwhile
            return
        inner = H11Protocol(self._config, self._server_state, self._app_state, self._loop)
        inner.app = _WithTls(inner.app, tls_extension(secure))
        self._inner = inner
        inner.connection_made(secure)
        secure.set_protocol(inner)
        for chunk in self._early:
            inner.data_received(chunk)
        self._early.clear()
        if self._eof:
            inner.eof_received()

    async def _start_tls(self, transport: asyncio.Transport) -> asyncio.Transport | None:
        """``loop.start_tls``, with the bytes read before it in the TLS layer's input.

        uvloop starts reading a new connection after ``connection_made`` whatever it said,
        so a client's first bytes (its ClientHello) may have come here, in the clear, before
        the TLS layer took the transport. start_tls swaps the protocols before its first
        wait: its first step is run here, and what was read is handed to the TLS protocol
        right after that protocol's ``connection_made`` (scheduled by that step, before any
        further read).
        """
        start = self._loop.start_tls(
            transport, self, self._tls.context, server_side=True,
            ssl_handshake_timeout=self._tls.timeout,
        )  # fmt: skip
        try:
            waiting = start.send(None)
        except StopIteration as done:  # finished without waiting: nothing was read
            self._raw = None
            return cast("asyncio.Transport | None", done.value)
        raw, self._raw = b"".join(self._raw or ()), None  # from now on: decrypted data
        if raw:
            self._loop.call_soon(_feed, transport.get_protocol(), raw)
        while True:  # the rest of start_tls, each future it waits for awaited here
            try:
                if waiting is None:
                    await asyncio.sleep(0)
                else:  # as a task does with what a coroutine yields: take it, then wait
                    waiting._asyncio_future_blocking = False
                    await waiting
            except BaseException as exc:  # handed to start_tls, which cleans up and re-raises
                try:
                    waiting = start.throw(exc)
                except StopIteration as done:
                    return cast("asyncio.Transport | None", done.value)
                continue
            try:
                waiting = start.send(None)
            except StopIteration as done:
                return cast("asyncio.Transport | None", done.value)

    # the raw transport reports here before start_tls, the TLS transport after, until the
    # HTTP protocol takes over
    def data_received(self, data: bytes) -> None:
        if self._raw is not None:
            self._raw.append(data)
        elif self._inner is not None:
            self._inner.data_received(data)
        else:
            self._early.append(data)

    def eof_received(self) -> bool | None:
        if self._inner is not None:
            self._inner.eof_received()
        elif self._raw is None:
            self._eof = True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is not None:
            self._inner.connection_lost(exc)


def _feed(protocol: Any, data: bytes) -> None:
    """``data`` into a TLS protocol (asyncio's and uvloop's are buffered protocols)."""
    view = memoryview(data)
    while view:
        buffer = protocol.get_buffer(len(view))
        n = min(len(buffer), len(view))
        buffer[:n] = view[:n]
        protocol.buffer_updated(n)
        view = view[n:]


def _peer(transport: asyncio.BaseTransport) -> str:
    with contextlib.suppress(Exception):
        host, port = transport.get_extra_info("peername")[:2]
        return f"{host}:{port}"
    return "-"


def tls_protocol(tls: ServerTls) -> Callable[..., asyncio.Protocol]:
    """What uvicorn's ``Config(http=...)`` builds each connection's protocol with."""

    def make(
        config: Any, server_state: Any, app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> asyncio.Protocol:  # fmt: skip
        return _TlsFirst(tls, config, server_state, app_state, _loop)

    return make
