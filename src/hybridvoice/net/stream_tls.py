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
import logging
import ssl
from asyncio import sslproto
from typing import TYPE_CHECKING, Final, cast

from .identity import RefusalReason, refusal_reason
from .transport import TransportCounters

if TYPE_CHECKING:
    from .stream import StreamTransport

__all__ = ["MAX_REFUSED_PEERS", "TlsAccept", "count_refusal"]

log = logging.getLogger("hybridvoice.net.stream")

#: distinct ``peer`` labels of the TLS refusal counter per transport; more count as "other"
MAX_REFUSED_PEERS: Final = 256


def count_refusal(
    counters: TransportCounters, peer: str, reason: RefusalReason, detail: str
) -> None:
    """Count a refused TLS peer under (``peer``, ``reason``) and log why."""
    refused = counters.tls_refused
    key = (peer, reason)
    if key not in refused and len({p for p, _ in refused}) >= MAX_REFUSED_PEERS:
        key = ("other", reason)
    refused[key] = refused.get(key, 0) + 1
    log.warning("TLS peer %s refused (%s): %s", peer, reason, detail)


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
