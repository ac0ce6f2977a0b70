"""Where the online service's SIP I/O is built: its endpoint and listeners.

The assembly half of the online service (``docs/dev/CONVENTIONS.md``, "Core, adapter,
assembly"): :func:`open_sip` opens what :class:`~hybridvoice.online.service.OnlineService`
receives ready, one listener per ``OnlineOptions.sip`` entry (RFC 3261 §18.2.1; TLS ones
with the server certificate, RFC 5630 §3). A named adapter of the import rules: it holds TLS
contexts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.transport import Transport
from hybridvoice.net.udp import share_between
from hybridvoice.sip.value_cache import ValueCache

if TYPE_CHECKING:
    from .service import OnlineOptions

__all__ = ["OnlineSip", "open_sip"]


@dataclass(frozen=True, slots=True)
class OnlineSip:
    """The online service's endpoint and its listeners, in the order of the options."""

    endpoint: Endpoint
    transports: tuple[Transport, ...]
    #: the memo of parsed header values its UDP listeners share (and the registrar uses)
    values: ValueCache


async def open_sip(options: OnlineOptions) -> OnlineSip:
    """The endpoint listening on every ``options.sip`` address; closed again on a failure."""
    o = options
    endpoint = Endpoint(timers=o.timers, exchange=o.exchange, limits=o.limits)
    transports: list[Transport] = []
    try:
        for kind, host, port in o.sip:
            server_ssl = o.server_ssl if kind.upper() == "TLS" else None
            transports.append(
                await endpoint.listen(
                    kind, host, port, server_ssl=server_ssl, client_ssl=o.client_ssl
                )
            )
    except BaseException:
        await endpoint.close()
        raise
    values, _ = share_between(transports)  # its UDP listeners: one value cache, one batch
    return OnlineSip(endpoint, tuple(transports), values)
