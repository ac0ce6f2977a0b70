"""The TLS side of a stream listener: handshakes seen, refusals counted (RFC 5630 §3, RFC 5922
§7).

``loop.create_server(ssl=...)`` runs a server's handshake out of sight: when it fails, asyncio
closes the connection and at most writes a debug line. A TLS
:class:`~hybridvoice.net.stream.StreamTransport` therefore listens on plain TCP and puts a
:class:`TlsAccept` (asyncio's own TLS protocol, what ``ssl=`` would have put there) on each
accepted connection, waiting on its handshake: a client refused (no certificate where one is
required, an untrusted chain, TLS below 1.2) is counted by reason
(:func:`~hybridvoice.net.identity.refusal_reason`) and logged with its address. After the
handshake the stream connection is the application protocol, as with ``ssl=``. Works on
asyncio's loop and on uvloop (asyncio's TLS protocol over uvloop's TCP transport).
"""

from __future__ import annotations

import asyncio
import ssl
from asyncio import sslproto
from typing import TYPE_CHECKING, cast

from .identity import refusal_reason

if TYPE_CHECKING:
    from .stream import StreamTransport

__all__ = ["TlsAccept"]


class TlsAccept(sslproto.SSLProtocol):
    """The TLS layer of one accepted connection, reporting a failed handshake to its
    listener (see the module docstring)."""

    def __init__(
        self, owner: StreamTransport, app: asyncio.BaseProtocol, context: ssl.SSLContext
    ) -> None:
        self._owner = owner
        self._peer = ("", 0)
        waiter = owner.loop.create_future()
        waiter.add_done_callback(self._handshake_done)
        super().__init__(
            owner.loop,
            app,
            context,
            waiter,
            server_side=True,
            # seconds; typeshed says int, asyncio takes any number
            ssl_handshake_timeout=cast(int, owner.limits.head_timeout),
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self._peer = (str(peer[0]), int(peer[1]))
        super().connection_made(transport)

    def _handshake_done(self, waiter: asyncio.Future[None]) -> None:
        exc = None if waiter.cancelled() else waiter.exception()
        if exc is not None:
            host, port = self._peer
            self._owner.tls_refused(host, refusal_reason(exc), f"{host}:{port}: {exc}")
