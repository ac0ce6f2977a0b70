"""Where the mediation role's I/O is built: its two endpoints, their listeners, the relay.

The assembly half of the role (``docs/dev/CONVENTIONS.md``, "Core, adapter, assembly"):
:func:`open_sides` opens what :class:`~hybridvoice.mediation.role.MediationRole` receives
ready. Gateway side (RFC 3261 §18.1, §18.2): TCP on ``[MediationServer] TCPPort`` (5068),
TLS on ``TLSPort`` (5067, when a server TLS context is given), UDP on ``UDPPort`` when set,
and a client-only transport for every other protocol a gateway speaks. Edge side: one
listener (``RoleOptions.edge``) and a client transport toward the edge's next hop when it
speaks another protocol. The RTP relay (RFC 3550) binds ``[MediationServer] MediaPort*``.
This is a named adapter of the import rules: it may touch the loop, sockets and TLS.

TLS toward gateways (:mod:`.gateway_tls`, RFC 5922, RFC 5630): the gateway-side TLS transports
advertise our FQDN from our certificate (``[MediationServer] PoolName`` when the certificate
holds it, else its first DNS name) in Via, Contact and OPTIONS, never a bare IP; they take a
gateway's own roots for its name (``peer_ssl``) and label refusals with the gateway's name.
With site contexts (``RoleOptions.site_tls``) the TLS listener trusts the gateways' own roots
too, and requires a client certificate unless a TLS gateway is not MTLS (whose connections
then come without one; MTLS gateways are still held to theirs, request by request).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hybridvoice.cms.settings import Settings
from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.identity import PeerIdentity
from hybridvoice.net.loop import TaskFailures
from hybridvoice.net.relay import RelayEngine
from hybridvoice.net.stream import StreamTransport
from hybridvoice.net.tls import identity_of
from hybridvoice.net.tls_peers import PeerContexts
from hybridvoice.net.transport import Transport
from hybridvoice.net.udp import SendBatch, share_between
from hybridvoice.sip.value_cache import ValueCache

from .gateway_tls import peer_trust
from .trunks import normalise_ip

if TYPE_CHECKING:
    from .role import RoleOptions

__all__ = ["MediationSides", "bind_refused", "open_gateway_transport", "open_sides"]


@dataclass(slots=True)
class MediationSides:
    """The role's ready I/O: endpoints with their listeners, the relay, the loop's handler."""

    gateway_endpoint: Endpoint
    edge_endpoint: Endpoint
    edge_transport: Transport
    #: gateway-side transports by kind (listeners and client-only ones)
    gateway_transports: dict[str, Transport] = field(default_factory=dict)
    relay: RelayEngine | None = None
    #: the loop's exception handler (logs and counts what no task handled)
    task_failures: TaskFailures | None = None
    #: what both sides' UDP transports share: parsed header values and the send batch (the
    #: sends a datagram on one side causes on the other leave together)
    values: ValueCache = field(default_factory=ValueCache)
    batch: SendBatch = field(default_factory=SendBatch)
    #: the client contexts toward gateways with their own roots (``set`` them again when the
    #: gateways change at run time)
    peer_tls: PeerContexts | None = None
    #: the FQDN the gateway-side TLS transports advertise (None: their IP)
    tls_host: str | None = None

    async def close(self) -> None:
        for endpoint in (self.edge_endpoint, self.gateway_endpoint):
            await endpoint.close()
        if self.relay is not None:
            await self.relay.close()


async def open_sides(settings: Settings, options: RoleOptions) -> MediationSides:
    """Both endpoints listening as the settings and options say, and the relay when asked."""
    ms, o = settings.mediation_server, options
    task_failures = TaskFailures.install(asyncio.get_running_loop())
    gw_ep = Endpoint(timers=o.timers, limits=o.limits)
    edge_ep = Endpoint(timers=o.timers, exchange=o.exchange, limits=o.limits)
    peers = PeerContexts(o.site_tls, peer_trust(settings.gateways))
    gateway_server = o.server_ssl
    if o.site_tls is not None:
        tls_gateways = [g for g in settings.gateways if g.protocol == "TLS"]
        extra = b"".join(peers.roots.values())
        require = all(g.mutual_tls for g in tls_gateways)
        if extra or not require:
            gateway_server = o.site_tls.widened(extra, require_client=require).server
    tls_host = our_fqdn(identity_of(o.server_ssl or o.client_ssl), settings)
    try:
        gateway_transports: dict[str, Transport] = {}
        for kind, port in (("UDP", ms.udp_port), ("TCP", ms.tcp_port), ("TLS", ms.tls_port)):
            if port is None or (kind == "TLS" and o.server_ssl is None):
                continue
            gateway_transports[kind] = await gw_ep.listen(
                kind, ms.ip, port, server_ssl=gateway_server if kind == "TLS" else None,
                client_ssl=o.client_ssl, advertised_host=tls_host if kind == "TLS" else None,
            )  # fmt: skip
        kinds = {g.protocol for g in settings.gateways} - set(gateway_transports)
        for kind in sorted(kinds):  # a client-only transport to reach such gateways
            gateway_transports[kind] = await open_gateway_transport(
                gw_ep, kind, ms.ip, o.client_ssl, advertised_host=tls_host
            )
        tls = gateway_transports.get("TLS")
        if isinstance(tls, StreamTransport):
            tls.peer_ssl = peers
            tls.peer_label = gateway_names(settings)
        e = o.edge
        edge_transport = await edge_ep.listen(
            e.transport, e.host, e.port,
            server_ssl=o.server_ssl if e.transport == "TLS" else None,
            client_ssl=o.client_ssl,
        )  # fmt: skip
        if o.edge_target.transport != e.transport:
            await edge_ep.listen(o.edge_target.transport, e.host, 0, client_ssl=o.client_ssl)
        values, batch = share_between([*gw_ep.transports, *edge_ep.transports])
        relay = None
        if o.relay:
            relay = RelayEngine(ms.ip, (ms.media_port_start, ms.media_port_end))
    except BaseException:
        await edge_ep.close()
        await gw_ep.close()
        raise
    return MediationSides(
        gateway_endpoint=gw_ep,
        edge_endpoint=edge_ep,
        edge_transport=edge_transport,
        gateway_transports=gateway_transports,
        relay=relay,
        task_failures=task_failures,
        values=values,
        batch=batch,
        peer_tls=peers,
        tls_host=tls_host,
    )


def gateway_names(settings: Settings) -> Callable[[str], str]:
    """The ``peer`` label of a TLS refusal: the gateway's name for its IP or FQDN (the
    address or name itself for others)."""
    names: dict[str, str] = {}
    for gw in settings.gateways:
        for key in (gw.fqdn, gw.ip):
            if key:
                names.setdefault(normalise_ip(key).lower(), gw.name)
    return lambda peer: names.get(normalise_ip(peer).lower(), peer)


def our_fqdn(identity: PeerIdentity | None, settings: Settings) -> str | None:
    """The FQDN the gateway side advertises over TLS: ``[MediationServer] PoolName`` (or
    ``ServerName``) when our certificate holds it, else the certificate's first DNS name
    (sorted); None without a certificate that names one."""
    if identity is None or not identity.names:
        return None
    ms = settings.mediation_server
    for name in (ms.pool_name, ms.server_name):
        if name and identity.matches(name):
            return name.lower()
    names = sorted(n for n in identity.names if "*" not in n)
    return names[0] if names else None


async def open_gateway_transport(
    endpoint: Endpoint,
    kind: str,
    host: str,
    client_ssl: ssl.SSLContext | None,
    sides: MediationSides | None = None,
    *,
    advertised_host: str | None = None,
) -> Transport:
    """A client transport of ``kind`` on the gateway side (port 0), for gateways of a protocol
    no listener speaks; TLS gets the client context. Opened at run time (``sides`` given), a
    UDP one shares the sides' value cache and send batch."""
    tls = kind == "TLS"
    if sides is not None and advertised_host is None:
        advertised_host = sides.tls_host
    transport = await endpoint.listen(
        kind, host, 0, client_ssl=client_ssl if tls else None,
        advertised_host=advertised_host if tls else None,
    )  # fmt: skip
    if sides is not None:
        share_between([transport], sides.values, sides.batch)
        if tls and isinstance(transport, StreamTransport):
            transport.peer_ssl = sides.peer_tls
    return transport


def bind_refused(host: str, port: int) -> bool:
    """Whether binding TCP ``host:port`` is refused for lack of privilege (EACCES/EPERM).
    The HTTP server hides why it could not listen; this asks the kernel again."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except PermissionError:
        return True
    except OSError:
        return False
    return False
