"""The edge role of an appliance: the access edge proxy on its two interfaces.

Built from ``[EdgeServer]`` (where each side listens), ``[Online]`` (the online service's
SIP addresses: trusted on the external side and the next hop for inbound calls) and
``[MediationServer]`` (the mediation role's edge-side listener: the next hop for outbound
calls and the only address trusted on the internal side). With ``[MediaRelay]`` on, it also
runs the media relay (TURN) and MRAS (:mod:`.media_relay`, ``docs/edge-media.md``). The
role receives its endpoint and listeners ready (:class:`.assembly.EdgeListeners`; when none
are given, :meth:`EdgeRole.start` asks :func:`.assembly.open_listeners` for them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from hybridvoice.cms.edge_names import record_route_user
from hybridvoice.cms.settings import Settings
from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.pipe import LocalExchange
from hybridvoice.net.proxy import Proxy
from hybridvoice.net.stream import StreamLimits
from hybridvoice.net.transport import Destination, Transport
from hybridvoice.sip.transaction import TimerConfig

from .access import EdgePolicy, Sides
from .assembly import EdgeListeners, open_listeners
from .media_relay import EdgeMedia, open_media_relay
from .monitor import MediationMonitor

if TYPE_CHECKING:
    import ssl

__all__ = ["EdgeOptions", "EdgeRole"]

#: the edge proxy's forwarding lines (debug: ``--log-component edge=debug``)
_proxy_log: Final = logging.getLogger("hybridvoice.edge.proxy")


@dataclass(slots=True)
class EdgeOptions:
    """What the settings do not say: TLS contexts, timers, the mediation ping interval."""

    server_ssl: ssl.SSLContext | None = None
    client_ssl: ssl.SSLContext | None = None
    timers: TimerConfig | None = None
    ping_interval: float = 1.0
    #: the process's in-process hops (:mod:`hybridvoice.net.pipe`); None: sockets only
    exchange: LocalExchange | None = None
    #: TCP/TLS limits of its listeners ([SipLimits]); None: the defaults
    limits: StreamLimits | None = None
    #: MRAS's server context (the site certificate, a client certificate required); the
    #: media relay does not start without it (``docs/edge-media.md``)
    mras_ssl: ssl.SSLContext | None = None


class EdgeRole:
    """Start with :meth:`start`, stop with :meth:`stop`; ``proxy`` and ``policy`` once started."""

    def __init__(
        self,
        settings: Settings,
        options: EdgeOptions | None = None,
        *,
        listeners: EdgeListeners | None = None,
    ) -> None:
        self.settings = settings
        self.options = options or EdgeOptions()
        #: its endpoint and listeners (None: opened by :meth:`start`)
        self.listeners = listeners
        self.endpoint: Endpoint | None = None
        self.external: Transport | None = None
        self.internal: Transport | None = None
        self.proxy: Proxy | None = None
        self.policy: EdgePolicy | None = None
        self.monitor: MediationMonitor | None = None
        #: the media relay and MRAS (None: ``[MediaRelay]`` off, or not started)
        self.media: EdgeMedia | None = None

    async def start(self) -> None:
        s, o = self.settings, self.options
        edge, online, ms = s.edge_server, s.online, s.mediation_server
        ready = self.listeners
        if ready is None:
            ready = self.listeners = await open_listeners(s, o)
        endpoint = self.endpoint = ready.endpoint
        self.external, self.internal = ready.external, ready.internal
        try:
            to_online = Destination(
                online.sip_protocol,
                online.sip_addresses[0],
                online.sip_port,
                s.common.online_sip_federation_fqdn,
                local=_local_for(online.sip_protocol, self.external),
            )
            to_mediation = Destination(
                ms.internal_protocol,
                ms.ip,
                ms.internal_port,
                ms.pool_name,
                local=_local_for(ms.internal_protocol, self.internal),
            )
            self.monitor = MediationMonitor(endpoint, to_mediation, interval=o.ping_interval)
            sides = Sides(
                external=[self.external],
                internal=[t for t in endpoint.transports if t is not self.external],
                online_hosts=frozenset(online.sip_addresses),
                mediation_hosts=frozenset({ms.ip}),
                online=to_online,
                mediation=to_mediation,
            )
            self.policy = EdgePolicy(
                sides, mediation_timeout=edge.mediation_timeout_seconds, monitor=self.monitor
            )
            self.media = await open_media_relay(s, [self.external], mras_ssl=o.mras_ssl)
            anchoring = None if self.media is None else self.media.anchoring
            rr = _record_route_hosts(s, self.external)
            if anchoring is None:
                self.proxy = Proxy(endpoint, self.policy, record_route_hosts=rr, log=_proxy_log)
            else:  # media of clients on the internet through the edge's relay
                self.proxy = Proxy(
                    endpoint, anchoring.policy(self.policy), record_route_hosts=rr, log=_proxy_log
                )
                self.proxy.forward_hook = anchoring.hook
            self.monitor.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self.media is not None:
            await self.media.close()
            self.media = None
        if self.monitor is not None:
            await self.monitor.stop()
            self.monitor = None
        if self.endpoint is not None:
            await self.endpoint.close()
            self.endpoint = None
        self.listeners = None


def _record_route_hosts(settings: Settings, external: Transport) -> dict[Transport, str]:
    """The external side named by the pool FQDN (TLS): its Record-Route carries the
    appliance's name too (``appliance1@ap.contoso.com``), so that the online service routes
    the dialog's requests to this appliance of the pool (``cms.edge_names``)."""
    host = external.advertised[0]
    if host.replace(".", "").isdigit() or ":" in host:  # an address: nothing to say
        return {}
    return {external: f"{record_route_user(settings)}@{host}"}


def _local_for(kind: str, side: Transport) -> tuple[str, int] | None:
    """Send from ``side`` when it speaks ``kind``; otherwise from the endpoint's first
    transport of that kind (``Endpoint.transport_for``)."""
    return side.local if side.kind == kind.upper() else None
