"""Why a message could not be sent, in words for the layers above (RFC 3261 §8.1.3.1,
§17.1.1.2, §18.4: a transport failure reaches the transaction user as a timeout; RFC 5922
§7.1 and RFC 3261 §26.2.1: a TLS peer's certificate must chain to a CA we trust and name the
host we connect to; RFC 8446 §6.2 alerts).

The transaction layer is sans-IO and only learns "transport"; the endpoint names the failure
here and hands the words down with it (:meth:`TransactionLayer.transport_error`), so the
``TransactionTimeout`` the TU receives, and the session's ``Disconnected`` after it, say
"TLS certificate of 192.0.2.7:5067 not accepted for gw.example: unable to get local issuer
certificate" instead of a bare 408.
"""

from __future__ import annotations

import ssl

from .transport import Destination

__all__ = ["describe_failure"]


def describe_failure(destination: Destination, failure: Exception) -> str | None:
    """What went wrong sending to ``destination``, from the transport's ``failure`` (its
    ``__cause__`` holds the ``ssl`` or socket error when the transport wrapped it); None when
    the failure says nothing more useful than "transport"."""
    exc = failure.__cause__ or failure
    where = f"{destination.host}:{destination.port}"
    kind = destination.transport
    if kind == "TLS":
        name = destination.server_name or destination.host
        if isinstance(exc, ssl.SSLCertVerificationError):
            why = exc.verify_message or exc.reason or str(exc)
            return f"TLS certificate of {where} not accepted for {name}: {why}"
        if isinstance(exc, ssl.SSLError):
            return f"TLS handshake with {where} failed: {exc.reason or exc}"
    if isinstance(exc, TimeoutError):
        return f"{kind} connect to {where}: no {'handshake' if kind == 'TLS' else 'answer'} in time"
    if isinstance(exc, OSError):
        return f"{kind} connect to {where} failed: {exc.strerror or exc}"
    return None
