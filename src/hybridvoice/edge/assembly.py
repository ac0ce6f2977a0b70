"""Where the edge role's I/O is built: one endpoint with its external and internal listeners.

The assembly half of the edge (``docs/dev/CONVENTIONS.md``, "Core, adapter, assembly"):
:func:`open_listeners` opens what :class:`~hybridvoice.edge.role.EdgeRole` receives ready,
``[EdgeServer] ExternalSIPIPs``/``ExternalSIPPort`` toward the online service and
``InternalServerIPs``/``InternalPort`` toward the mediation role (RFC 3261 §18.2.1). A TLS
listener needs the edge's server certificate (RFC 5630 §3), and advertises the FQDN that
certificate holds for its side (:mod:`hybridvoice.cms.edge_names`: the access edge pool FQDN
outside, the internal FQDN inside) in Via and Record-Route, never its IP (RFC 5922 §7). A
named adapter of the import rules: it holds TLS contexts.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hybridvoice.cms.edge_names import external_names, internal_names, pick
from hybridvoice.cms.settings import Settings
from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.tls import identity_of
from hybridvoice.net.transport import Transport
from hybridvoice.net.udp import share_between

if TYPE_CHECKING:
    from .role import EdgeOptions

__all__ = ["EdgeListeners", "open_listeners"]


@dataclass(frozen=True, slots=True)
class EdgeListeners:
    """The edge's endpoint and its two sides' listeners."""

    endpoint: Endpoint
    external: Transport
    internal: Transport


async def open_listeners(settings: Settings, options: EdgeOptions) -> EdgeListeners:
    """The edge's endpoint listening on both sides; closed again when one side fails."""
    edge, o = settings.edge_server, options
    endpoint = Endpoint(timers=o.timers, exchange=o.exchange, limits=o.limits)
    identity = identity_of(o.server_ssl)
    holds = None if identity is None else identity.matches
    try:
        external = await _listen(
            endpoint, o.server_ssl, o.client_ssl, kind=edge.external_protocol,
            host=edge.external_sip_ips[0], port=edge.external_sip_port,
            name=pick(external_names(settings), holds),
        )  # fmt: skip
        internal = await _listen(
            endpoint, o.server_ssl, o.client_ssl, kind=edge.internal_protocol,
            host=edge.internal_server_ips[0], port=edge.internal_port,
            name=pick(internal_names(settings), holds),
        )  # fmt: skip
    except BaseException:
        await endpoint.close()
        raise
    share_between(endpoint.transports)  # both sides: one value cache, one send batch
    return EdgeListeners(endpoint, external, internal)


async def _listen(
    endpoint: Endpoint,
    server_ssl: ssl.SSLContext | None,
    client_ssl: ssl.SSLContext | None,
    *,
    kind: str,
    host: str,
    port: int,
    name: str | None,
) -> Transport:
    server = server_ssl if kind == "TLS" else None
    if kind == "TLS" and server is None:
        raise ValueError(
            f"EdgeServer: TLS on {host}:{port} needs a certificate: hybridvoice up issues one "
            "from the site CA; a role started on its own needs its TLS contexts given"
        )
    return await endpoint.listen(
        kind, host, port, server_ssl=server, client_ssl=client_ssl,
        advertised_host=name if kind == "TLS" else None,  # over UDP/TCP: its address
    )  # fmt: skip
