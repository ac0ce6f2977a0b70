"""Why a TLS connection to a gateway failed: one diagnostic handshake, for call records and the
Reason a caller hears (RFC 3261 §26.2.1 and RFC 5922 §7.1: the gateway's certificate must chain
to a CA we trust and name the address or FQDN we connect to; RFC 8446 §6.2 alerts).

The SIP transport reports a failed TLS connection to the INVITE's transaction as a transport
error, which the session sees as a locally generated 408 (RFC 3261 §8.1.3.1); the reason (an
unknown CA, a name mismatch, an expired certificate) stays in the transport's log. When an
attempt to a TLS gateway ends that way, :func:`tls_failure` connects once more with the same
client context and names what the handshake says, so an admin reading the record or the
caller's Reason sees "certificate verify failed: unable to get local issuer certificate"
instead of a bare 408.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Final

from hybridvoice.net.transport import Destination

__all__ = ["PROBE_TIMEOUT", "tls_failure"]

#: How long the diagnostic handshake may take (s); a gateway that does not answer in that
#: time is reported as such and the failover goes on.
PROBE_TIMEOUT: Final = 2.0


async def tls_failure(
    destination: Destination, context: ssl.SSLContext, timeout: float = PROBE_TIMEOUT
) -> str | None:
    """What is wrong with a TLS connection to ``destination`` (None: the handshake works now,
    the earlier failure was something else)."""
    host, port = destination.host, destination.port
    name = destination.server_name or host
    where = f"{host}:{port}"
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context, server_hostname=name), timeout
        )
    except ssl.SSLCertVerificationError as exc:
        why = exc.verify_message or exc.reason or str(exc)
        return f"TLS certificate of {where} not accepted for {name}: {why}"
    except ssl.SSLError as exc:
        return f"TLS handshake with {where} failed: {exc.reason or exc}"
    except TimeoutError:
        return f"TLS connect to {where}: no handshake in {timeout:g} s"
    except OSError as exc:
        return f"TLS connect to {where} failed: {exc.strerror or exc}"
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return None
