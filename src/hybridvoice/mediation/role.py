"""The mediation role assembled: listeners, the two UAs, trunks and health, relay, records, B2BUA.

Gateway side (RFC 3261 §18): TCP on ``[MediationServer] TCPPort`` (5068), TLS on ``TLSPort``
(5067, when a server TLS context is given), UDP on ``UDPPort`` when set; requests to a gateway
go to its own port and protocol. Edge side: one listener (``RoleOptions.edge``) and the
edge's next hop for inbound calls. OPTIONS health (RFC 3261 §11) runs from the gateway-side
endpoint, so gateways see the same address as for calls. The media bypass web service
(:mod:`.bypass_service`) listens on ``[MediationServer] BypassServiceIP``/``BypassServicePort``
(the internal interface) and answers from the tenant network configuration the role holds;
:meth:`MediationRole.set_bypass` changes it at run time, for the next request and next call.

The role receives its endpoints, listeners and relay ready (:class:`.assembly.MediationSides`,
opened by :func:`.assembly.open_sides`; when none are given, :meth:`MediationRole.start`
asks the assembly for them). ``hybridvoice mediation serve`` runs the role in its own process
(:func:`hybridvoice.app.run_mediation`).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hybridvoice.cms.edge_names import edge_name_map
from hybridvoice.cms.settings import Settings
from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.loop import TaskFailures
from hybridvoice.net.names import NameResolver
from hybridvoice.net.pipe import LocalExchange
from hybridvoice.net.relay import RelayEngine
from hybridvoice.net.stream import StreamLimits
from hybridvoice.net.transport import Destination, Transport
from hybridvoice.net.ua import UserAgent
from hybridvoice.sip.session import SessionConfig
from hybridvoice.sip.transaction import TimerConfig

from .assembly import MediationSides, bind_refused, open_sides
from .b2bua import B2BUA
from .bypass import BypassPolicy
from .bypass_service import (
    BypassServer,
    BypassServiceError,
    HybridConfig,
    create_bypass_app,
    serve_bypass,
)
from .health import HealthMonitor, resolve_gateways
from .media_srtp import SrtpConfig
from .records import CallRecordStore
from .routing import NO_GATEWAY_CONFIGURED, CallAdmission, OutboundRouter
from .trunks import Health, HealthChange, TrunkTable

if TYPE_CHECKING:
    import ssl

    from hybridvoice.net.tls import MtlsContexts

__all__ = [
    "PRIVILEGED_PORTS",
    "MediationRole",
    "RoleOptions",
    "bind_refused",
    "parse_hostport",
    "privileged_port_advice",
]

_log = logging.getLogger("hybridvoice.mediation.role")


#: Ports below this need privilege to bind (root or CAP_NET_BIND_SERVICE on Linux).
PRIVILEGED_PORTS = 1024


def privileged_port_advice(port: int) -> str:
    """What to do when the bypass web service may not bind ``port`` (the CCE default 80)."""
    return (
        f"binding port {port} needs privilege: set [MediationServer] BypassServicePort to a "
        f"port >= {PRIVILEGED_PORTS} (and point clients' bypass service URL at it) or run "
        "with CAP_NET_BIND_SERVICE"
    )


def parse_hostport(text: str, default_kind: str = "UDP") -> Destination:
    """``udp:127.0.0.1:5090`` (or ``127.0.0.1:5090``) as a :class:`Destination`."""
    kind, sep, rest = text.partition(":")
    if not sep or not kind.isalpha():
        kind, rest = default_kind, text
    host, _, port = rest.rpartition(":")
    return Destination(kind.upper(), host.strip("[]"), int(port))


@dataclass(slots=True)
class RoleOptions:
    """What ``Settings`` does not say: the edge side, media, records, timers."""

    #: where the edge side listens (port 0: any free port)
    edge: Destination = field(default_factory=lambda: Destination("TLS", "127.0.0.1", 0))
    #: the edge's next hop for inbound calls
    edge_target: Destination = field(default_factory=lambda: Destination("TLS", "127.0.0.1", 5061))
    #: host of the cloud-side Request-URI (default: the first SIP domain)
    edge_domain: str | None = None
    server_ssl: ssl.SSLContext | None = None
    client_ssl: ssl.SSLContext | None = None
    #: the site contexts ``server_ssl``/``client_ssl`` come from: per-gateway trust
    #: (``TrustedRootsFile``) and the gateway-side TLS listener follow their renewals
    #: (:mod:`.gateway_tls`); None: the two contexts as given
    site_tls: MtlsContexts | None = None
    #: anchor media through an RTP relay on ``[MediationServer] MediaPort*``
    relay: bool = True
    #: the tenant's network configuration (None: bypass off, the settings' internal subnets);
    #: change it at run time with :meth:`MediationRole.set_bypass`
    bypass: BypassPolicy | None = None
    #: serve the media bypass web service on ``[MediationServer] BypassServiceIP``/``Port``
    bypass_service: bool = True
    #: the bypass service name clients are told (default: ``hybridvoice.<first SIP domain>``)
    bypass_service_name: str | None = None
    records: Path | None = None
    session: SessionConfig | None = None
    timers: TimerConfig | None = None
    #: the process's in-process hops toward the edge (:mod:`hybridvoice.net.pipe`); None:
    #: sockets only
    exchange: LocalExchange | None = None
    #: TCP/TLS limits of its listeners ([SipLimits]); None: the defaults
    limits: StreamLimits | None = None
    options_interval: float | None = None  # default: the settings' OptionsIntervalSeconds
    seed: int | None = None


class MediationRole:
    """Start with :meth:`start`, stop with :meth:`stop`. ``b2bua`` is the call core."""

    def __init__(
        self,
        settings: Settings,
        options: RoleOptions | None = None,
        *,
        sides: MediationSides | None = None,
    ) -> None:
        self.settings = settings
        self.options = options or RoleOptions()
        #: the endpoints, listeners and relay it runs on (None: opened by :meth:`start`
        #: through :func:`.assembly.open_sides`)
        self.sides = sides
        self.edge_endpoint: Endpoint | None = None
        self.gateway_endpoint: Endpoint | None = None
        self.edge_transport: Transport | None = None
        self.gateway_transports: dict[str, Transport] = {}
        self.trunks: TrunkTable | None = None
        self.health: HealthMonitor | None = None
        self.relay: RelayEngine | None = None
        self.records: CallRecordStore | None = None
        self.admission = CallAdmission.from_settings(settings)
        #: the media bypass web service, once started; why it is not running, if it failed
        self.bypass_server: BypassServer | None = None
        self.bypass_error: str | None = None
        self.bypass_version = 0  # bumped by every set_bypass: the service's settings version
        self._b2bua: B2BUA | None = None
        self._uas: list[UserAgent] = []
        #: the loop's exception handler (logs and counts what no task handled), once started
        self.task_failures: TaskFailures | None = None

    @property
    def b2bua(self) -> B2BUA:
        if self._b2bua is None:
            raise RuntimeError("the mediation role is not started")
        return self._b2bua

    def call_failures(self) -> dict[str, int]:
        """Calls a failure ended, by cause: ``sdp`` and ``internal`` (the bridge's guard,
        :meth:`.b2bua.Bridge.abort`), ``application`` (what the UAs ended themselves)."""
        b2bua = self._b2bua
        counts = {} if b2bua is None else b2bua.stats.failures
        out = {cause: counts.get(cause, 0) for cause in ("sdp", "internal")}
        out["application"] = sum(ua.application_failures for ua in self._uas)
        return out

    async def start(self) -> None:
        s, o = self.settings, self.options
        ms = s.mediation_server
        rng = random.Random(o.seed)
        sides = self.sides
        if sides is None:
            sides = self.sides = await open_sides(s, o)
        self.task_failures = sides.task_failures
        gw_ep = self.gateway_endpoint = sides.gateway_endpoint
        edge_ep = self.edge_endpoint = sides.edge_endpoint
        self.gateway_transports = sides.gateway_transports
        self.edge_transport = sides.edge_transport
        self.relay = sides.relay
        try:
            if not s.gateways:
                _log.warning("%s; every PSTN call is refused 503", NO_GATEWAY_CONFIGURED)
            resolved = await resolve_gateways(s.gateways)
            trunks = self.trunks = TrunkTable.from_settings(s, resolved)
            edge_ua = UserAgent(
                edge_ep, config=o.session, user="mediation", rng=rng,
                resolver=NameResolver(edge_name_map(s)),  # the edge's Record-Route over TLS
            )  # fmt: skip
            gw_ua = UserAgent(gw_ep, config=o.session, user="mediation", rng=rng)
            self._uas = [edge_ua, gw_ua]
            if o.records is not None:
                self.records = CallRecordStore(o.records)
            bypass = o.bypass
            if bypass is None:
                subnets = tuple(ipaddress.ip_network(n) for n in ms.internal_subnets)
                bypass = BypassPolicy(enabled=False, internal_subnets=subnets)
            self._b2bua = B2BUA(
                edge_ua=edge_ua, gateway_ua=gw_ua, trunks=trunks,
                router=OutboundRouter.from_settings(s, trunks, rng),
                admission=self.admission, trunk_config=s.trunk_configuration,
                edge_target=o.edge_target, edge_domain=o.edge_domain or s.common.default_domain,
                relay=self.relay, bypass=bypass, records=self.records,
                srtp=SrtpConfig(ms.client_media_encryption, os.urandom),
            )  # fmt: skip
            # each gateway on its own keys unless the options override them all
            self.health = HealthMonitor(
                gw_ep, trunks, interval=o.options_interval, on_change=self._gateway_health
            )
            self.health.start()
            if o.bypass_service:
                await self._start_bypass_service()
        except BaseException:
            await self.stop()
            raise

    def _gateway_health(self, change: HealthChange) -> None:
        """Gateway health changed (the pinger's probes, or a call's INVITE that timed out or
        could not be sent): calls pending on a gateway now down move on to the next (a 180
        has stopped their fast-failover timer)."""
        if change.health is Health.DOWN and self._b2bua is not None:
            self._b2bua.gateway_down(change.gateway, change.reason)

    async def _start_bypass_service(self) -> None:
        """Serve the media bypass web service on the internal interface. A failure to bind is
        logged and kept in :attr:`bypass_error`: without the service clients count as
        external and their calls are anchored, a degradation that must not stop calls."""
        host, port = self.settings.mediation_server.bypass_bind
        try:
            app = create_bypass_app(self.hybrid_config)
            self.bypass_server = await serve_bypass(app, host, port)
        except BypassServiceError as exc:
            self.bypass_error = str(exc)
            if 0 < port < PRIVILEGED_PORTS and bind_refused(host, port):
                self.bypass_error = f"{exc}: {privileged_port_advice(port)}"
            _log.error("media bypass web service not started: %s", self.bypass_error)

    def hybrid_config(self) -> HybridConfig:
        """What the bypass web service answers, read on every request."""
        common = self.settings.common
        name = self.options.bypass_service_name or f"hybridvoice.{common.default_domain}"
        return HybridConfig(self.b2bua.bypass, common.site_name, name, self.bypass_version)

    def set_bypass(self, policy: BypassPolicy) -> None:
        """A new tenant network configuration: the next request to the bypass web service and
        the next call see it (calls in progress keep their media path). Before :meth:`start`
        it replaces ``RoleOptions.bypass``."""
        self.options.bypass = policy
        if self._b2bua is not None:
            self._b2bua.bypass = policy
        self.bypass_version += 1

    def enter_maintenance(self) -> None:
        """Drain: no new calls (503 + Retry-After), existing calls finish."""
        self.admission.enter_maintenance()

    def exit_maintenance(self) -> None:
        self.admission.exit_maintenance()

    async def stop(self) -> None:
        """Stop health checks, hang up nothing (calls die with the process), close all."""
        if self.bypass_server is not None:
            await self.bypass_server.stop()
            self.bypass_server = None
        if self.health is not None:
            await self.health.stop()
        for ua in self._uas:
            ua.close()
        if self.sides is not None:
            await self.sides.close()
            self.sides = None
        self.relay = None
        if self.records is not None:
            await self.records.aclose()
        self.edge_endpoint = self.gateway_endpoint = None
