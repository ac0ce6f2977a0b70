"""The server side of a TLS handshake, seen: every TLS listener of the project accepts with
:class:`TlsAccept` (RFC 8446 §4; §4.3.2 CertificateRequest when the context asks for a client
certificate; RFC 5630 §3, RFC 5922 §7 for SIP).

``loop.create_server(ssl=...)`` runs a server's handshake out of sight: when it fails, asyncio
closes the connection and at most writes a debug line. The listeners (the SIP
:class:`~hybridvoice.net.stream.StreamTransport` and the HTTPS server of :mod:`.http_tls`)
therefore listen on plain TCP and put a :class:`TlsAccept` on each accepted connection:
asyncio's own TLS protocol, what ``ssl=`` would have put there, waiting on its handshake. A
client refused (no certificate where one is required, an untrusted chain, TLS below 1.2, no
handshake within the limit) is reported to the listener, which classifies it with the one
classifier (:func:`~hybridvoice.net.identity.refusal_reason`), logs and counts it. A
connection that goes away before or during the handshake without a TLS error (a port probe,
a load balancer's TCP check) is not a refusal. After the handshake the listener's own protocol
(the SIP stream connection, uvicorn's HTTP/1.1) is the application protocol, as with ``ssl=``.
Works on asyncio's loop and on uvloop (asyncio's TLS protocol over uvloop's TCP transport):
the TLS protocol is the connection's protocol from its first byte, so nothing read early can
miss it.

``asyncio.sslproto.SSLProtocol`` is asyncio's implementation class (not in ``asyncio.__all__``
but the one ``create_server(ssl=...)`` and ``loop.start_tls`` use, its constructor unchanged
from Python 3.7 to 3.13); subclassing it is the only way to hear of a server handshake's
failure without running the handshake in a task of our own (see ``docs/pki.md``).
"""

from __future__ import annotations

import asyncio
import ssl
from asyncio import sslproto
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from .identity import refusal_reason

if TYPE_CHECKING:
    from .stream import StreamTransport

__all__ = ["Refused", "TlsAccept", "is_refusal", "sip_accept"]

Refused = Callable[[BaseException, str, int], None]
"""Told of a refused handshake: ``(error, peer host, peer port)``."""


def is_refusal(exc: BaseException) -> bool:
    """Whether a failed handshake is a refusal (a TLS error or a timeout anywhere behind it),
    not a peer that went away (a reset or an end of file before any TLS error)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLError | TimeoutError) or (
            isinstance(cause, ConnectionAbortedError) and "taking longer" in str(cause)
        ):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


class TlsAccept(sslproto.SSLProtocol):
    """The TLS layer of one accepted connection, reporting a refused handshake to
    ``refused`` and its end (either way) to ``done`` (see the module docstring)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        app: asyncio.BaseProtocol,
        context: ssl.SSLContext,
        *,
        timeout: float,
        refused: Refused,
        done: Callable[[TlsAccept], object] | None = None,
    ) -> None:
        self._refused, self._done = refused, done
        self._peer = ("", 0)
        # asyncio's or uvloop's TCP transport (uvloop's is no subclass of asyncio.Transport)
        self._raw: asyncio.Transport | None = None
        waiter = loop.create_future()
        waiter.add_done_callback(self._handshake_done)
        # seconds; typeshed says int, asyncio takes any number
        super().__init__(
            loop, app, context, waiter, server_side=True, ssl_handshake_timeout=cast(int, timeout)
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self._peer = (str(peer[0]), int(peer[1]))
        self._raw = cast(asyncio.Transport, transport)
        super().connection_made(transport)

    def abort(self) -> None:
        """Drop the connection while its handshake is under way (the listener stops)."""
        if self._raw is not None:
            self._raw.abort()

    def _handshake_done(self, waiter: asyncio.Future[None]) -> None:
        self._raw = None
        if self._done is not None:
            self._done(self)
        exc = None if waiter.cancelled() else waiter.exception()
        if exc is not None and is_refusal(exc):
            host, port = self._peer
            self._refused(exc, host, port)


def sip_accept(
    owner: StreamTransport, app: asyncio.BaseProtocol, context: ssl.SSLContext
) -> TlsAccept:
    """The TLS layer of a connection a SIP stream listener accepted: the handshake within the
    listener's head timeout, a refusal counted on the listener (``tls_refused``)."""

    def refused(exc: BaseException, host: str, port: int) -> None:
        owner.tls_refused(host, refusal_reason(exc), f"{host}:{port}: {exc}")

    return TlsAccept(owner.loop, app, context, timeout=owner.limits.head_timeout, refused=refused)
