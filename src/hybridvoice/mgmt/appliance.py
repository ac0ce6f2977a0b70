"""One appliance: edge and mediation roles, the settings replica, and the link to the cloud.

:class:`Appliance` starts the roles from the appliance settings, keeps a local replica of the
tenant settings (:class:`~hybridvoice.cms.replica.LocalStore`, fed by the
:class:`~hybridvoice.cms.replicator.Replicator`: it keeps working on the last replica when
the cloud is unreachable), registers with the online service and sends heartbeats
(:class:`~hybridvoice.cms.replicator.ApplianceLink`, the original's Register-CcAppliance),
applies replicated changes that matter to calls at once (the tenant's media bypass
configuration: the next call sees it, no restart) and serves its management API
(:mod:`hybridvoice.mgmt.appliance_api`), behind the bearer tokens and audit log of
:attr:`Appliance.access` (``access.db`` in the state directory, in memory without one).
Toward the online service it presents its client certificate from the site CA when
``[Online] ServiceURL`` is https (:mod:`.online_tls`: made on first start), else its own
token (``[Management] OnlineToken``, or :attr:`ApplianceOptions.online_token`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import shutil
import ssl
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from hybridvoice import __version__
from hybridvoice.cms.changes import Change
from hybridvoice.cms.edge_names import appliance_name
from hybridvoice.cms.guard import Access
from hybridvoice.cms.replica import LocalStore
from hybridvoice.cms.replicator import ApplianceLink, FeedError, Replicator
from hybridvoice.cms.settings import Settings, SettingsError
from hybridvoice.cms.site_records import SITE_KINDS, SiteChange, SiteReplica
from hybridvoice.edge.assembly import open_listeners
from hybridvoice.edge.media_relay import edge_relay_addresses, edge_relay_ports
from hybridvoice.edge.role import EdgeOptions, EdgeRole
from hybridvoice.mediation.assembly import open_gateway_transport, open_sides
from hybridvoice.mediation.bypass import BypassPolicy
from hybridvoice.mediation.gateway_tls import peer_trust
from hybridvoice.mediation.health import resolve_gateways
from hybridvoice.mediation.role import MediationRole, RoleOptions
from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.http import AsgiServer, serve_asgi
from hybridvoice.net.pipe import LocalExchange
from hybridvoice.net.tls import MtlsContexts
from hybridvoice.net.transport import Destination
from hybridvoice.pki import PkiStore
from hybridvoice.sip.session import SessionConfig
from hybridvoice.sip.transaction import TimerConfig
from hybridvoice.store.kv import KeyValueStore

from .appliance_site import gateway_keys, gateways_from_replica, with_gateway
from .cert_status import certificate_rows, warnings
from .dashboard import appliance_app
from .dashboard.summary import SummaryMaker
from .gateways import (
    GATEWAYS_FILE,
    GatewayChangeError,
    changed_settings,
    gateway_row,
    load_gateways,
    save_gateways,
)
from .online_tls import appliance_client_context, uses_https
from .self_health_io import SelfHealthMonitor, start_self_health
from .site_link import SiteConfig, SiteLink, SiteUnavailableError
from .site_pushed import PushedSettings, pushed_kinds
from .traces import CallTraces, attach_traces

__all__ = ["Appliance", "ApplianceOptions"]

_log = logging.getLogger(__name__)


@dataclass(slots=True)
class ApplianceOptions:
    """What the settings do not say (tests and ``hybridvoice up`` set these)."""

    server_ssl: ssl.SSLContext | None = None
    client_ssl: ssl.SSLContext | None = None
    #: the site contexts the two above come from (per-gateway TLS trust follows renewals)
    site_tls: MtlsContexts | None = None
    #: the site PKI directory (``appliance status`` warns 30 days before a certificate
    #: expires); None: no site CA in use
    pki_dir: Path | None = None
    timers: TimerConfig | None = None
    session: SessionConfig | None = None
    replication_wait: float = 25.0
    serve_api: bool = True
    seed: int | None = None
    #: SIP between the roles of this process (edge <-> mediation) through in-process pipes
    #: (:mod:`hybridvoice.net.pipe`); False: on sockets, as between hosts
    pipes: bool = True
    #: the process's exchange when the appliance shares its process (``hybridvoice up``:
    #: with the online service); None: the appliance makes its own when ``pipes``
    exchange: LocalExchange | None = None
    #: the bearer token toward the online service's API (``hybridvoice up`` makes one);
    #: None: ``[Management] OnlineToken``
    online_token: str | None = None
    #: a site on etcd (``<state dir>/site.json``): its name and members, and the store client
    #: the assembly opened; None: a one-appliance site (gateways in the state directory)
    site: SiteConfig | None = None
    site_store: KeyValueStore | None = None
    #: every appliance the online service knows, for the dashboard's overview
    #: (``hybridvoice up``: the online service of the same process); None: this one only
    fleet: Callable[[], Iterable[Any]] | None = None
    #: their last heartbeat summaries by name (the online service's ``summaries.rows``)
    fleet_summaries: Callable[[], Mapping[str, Mapping[str, Any]]] | None = None


class Appliance:
    """Start with :meth:`start`, stop with :meth:`stop`; :meth:`status` for the admin."""

    def __init__(self, settings: Settings, options: ApplianceOptions | None = None) -> None:
        self.settings = settings
        self.options = options or ApplianceOptions()
        state = settings.management.state_directory
        self.state_dir = Path(state) if state else None
        #: the site's records as last seen through the watch (a site on etcd only)
        self.site_replica: LocalStore | None = None
        self.site: SiteLink | None = None
        if self.options.site is not None:
            where = self.state_dir / "site-replica.db" if self.state_dir else ":memory:"
            self.site_replica = LocalStore(where, kinds=SITE_KINDS, change=SiteChange)
            self.settings = gateways_from_replica(settings, self.site_replica)
        elif self.state_dir is not None:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            saved = self.state_dir / GATEWAYS_FILE
            if saved.exists():
                self.settings = load_gateways(saved, settings)
                _log.warning("gateways from %s (changed at run time) replace the settings "
                             "file's [GatewayN] sections", saved)  # fmt: skip
        self.replica = LocalStore(self.state_dir / "replica.db" if self.state_dir else ":memory:")
        self.access = Access.open(self.state_dir / "access.db" if self.state_dir else ":memory:")
        self.mediation: MediationRole | None = None
        self.edge: EdgeRole | None = None
        self.replicator: Replicator | None = None
        self.link: ApplianceLink | None = None
        #: the appliance's own health monitor (``[HealthMonitor]``; mgmt.self_health_io)
        self.self_health: SelfHealthMonitor | None = None
        #: the SIP capture and HEP export of its roles (``[Traces]``; mgmt.traces)
        self.traces: CallTraces | None = None
        self.api: AsgiServer | None = None
        #: the HTTPS client toward the online API (an https ServiceURL), its PKI store
        self.online_http: httpx.AsyncClient | None = None
        #: its client certificate toward an https ServiceURL comes from the site PKI of
        #: ``pki_dir`` (``hybridvoice up``: the site's); else ``<state directory>/pki`` (a
        #: temporary one without a state directory)
        pki_dir = self.options.pki_dir
        self.pki: PkiStore | None = None if pki_dir is None else PkiStore(pki_dir)
        self._temp_pki: str | None = None
        self._unsubscribe: Any = None
        self._site_unsubscribe: Any = None
        self._site_tasks: set[asyncio.Task[None]] = set()
        self._site_member: asyncio.Task[None] | None = None
        #: tenant settings pushed from the cloud, kept in the site store too (mgmt.site_pushed)
        self.pushed: PushedSettings | None = None
        self._gateway_lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return appliance_name(self.settings)

    # --- life cycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Every role, their SIP listeners under the settings' ``[SipLimits]``."""
        s, o = self.settings, self.options
        ms, edge = s.mediation_server, s.edge_server
        exchange = o.exchange
        if exchange is None and o.pipes:
            exchange = LocalExchange()
        try:
            mediation_options = RoleOptions(
                edge=Destination(ms.internal_protocol, ms.ip, ms.internal_port),
                edge_target=Destination(
                    edge.internal_protocol, edge.internal_server_ips[0], edge.internal_port
                ),
                server_ssl=o.server_ssl,
                client_ssl=o.client_ssl,
                site_tls=o.site_tls,
                bypass=self._bypass_policy(),
                records=self.state_dir / "calls.db" if self.state_dir else None,
                session=o.session,
                timers=o.timers,
                seed=o.seed,
                exchange=exchange,
                limits=s.sip_limits.stream_limits,
            )
            sides = await open_sides(s, mediation_options)
            self.mediation = MediationRole(s, mediation_options, sides=sides)
            await self.mediation.start()
            edge_options = EdgeOptions(
                server_ssl=o.server_ssl,
                client_ssl=o.client_ssl,
                timers=o.timers,
                exchange=exchange,
                limits=s.sip_limits.stream_limits,
                # MRAS: mutual TLS with the site certificate (a client certificate required)
                mras_ssl=None if o.site_tls is None else o.site_tls.server,
            )
            listeners = await open_listeners(s, edge_options)
            self.edge = EdgeRole(s, edge_options, listeners=listeners)
            await self.edge.start()
            self.traces = attach_traces(self)
            self._unsubscribe = self.replica.subscribe(self._on_changes)
            url, mg = s.online.service_urls, s.management
            token = o.online_token or mg.online_token
            http = self.online_http = self._online_client()
            if http is not None:
                token = None  # the certificate speaks for the appliance
            self.replicator = Replicator(
                self.replica, url, wait=o.replication_wait, token=token, client=http
            )
            self.replicator.start()
            self.link = ApplianceLink(
                url, self.registration(), interval=s.online.heartbeat_seconds, status=self._state,
                token=token, client=http,
            )  # fmt: skip
            self.link.summary = SummaryMaker(self)  # the dashboard's overview of the tenant
            self.link.start()
            self.self_health = start_self_health(self)
            await self._start_site()
            if o.serve_api:
                api = appliance_app(self)  # the management API and its dashboard
                self.api = await serve_asgi(api, mg.ip, mg.port, max_body=mg.max_request_bytes)
        except BaseException:
            await self.stop()
            raise

    async def _start_site(self) -> None:
        """Follow the site store (a site on etcd): gateway records change the running
        gateways as they arrive; this appliance's record says it is a member."""
        o = self.options
        if o.site is None or o.site_store is None or self.site_replica is None:
            return
        replica = SiteReplica(o.site.site, self.site_replica)
        self.site = SiteLink(o.site, o.site_store, replica)
        self._site_unsubscribe = self.site_replica.subscribe(self._on_site_changes)
        self.site.start()
        self._site_member = asyncio.create_task(self._site_record(self.site))
        self.pushed = PushedSettings(self.site, self.replica)
        self.pushed.start()

    async def _site_record(self, site: SiteLink) -> None:
        """This appliance's record in the site store, written as soon as the store takes it
        (in the background: an appliance starting while etcd is down serves calls at once)."""
        while True:
            try:
                await site.put("appliance", self.name, self.registration())
                return
            except SiteUnavailableError as exc:
                _log.warning("site record of %s not written yet: %s", self.name, exc)

    def _on_site_changes(self, changes: Sequence[Change]) -> None:
        if self.pushed is not None and self.site_replica is not None and pushed_kinds(changes):
            self.pushed.seed(self.site_replica)
        for change in changes:
            if change.kind == "gateway" and change.value is not None:
                task = asyncio.create_task(self._take_site_gateway(change.key, change.value))
                self._site_tasks.add(task)
                task.add_done_callback(self._site_tasks.discard)

    async def _take_site_gateway(self, name: str, keys: Mapping[str, Any]) -> None:
        async with self._gateway_lock:
            try:
                known = {g.name for g in self.settings.gateways}
                if name in known and gateway_keys(self.settings, name) == dict(keys):
                    return  # already running with it
                settings = with_gateway(self.settings, name, keys)
            except SettingsError as exc:
                _log.error("site record gateway/%s refused: %s", name, exc)
                return
            await self._take_gateway(settings, name)
        _log.info("gateway %s from the site store (revision %s)", name,
                  self.site.replica.revision if self.site else "?")  # fmt: skip

    async def stop(self) -> None:
        if self.pushed is not None:
            await self.pushed.stop()
            self.pushed = None
        if self._site_member is not None:
            self._site_member.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._site_member
            self._site_member = None
        if self.site is not None:
            await self.site.stop()
            self.site = None
        if self._site_unsubscribe is not None:
            self._site_unsubscribe()
            self._site_unsubscribe = None
        for task in list(self._site_tasks):
            task.cancel()
        if self.self_health is not None:
            await self.self_health.stop()
            self.self_health = None
        if self.api is not None:
            await self.api.stop()
            self.api = None
        for worker in (self.link, self.replicator):
            if worker is not None:
                await worker.stop()
        self.link = self.replicator = None
        if self.online_http is not None:
            await self.online_http.aclose()
            self.online_http = None
        if self.edge is not None:
            await self.edge.stop()
            self.edge = None
        if self.mediation is not None:
            await self.mediation.stop()
            self.mediation = None
        if self.traces is not None:
            self.traces.close()
            self.traces = None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    async def drain(self, deadline: float, poll: float = 0.1) -> int:
        """Maintenance (no new calls; the cloud hears it at once), then wait until the calls
        in progress have ended or ``deadline`` seconds have passed; the calls still up."""
        mediation = self.mediation
        if mediation is None:
            return 0
        mediation.enter_maintenance()
        if self.link is not None:  # the cloud learns it now: no new calls are sent here
            with contextlib.suppress(httpx.HTTPError, FeedError):
                await self.link.heartbeat()
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline
        while mediation.admission.active and loop.time() < end:
            await asyncio.sleep(poll)
        return mediation.admission.active

    async def leave(self) -> dict[str, Any]:
        """Leave the site (``appliance remove``, after the drain): no more heartbeats (they
        would register it again), its record deleted from the site store; it stays in
        maintenance until its process is stopped. :class:`~.site_link.SiteUnavailableError`
        when the site store cannot take the delete."""
        if self.mediation is not None:
            self.mediation.enter_maintenance()
        if self.link is not None:
            await self.link.stop()
            self.link = None
        revision = None
        if self.site is not None:
            revision = await self.site.delete("appliance", self.name)
        return {"name": self.name, "site_store_revision": revision, "state": self._state()}

    def close(self) -> None:
        """Close the replica and the token store (after :meth:`stop`)."""
        self.replica.close()
        if self.site_replica is not None:
            self.site_replica.close()
        self.access.close()
        if self._temp_pki is not None:
            shutil.rmtree(self._temp_pki, ignore_errors=True)
            self._temp_pki = None

    def _online_client(self) -> httpx.AsyncClient | None:
        """With an https ServiceURL: the HTTPS client presenting the appliance's certificate
        from the site PKI (made or renewed first); None for http."""
        if not uses_https(self.settings):
            return None
        if self.pki is None:
            if self.state_dir is None:
                self._temp_pki = tempfile.mkdtemp(prefix="hybridvoice-pki-")
                self.pki = PkiStore(Path(self._temp_pki))
            else:
                self.pki = PkiStore(self.state_dir / "pki")
        now = datetime.now(UTC)
        context = appliance_client_context(self.pki, self.settings, self.name, now)
        return httpx.AsyncClient(verify=context)

    # --- what the online service learns about us --------------------------------------------------
    def registration(self) -> dict[str, Any]:
        """The appliance as Register-CcAppliance describes it to the online service."""
        s = self.settings
        edge, ms = s.edge_server, s.mediation_server
        domain = s.common.default_domain
        return {
            "name": self.name,
            "site": s.common.site_name,
            "mediation_fqdn": ms.pool_name or f"mediation.{domain}",
            "edge_fqdn": edge.external_sip_pool_name or f"edge.{domain}",
            "edge_sip_host": edge.external_sip_ips[0],
            "edge_sip_port": edge.external_sip_port,
            "edge_sip_transport": edge.external_protocol,
            "mras_url": self.edge.media.mras_url if self.edge and self.edge.media else "",
            "version": __version__,
        }

    def _state(self) -> str:
        if self.self_health is not None and self.self_health.core.offline:
            return "offline"
        if self.mediation is not None and self.mediation.admission.maintenance:
            return "maintenance"
        return "online"

    # --- replicated settings ----------------------------------------------------------------------
    def _bypass_policy(self) -> BypassPolicy:
        """The tenant's network configuration from the replica, with the site's internal
        subnets (the tenant's when it names some, else ``[MediationServer] InternalSubnets``)."""
        cfg: Mapping[str, Any] = self.replica.get("network_config", "global") or {}
        subnets: Sequence[Any] = cfg.get("internal_subnets") or ()
        networks = tuple(ipaddress.ip_network(n, strict=False) for n in subnets)
        return BypassPolicy(
            enabled=bool(cfg.get("media_bypass_enabled", False)),
            always_bypass=bool(cfg.get("always_bypass", True)),
            internal_subnets=networks or tuple(self.settings.mediation_server.internal_subnets),
            edge_relays=edge_relay_addresses(self.settings),
            edge_relay_ports=edge_relay_ports(self.settings),
        )

    def _on_changes(self, changes: Sequence[Change]) -> None:
        if self.mediation is not None and any(c.kind == "network_config" for c in changes):
            policy = self._bypass_policy()
            self.mediation.set_bypass(policy)
            _log.info("media bypass now %s", "enabled" if policy.enabled else "disabled")

    # --- gateways at run time (hybridvoice gateway ...) ------------------------------------------
    def gateways(self) -> list[dict[str, Any]]:
        """Every gateway: address, enabled, OPTIONS health and RTT, calls."""
        mediation = self.mediation
        if mediation is None or mediation.trunks is None:
            return []
        return [gateway_row(g) for g in mediation.trunks.status()]

    async def put_gateway(
        self, name: str, changes: Mapping[str, Any], *, create: bool
    ) -> dict[str, Any]:
        """Add gateway ``name`` or change the settings keys in ``changes``, live: the next
        call, the next inbound request and its OPTIONS pinger see it; calls in progress keep
        their gateway. Saved in the state directory so that a restart keeps it.
        :class:`~.gateways.GatewayChangeError` when refused (nothing changes then).

        On a site on etcd the change is a write to the site store instead: every appliance,
        this one included, takes it from its watch (503 while the store cannot commit)."""
        if self.site is not None:
            return await self._put_site_gateway(name, changes, create=create)
        async with self._gateway_lock:  # one change at a time: none is lost
            settings = changed_settings(self.settings, name, changes, create=create)
            await self._take_gateway(settings, name)
        mediation = self.mediation
        saved = None
        if self.state_dir is not None:
            saved = self.state_dir / GATEWAYS_FILE
            save_gateways(saved, settings.gateways)
        where = f"saved in {saved}" if saved else "not saved (no state directory)"
        _log.info("gateway %s %s at run time; %s", name, "added" if create else "changed", where)
        row = next(g for g in self.gateways() if g["name"] == name) if mediation else {}
        return {**row, "saved_in": str(saved) if saved else None}

    async def _put_site_gateway(
        self, name: str, changes: Mapping[str, Any], *, create: bool
    ) -> dict[str, Any]:
        assert self.site is not None
        settings = changed_settings(self.settings, name, changes, create=create)
        try:
            revision = await self.site.put("gateway", name, gateway_keys(settings, name))
        except SiteUnavailableError as exc:
            raise GatewayChangeError(503, str(exc)) from None
        if not await self.site.applied(revision):
            _log.warning("gateway %s written at revision %d; not yet back through the watch",
                         name, revision)  # fmt: skip
        # the watch's task takes it here too: answer once it runs with it
        await asyncio.gather(*self._site_tasks, return_exceptions=True)
        row = next((g for g in self.gateways() if g["name"] == name), {})
        return {**row, "saved_in": f"site store revision {revision}"}

    async def _take_gateway(self, settings: Settings, name: str) -> None:
        """Run with ``settings``, whose gateway ``name`` is new or changed (the caller holds
        the gateway lock): the next call, inbound request and OPTIONS ping see it."""
        gateway = settings.gateway(name)
        mediation = self.mediation
        if mediation is not None and mediation.trunks is not None:
            await self._gateway_transport(gateway.protocol)
            resolved = await resolve_gateways([gateway])
            state = mediation.trunks.put(gateway, resolved.get(gateway.fqdn or "", ()))
            mediation.settings = settings
            if mediation.sides is not None and mediation.sides.peer_tls is not None:
                mediation.sides.peer_tls.set(peer_trust(settings.gateways))
            mediation.b2bua.gateway_changed(name)
            if mediation.health is not None:
                await mediation.health.watch(state)
        self.settings = settings

    async def _gateway_transport(self, kind: str) -> None:
        """A client transport of ``kind`` on the gateway side, for a gateway of a protocol
        no other gateway used so far (as the mediation role opens them at start)."""
        mediation = self.mediation
        assert mediation is not None
        endpoint = mediation.gateway_endpoint
        if endpoint is None or kind in mediation.gateway_transports:
            return
        host = self.settings.mediation_server.ip
        mediation.gateway_transports[kind] = await open_gateway_transport(
            endpoint, kind, host, self.options.client_ssl, mediation.sides
        )
        if self.traces is not None:  # the new transport's SIP is captured too
            self.traces.attach(endpoint)

    # --- status for the admin ---------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Roles, listeners, gateways and their health, calls now, the replica's version and
        lag, the link to the cloud (``hybridvoice appliance status``)."""
        listeners: list[dict[str, Any]] = []
        calls_now = 0
        gateways: list[dict[str, Any]] = []
        if self.mediation is not None:
            for side, endpoint in (
                ("mediation/edge-side", self.mediation.edge_endpoint),
                ("mediation/gateway-side", self.mediation.gateway_endpoint),
            ):
                listeners += _listeners(side, endpoint)
            calls_now = self.mediation.admission.active
            gateways = self.gateways()
        if self.edge is not None:
            listeners += _edge_listeners(self.edge)
        rep, link = self.replicator, self.link
        certificates = certificate_rows(self.options.pki_dir, datetime.now(UTC))
        return {
            "name": self.name,
            "site": self.settings.common.site_name,
            "version": __version__,
            "pid": os.getpid(),  # what a rolling update stops (mgmt.update_run)
            "state": self._state(),
            "roles": [r for r, up in (("edge", self.edge), ("mediation", self.mediation)) if up],
            "listeners": listeners,
            "gateways": gateways,
            "calls_now": calls_now,
            "call_limit": self.mediation.admission.limit if self.mediation else None,
            "media_bypass": self._bypass_policy().enabled,
            "replica": {
                "version": self.replica.version,
                "connected": rep.connected if rep else False,
                "lag_seconds": round(rep.lag, 3) if rep else None,
            },
            "online": {
                "url": link.base_url if link else self.settings.online.service_url,
                "auth": "certificate" if self.online_http is not None else "token",
                "registered": link.registered if link else False,
                "heartbeats": link.heartbeats if link else 0,
            },
            "certificates": certificates,
            "warnings": warnings(certificates),
            "health": None if self.self_health is None else self.self_health.status(),
            "site_store": None
            if self.site is None
            else {
                **self.site.status(),
                "pushed": self.pushed.pushed if self.pushed else 0,
                "pushed_waiting": self.pushed.waiting if self.pushed else 0,
                "seeded_version": self.pushed.seeded if self.pushed else 0,
            },
        }


def _listeners(role: str, endpoint: Endpoint | None) -> list[dict[str, Any]]:
    if endpoint is None:
        return []
    return [
        {"role": role, "transport": t.kind, "host": t.local[0], "port": t.local[1]}
        for t in endpoint.transports
    ]


def _edge_listeners(edge: EdgeRole) -> list[dict[str, Any]]:
    """The edge's listeners by side: external (toward the online service) and internal
    (toward the mediation role; client-only transports of that side are listed with it)."""
    rows = _listeners("edge", edge.endpoint)
    external = edge.external.local if edge.external is not None else None
    for row in rows:
        side = "external" if (row["host"], row["port"]) == external else "internal"
        row["role"] = f"edge/{side}-side"
    return rows + (edge.media.listener_rows() if edge.media is not None else [])
