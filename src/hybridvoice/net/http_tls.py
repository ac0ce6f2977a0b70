"""HTTPS for :func:`hybridvoice.net.http.serve_asgi`: the TLS handshake seen, so that a refused
one is counted, and the verified peer certificate handed to the app.

uvicorn (0.55) tells the app nothing about the peer's certificate (its scope has no TLS
extension) and, given an ``ssl`` context, lets the event loop do the handshake: a client
certificate that does not verify (another CA, expired) ends the connection inside asyncio's
SSL protocol, and nobody above hears of it. Python's ``ssl`` has no per-connection verify
callback either. So the server listens in the clear and each connection's protocol is the
project's one server-side TLS layer, :class:`~hybridvoice.net.stream_tls.TlsAccept` (the SIP
listeners use it too), over uvicorn's HTTP/1.1 protocol (RFC 8446 §4; §4.3.2
CertificateRequest when the context asks for a client certificate). A failure is classified
by the project's one classifier (:func:`hybridvoice.net.identity.refusal_reason`, the labels
of :data:`~hybridvoice.net.identity.RefusalReason`: ``untrusted-chain``, ``expired``,
``no-certificate``...), logged and reported to ``on_refused``; a success hands the TLS
transport to uvicorn's protocol, whose app then sees the ASGI TLS extension
(``scope["extensions"]["tls"]``, ASGI spec 2.3 "TLS"): ``client_cert_chain`` holds the peer's
certificate in PEM when it sent one (the context verified it against its trusted roots;
``ssl`` of Python 3.11 gives the leaf only), ``tls_version`` the protocol version as an
integer (0x0304 for TLS 1.3). A plain-HTTP server never sets the extension, and no header can,
so an app may trust it.

A connection that closes before or during the handshake without a TLS error (a port probe) is
not a refusal: nothing is counted.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, cast

from uvicorn.protocols.http.h11_impl import H11Protocol

from .identity import RefusalReason, refusal_detail, refusal_reason
from .stream_tls import TlsAccept

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
    #: connections whose handshake is under way
    pending: set[TlsAccept] = field(default_factory=set)

    def refused(self, exc: BaseException, host: str, port: int) -> None:
        peer = f"{host}:{port}"
        reason, detail = refusal_reason(exc), refusal_detail(exc, self.timeout)
        _log.warning("TLS handshake from %s refused (%s): %s", peer, reason, detail)
        if self.on_refused is not None:
            try:
                self.on_refused(reason, peer, detail)
            except Exception:  # the host's callback: report it, keep serving
                _log.exception("on_refused callback failed")

    async def close(self) -> None:
        """Abandon the handshakes still under way (the server stopped)."""
        for accept in list(self.pending):
            accept.abort()
        self.pending.clear()
        await asyncio.sleep(0)  # their connection_lost runs


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


class _H11WithTls(H11Protocol):
    """uvicorn's HTTP/1.1 protocol under :class:`TlsAccept`: every request's scope carries
    the TLS extension of the connection's finished handshake."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.app = _WithTls(self.app, tls_extension(transport))
        super().connection_made(cast("asyncio.Transport", transport))


def tls_protocol(tls: ServerTls) -> Callable[..., asyncio.BaseProtocol]:
    """What uvicorn's ``Config(http=...)`` builds each connection's protocol with."""

    def make(
        config: Any, server_state: Any, app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> asyncio.BaseProtocol:  # fmt: skip
        loop = _loop or asyncio.get_running_loop()
        http = _H11WithTls(config, server_state, app_state, loop)
        accept = TlsAccept(loop, http, tls.context, timeout=tls.timeout, refused=tls.refused,
                           done=tls.pending.discard)  # fmt: skip
        tls.pending.add(accept)
        return accept

    return make
