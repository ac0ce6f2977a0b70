"""Why a TLS connection to a gateway failed, in words for call records and the Reason a caller
hears (RFC 3261 §26.2.1 and RFC 5922 §7.1: the gateway's certificate must chain to a CA we
trust and name the address or FQDN we connect to; RFC 8446 §6.2 alerts).

The SIP transport reports a failed TLS connection to the INVITE's transaction as a transport
error, which the session sees as a locally generated 408 (RFC 3261 §8.1.3.1). The endpoint
keeps the failure itself (:meth:`hybridvoice.net.endpoint.Endpoint.last_failure`, with the
``ssl`` error as its cause); :func:`tls_failure` names it, so an admin reading the record or
the caller's Reason sees "certificate verify failed: unable to get local issuer certificate"
instead of a bare 408.
"""

from __future__ import annotations

import ssl

from hybridvoice.net.transport import Destination

__all__ = ["tls_failure"]


def tls_failure(destination: Destination, failure: Exception | None) -> str | None:
    """What went wrong connecting to ``destination`` over TLS, from the transport's
    ``failure`` (None: nothing failed there, the 408 was the gateway's or a timeout)."""
    if failure is None:
        return None
    exc = failure.__cause__ or failure
    where = f"{destination.host}:{destination.port}"
    name = destination.server_name or destination.host
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or exc.reason or str(exc)
        return f"TLS certificate of {where} not accepted for {name}: {why}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake with {where} failed: {exc.reason or exc}"
    if isinstance(exc, TimeoutError):
        return f"TLS connect to {where}: no handshake in time"
    if isinstance(exc, OSError):
        return f"TLS connect to {where} failed: {exc.strerror or exc}"
    return None
