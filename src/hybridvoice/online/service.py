"""The online service in one object: tenant store, registrar, SIP proxy and management API.

:class:`OnlineService` listens for SIP (clients register and call; appliances' edges send
inbound PSTN calls) and serves the JSON API (admin commands, appliance registration and
heartbeats, the replication feed). The SIP side is the transaction-stateful proxy of
:mod:`hybridvoice.net.proxy` with :class:`~hybridvoice.online.policy.OnlinePolicy`; the
registrar's realm is the tenant's first SIP domain. Failed Digest authentications are limited
per source and per user (:mod:`hybridvoice.online.guard`, ``[Online] AuthFailureLimit``...)
and counted in ``/metrics``. The service receives its SIP endpoint and listeners ready
(:class:`.assembly.OnlineSip`; when none are given, :meth:`OnlineService.start` asks
:func:`.assembly.open_sip` for them).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from hybridvoice.cms.settings import Online
from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.http import DEFAULT_MAX_BODY, AsgiServer, TlsRefused, serve_asgi
from hybridvoice.net.metrics import endpoint_metrics
from hybridvoice.net.pipe import LocalExchange
from hybridvoice.net.proxy import Proxy
from hybridvoice.net.stream import StreamLimits
from hybridvoice.net.transport import Transport
from hybridvoice.sip.transaction import TimerConfig

from .api import create_online_api, sip_metrics
from .api_answers import add_online_answers
from .api_mtls import ApplianceAuth
from .api_store import add_store_errors
from .api_trust import add_trust_routes
from .api_turn import add_turn_routes, mras_fetch
from .api_updates import add_update_routes
from .assembly import OnlineSip, open_sip
from .guard import AuthGuard, BlockReason, GuardLimits
from .heartbeat_summary import SummaryBoard
from .metrics_registrar import registration_metrics
from .policy import OnlinePolicy
from .registrar import Registrar
from .store import TenantStore

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable

    from fastapi import FastAPI

__all__ = ["OnlineOptions", "OnlineService", "auth_limits", "guard_metrics"]


@dataclass(slots=True)
class OnlineOptions:
    """Where the online service listens and keeps its data."""

    #: SIP listeners as (transport, host, port); port 0 = any free port
    sip: list[tuple[str, str, int]] = field(
        default_factory=lambda: [("UDP", "127.0.0.1", 5060), ("TCP", "127.0.0.1", 5060)]
    )
    api_host: str = "127.0.0.1"
    api_port: int = 8470
    #: request bodies over this get 413 before they are read (``[Management] MaxRequestBytes``)
    max_request_bytes: int = DEFAULT_MAX_BODY
    store: Path | str = ":memory:"
    realm: str | None = None  # default: the tenant's first SIP domain
    heartbeat_timeout: float = 5.0  # an appliance silent this long is marked offline
    appliance_timeout: float = 2.0  # no provisional from an appliance within this: next one
    #: digest challenges, strongest first (RFC 8760); ("MD5",) for clients that stop at the
    #: first challenge they cannot answer (SIPp 3.6, baresip 1.0)
    digest_algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    #: networks whose requests are not challenged (``[Online] TrustedPeers``)
    trusted_peers: tuple[str, ...] = ()
    #: failure limits of Digest authentication (``[Online] AuthFailureLimit`` ...)
    auth_limits: GuardLimits = field(default_factory=GuardLimits)
    server_ssl: ssl.SSLContext | None = None
    client_ssl: ssl.SSLContext | None = None
    timers: TimerConfig | None = None
    seed: int | None = None
    #: the process's in-process hops (:mod:`hybridvoice.net.pipe`): appliances hosted by the
    #: same process (the lab) are reached through pipes; None: sockets only
    exchange: LocalExchange | None = None
    #: TCP/TLS limits of its listeners ([SipLimits]); None: the defaults
    limits: StreamLimits | None = None
    #: the API over HTTPS (``[Online] ServiceURL`` https): its server context, which asks
    #: for a client certificate, and the site roots appliances authenticate with
    #: (:mod:`.api_mtls`); None: plain HTTP, appliances send bearer tokens
    api_ssl: ssl.SSLContext | None = None
    appliance_auth: ApplianceAuth | None = None
    #: the client context toward the edges' MRAS (mutual TLS: the online service's site
    #: certificate, the edge's verified against the site roots); None: no TURN credentials
    mras_ssl: ssl.SSLContext | None = None
    #: adds routes to the API before it serves (the assembly's: the tenant's dashboard)
    extend_api: Callable[[FastAPI], None] | None = None


class OnlineService:
    """Start with :meth:`start`, stop with :meth:`stop`."""

    def __init__(
        self,
        options: OnlineOptions | None = None,
        *,
        sip: OnlineSip | None = None,
        store: TenantStore | None = None,
    ) -> None:
        self.options = options or OnlineOptions()
        if self.options.appliance_auth is not None and self.options.api_ssl is None:
            raise ValueError("appliance_auth needs api_ssl: certificates come over HTTPS only")
        #: its SIP endpoint and listeners (None: opened by :meth:`start`)
        self.sip = sip
        #: the tenant (given: a store on etcd, :mod:`.store_kv`; else a SQLite file)
        self.store = store if store is not None else TenantStore(self.options.store)
        self.endpoint: Endpoint | None = None
        self.proxy: Proxy | None = None
        self.registrar: Registrar | None = None
        self.policy: OnlinePolicy | None = None
        self.guard = AuthGuard(self.options.auth_limits)
        self.api: AsgiServer | None = None
        self.transports: list[Transport] = []
        #: the appliances' last heartbeat summaries (the API's; for a dashboard of this process)
        self.summaries = SummaryBoard()

    @property
    def realm(self) -> str:
        if self.options.realm:
            return self.options.realm
        domains = self.store.domains()
        return domains[0] if domains else "hybridvoice"

    async def start(self) -> None:
        o = self.options
        rng = random.Random(o.seed)
        sip = self.sip
        if sip is None:
            sip = self.sip = await open_sip(o)
        endpoint = self.endpoint = sip.endpoint
        self.transports = list(sip.transports)
        try:
            self.registrar = Registrar(
                self.store,
                self.realm,
                algorithms=o.digest_algorithms,
                guard=self.guard,
                values=sip.values,
            )
            self.policy = OnlinePolicy(
                self.store,
                self.registrar,
                appliance_timeout=o.appliance_timeout,
                rng=rng,
                trusted_peers=o.trusted_peers,
            )
            self.proxy = Proxy(
                endpoint, self.policy, names=self.policy.edge_address,
                log=logging.getLogger("hybridvoice.online.proxy"),
            )  # fmt: skip
            app = create_online_api(
                self.store,
                appliance_auth=o.appliance_auth,  # appliances by certificate (HTTPS)
                heartbeat_timeout=o.heartbeat_timeout,
                metrics=lambda: (
                    sip_metrics(self.registrar, self.proxy)
                    + guard_metrics(self.guard)
                    + registration_metrics(self.registrar)
                    + endpoint_metrics([("online", endpoint)])  # messages, drops by reason
                ),
            )
            add_update_routes(app, self.store)  # tenant update windows (docs/updates.md)

            # TURN credentials from the site's edge (MRAS, over mutual TLS)
            add_turn_routes(app, self.store, mras_fetch(o.mras_ssl))
            add_trust_routes(app, self.store, o.appliance_auth)  # other sites' roots
            app.state.summaries = self.summaries
            add_store_errors(app)  # an instance on etcd without its cluster: 503
            add_online_answers(app)  # the answers' models in /v1/openapi.json (docs/api.md)
            if o.extend_api is not None:
                o.extend_api(app)
            self.api = await serve_asgi(
                app, o.api_host, o.api_port, lifespan=True, max_body=o.max_request_bytes,
                ssl_context=o.api_ssl, on_tls_refused=self._tls_refused(),
            )  # fmt: skip
        except BaseException:
            await self.stop()
            raise

    def _tls_refused(self) -> TlsRefused | None:
        """Who counts refused HTTPS handshakes: the appliance check, when there is one."""
        auth = self.options.appliance_auth
        return None if auth is None else auth.tls_refused

    def sip_address(self, kind: str = "UDP") -> tuple[str, int]:
        """Where the SIP listener of ``kind`` is bound."""
        for transport in self.transports:
            if transport.kind == kind.upper():
                return transport.local
        raise LookupError(f"the online service has no {kind} listener")

    async def stop(self) -> None:
        if self.api is not None:
            await self.api.stop()
            self.api = None
        if self.endpoint is not None:
            await self.endpoint.close()
            self.endpoint = None
        self.sip = None
        self.transports.clear()
        self.store.close()


def guard_metrics(guard: AuthGuard) -> list[Metric]:
    """The authentication failure limits: failures, blocks and refusals by reason."""
    failures = CounterMetricFamily(
        "hybridvoice_online_auth_failures", "Failed Digest authentications (any user, known or not)"
    )
    failures.add_metric([], guard.counters.failures)
    blocks = CounterMetricFamily(
        "hybridvoice_online_auth_blocks",
        "Sources or users blocked after too many failed authentications",
        labels=["reason"],
    )
    refused = CounterMetricFamily(
        "hybridvoice_online_auth_refused",
        "Authentications refused without checking because the source or user was blocked",
        labels=["reason"],
    )
    for reason in BlockReason:
        blocks.add_metric([reason.value], guard.counters.blocks[reason])
        refused.add_metric([reason.value], guard.counters.refused[reason])
    entries = GaugeMetricFamily(
        "hybridvoice_online_auth_guard_entries", "Sources, users and good pairs tracked"
    )
    entries.add_metric([], guard.entries)
    return [failures, blocks, refused, entries]


def auth_limits(online: Online) -> GuardLimits:
    """The failure limits of ``[Online] AuthFailureLimit`` and its companions."""
    return GuardLimits(
        failure_limit=online.auth_failure_limit,
        window=online.auth_failure_window_seconds,
        block=online.auth_block_seconds,
        max_block=online.auth_block_max_seconds,
    )
