"""The one place where long-lived objects are built from settings and wired together.

It builds :class:`Lab`, the whole single-site deployment behind ``hybridvoice up`` (the
online service with a lab tenant, one appliance with every role, a lab gateway), and the lab
SIP responder behind ``hybridvoice sip serve``: the real endpoint (transports, transaction
layer) with the UA core (dialogs, INVITE sessions) that runs the RFC 3261 §8.2 request
checks, answers OPTIONS (§11.2) and turns calls away with 480, or with ``--answer`` answers
them (RFC 3264 offer/answer) and echoes their RTP until the BYE.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import errno
import re
import signal
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from rich.console import Console

from hybridvoice.cms.settings import PRIVILEGED_PORTS, Gateway, Listener, Settings, listeners
from hybridvoice.cms.template import LAB_GATEWAY_PORT
from hybridvoice.cms.tokens import TokenStore
from hybridvoice.lab import Responder, RtpEcho
from hybridvoice.mediation.assembly import open_sides
from hybridvoice.mediation.role import MediationRole, RoleOptions
from hybridvoice.mediation.routing import NO_GATEWAY_CONFIGURED
from hybridvoice.mgmt.appliance import Appliance
from hybridvoice.mgmt.appliance_setup import appliance_options, appliance_rows, needs_site_tls
from hybridvoice.mgmt.credentials import save_token
from hybridvoice.mgmt.dashboard import tenant_dashboard
from hybridvoice.mgmt.lab_tls import lab_gateway_context, lab_gateway_resolver
from hybridvoice.mgmt.listen_spec import ListenSpec, parse_listen
from hybridvoice.mgmt.metrics_mediation import serve_role_metrics
from hybridvoice.mgmt.online_tls import api_bind, online_api_tls, uses_https
from hybridvoice.mgmt.site_tls import SiteTls, speaks_tls
from hybridvoice.mgmt.traces import attach_mediation
from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.loop import tune_gc
from hybridvoice.net.pipe import LocalExchange
from hybridvoice.net.tls import RELOAD_INTERVAL
from hybridvoice.net.ua import UserAgent
from hybridvoice.online.assembly import open_sip
from hybridvoice.online.models import DialPlanRule, NetworkConfig, Site, User
from hybridvoice.online.service import OnlineOptions, OnlineService, auth_limits
from hybridvoice.online.store import TenantStore

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["LAB_PASSWORD", "LAB_PSTN_NUMBER", "LAB_USERS", "Lab", "LabGateway", "ListenError",
           "ListenSpec", "SiteTls", "default_state_dir", "parse_listen", "run_mediation",
           "run_responder", "speaks_tls"]  # fmt: skip


def _server_context(cert: str | None, key: str | None) -> ssl.SSLContext:
    if cert is None:
        raise ValueError("tls listeners need --tls-cert (and --tls-key unless the PEM holds it)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.num_tickets = 0  # sipsak and other SIP stacks stumble on TLS 1.3 tickets
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"tls-cert/tls-key: cannot load {cert}: {exc}") from exc
    return context


async def run_responder(
    listen: Sequence[str],
    *,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    console: Console | None = None,
    answer: bool = False,
) -> None:
    """Listen on every address of ``listen`` and answer until SIGINT/SIGTERM; with
    ``answer`` calls are answered and their media echoed instead of refused with 480."""
    specs = [parse_listen(text) for text in listen]
    server_ssl = (
        _server_context(tls_cert, tls_key) if any(s.transport == "TLS" for s in specs) else None
    )
    echo = await RtpEcho.open(specs[0].host) if answer and specs else None
    responder = Responder(answer=answer, echo=echo)
    endpoint = Endpoint()
    ua = UserAgent(endpoint, responder)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for spec in specs:
            try:
                transport = await endpoint.listen(
                    spec.transport,
                    spec.host,
                    spec.port,
                    server_ssl=server_ssl if spec.transport == "TLS" else None,
                )
            except OSError as exc:
                raise ValueError(f"listen {spec}: {exc.strerror or exc}") from exc
            if console is not None:
                host, port = transport.local
                console.print(f"listening on {spec.transport.lower()} {host}:{port}")
        if console is not None and echo is not None:
            console.print(f"echoing media on udp {specs[0].host}:{echo.port}")
        await stop.wait()
    finally:
        ua.close()
        await endpoint.close()
        if echo is not None:
            echo.close()
        answered = endpoint.counters.responses_out
        if console is not None and answered:
            summary = ", ".join(f"{n}x {s}" for s, n in sorted(answered.items()))
            console.print(f"answered: {summary}")
            if answer:
                console.print(
                    f"calls: {responder.calls_answered} answered, {responder.calls_ended} ended"
                )


async def run_mediation(
    settings: Settings,
    options: RoleOptions,
    *,
    gc_interval: float = 600.0,
    gc_log: bool = False,
    metrics: str | None = None,
) -> None:
    """``hybridvoice mediation serve``: the mediation role alone in its own process (benchmarks,
    demos). Prints ``READY`` with its ports once listening (after ``METRICS URL`` when
    ``metrics`` names a HOST:PORT to serve ``/metrics`` on), ``STATS`` with its call counters
    when SIGTERM/SIGINT stops it."""
    sides = await open_sides(settings, options)
    role = MediationRole(settings, options, sides=sides)
    await role.start()
    exporter = None if metrics is None else await serve_role_metrics(role, metrics)
    traces = attach_mediation(settings.traces, role)  # [Traces]: capture, HEP, MOS threshold
    collector = tune_gc(gc_interval, log=gc_log)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ports = {k: t.local[1] for k, t in sides.gateway_transports.items()}
    print(f"READY edge={sides.edge_transport.local[1]} gateway={ports}", flush=True)
    try:
        await stop.wait()
    finally:
        if collector is not None:
            collector.cancel()
        b = role.b2bua.stats
        print(f"STATS calls={b.calls} answered={b.answered} refused={b.refused} "
              f"failovers={b.failovers}", flush=True)  # fmt: skip
        await role.stop()
        if traces is not None:
            traces.close()
        if exporter is not None:
            await exporter.stop()


# --- hybridvoice up: the online service, one appliance and a lab gateway in one process ---------

#: the lab tenant's users: (user part, line number); every one gets :data:`LAB_PASSWORD`
LAB_USERS: Final = (("alice", "+15550100"), ("bob", "+15550101"))
LAB_PASSWORD: Final = "hybridvoice"
#: a number that is nobody's line: a PSTN call, answered by the lab gateway
LAB_PSTN_NUMBER: Final = "+15550199"


@dataclass(slots=True)
class LabGateway:
    """The built-in lab gateway: a UAS that answers every call and echoes its media."""

    endpoint: Endpoint
    ua: UserAgent
    echo: RtpEcho
    responder: Responder

    @classmethod
    async def start(
        cls, kind: str, host: str, port: int, server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
    ) -> LabGateway:  # fmt: skip
        echo = await RtpEcho.open(host)
        responder = Responder(answer=True, echo=echo)
        endpoint = Endpoint()
        ua = UserAgent(endpoint, responder, user="labgw")
        try:
            await endpoint.listen(kind, host, port, server_ssl=server_ssl, client_ssl=client_ssl)
        except OSError as exc:
            echo.close()
            await endpoint.close()
            raise ValueError(f"lab gateway: cannot listen on {kind} {host}:{port}: {exc}") from exc
        return cls(endpoint, ua, echo, responder)

    async def stop(self) -> None:
        self.ua.close()
        await self.endpoint.close()
        self.echo.close()


class Lab:
    """``hybridvoice up``: the online service with a lab tenant, one appliance with every
    role, and (unless the settings name real gateways) the built-in lab gateway."""

    def __init__(
        self,
        settings: Settings,
        state_dir: Path | None,
        *,
        lab_gateway: bool | None = None,
        lab_users: bool = True,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        wire: bool = False,
        tls_reload: float = RELOAD_INTERVAL,
    ) -> None:
        appliance_dir = None if state_dir is None else str(state_dir / "appliance")
        management = settings.management.model_copy(update={"state_directory": appliance_dir})
        self.settings = settings.model_copy(update={"management": management})
        #: where the tenant, the replica and the call records live; None: in memory
        self.state_dir = state_dir
        #: seed :data:`LAB_USERS` (known password) into a new tenant: the lab only
        self.lab_users = lab_users
        #: what does not stop the start but an admin should hear (printed by ``up``)
        self.warnings: list[str] = []
        #: TLS for the listeners and connections the settings ask TLS for (the online
        #: service toward the edge, edge <-> mediation, gateways)
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl
        #: no contexts given and a hop between roles speaks TLS: the site CA, made at start
        self.tls: SiteTls | None = None
        self.tls_reload = tls_reload
        #: SIP between the online service, edge and mediation (one process) goes through
        #: in-process pipes (:mod:`hybridvoice.net.pipe`); ``wire``: on loopback sockets,
        #: where a packet capture sees it
        self.exchange = None if wire else LocalExchange()
        self.online: OnlineService | None = None
        #: OnlineOptions fields to set beyond what the settings say (a fleet's detection
        #: window: heartbeat_timeout, appliance_timeout)
        self.online_overrides: dict[str, Any] = {}
        #: the tenant store the online service gets (None: SQLite in the state directory)
        self.tenant_store: TenantStore | None = None
        self.appliance: Appliance | None = None
        #: the lab admin token, valid on the online API and the appliance API (made again at
        #: each start; ``hybridvoice up`` saves it where the CLI finds it)
        self.admin_token: str | None = None
        self.gateway: LabGateway | None = None
        #: the gateway the built-in lab gateway stands in for: by default the one at
        #: 127.0.0.1:LAB_GATEWAY_PORT (what ``hybridvoice init`` writes); ``lab_gateway``
        #: True: the first gateway, False: none
        self.lab_gateway: Gateway | None = None
        gateways = self.settings.gateways
        if lab_gateway is None:
            lab = [g for g in gateways if g.ip == "127.0.0.1" and g.port == LAB_GATEWAY_PORT]
            self.lab_gateway = lab[0] if lab else None
        elif lab_gateway and gateways:
            self.lab_gateway = gateways[0]

    async def start(self, timeout: float = 10.0) -> None:
        """Everything, in order; ready when the appliance is registered and replicated.

        First every listen address is checked (:meth:`check_listeners`): a clash with another
        program raises :class:`ListenError` naming the setting, before anything started.
        When a hop between the roles speaks TLS the site CA and the roles' certificates are
        made (or renewed) first, in ``<state_dir>/pki`` (:class:`SiteTls`)."""
        # the online API over HTTPS, or MRAS (always MTLS): site certificates too
        if self.tls is None and needs_site_tls(self.settings, self.server_ssl):
            pki = None if self.state_dir is None else self.state_dir / "pki"
            self.tls = SiteTls.ensure(self.settings, pki)
            self.tls.watch(self.tls_reload)
        try:
            self.check_listeners()
            await self.start_online()
            await self.start_appliance()
            await self._ready(timeout)
        except OSError as exc:  # taken since the check: still name the setting
            await self.stop()
            listener = _listener_in(exc, listeners(self.settings))
            if listener is None:
                raise
            raise ListenError(listener, exc) from exc
        except BaseException:
            await self.stop()
            raise

    async def start_online(self) -> None:
        """The online service, with the lab tenant provisioned (once per state directory)."""
        s = self.settings
        api_host, api_port = api_bind(s)  # the management interface, never the wildcard
        api_ssl, auth = (None, None)
        if self.tls is not None and uses_https(s):
            api_tls, auth = online_api_tls(self.tls.store, s, datetime.datetime.now(datetime.UTC))
            api_ssl = api_tls.server  # renewed without a restart, as the SIP listeners' are
            self.tls.follow(api_tls, self.tls_reload)
        host = s.online.sip_addresses[0]
        port = s.online.sip_port
        store: Path | str = ":memory:"
        if self.state_dir is not None:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            store = self.state_dir / "online.db"
        options = OnlineOptions(
            # clients: UDP and TCP (or TLS, when the appliances reach us over TLS)
            sip=[
                ("UDP", host, port),
                ("TLS" if s.online.sip_protocol == "TLS" else "TCP", host, port),
            ],
            server_ssl=self._ssl("online")[0],
            client_ssl=self._ssl("online")[1],
            api_host=api_host,
            api_port=api_port,
            api_ssl=api_ssl,
            appliance_auth=auth,
            # toward the edges' MRAS: the certificate the edge knows the online service by
            mras_ssl=None if self.tls is None else self.tls.contexts["online"].client,
            store=store,
            digest_algorithms=s.online.digest_algorithms,
            trusted_peers=tuple(str(n) for n in s.online.trusted_peers),
            auth_limits=auth_limits(s.online),
            exchange=self.exchange,
            max_request_bytes=s.management.max_request_bytes,
            limits=s.sip_limits.stream_limits,  # [SipLimits] for its listeners
            extend_api=self._tenant_dashboard,  # docs/dashboard.md
        )
        options = dataclasses.replace(options, **self.online_overrides)
        # its SIP endpoint and listeners first: the service receives them ready
        sip = await open_sip(options)
        self.online = OnlineService(options, sip=sip, store=self.tenant_store)
        self._provision(self.online.store)  # first: the registrar takes the realm
        self.admin_token = _fresh_token(self.online.store.access.tokens, LAB_ADMIN, "admin")
        await self.online.start()

    async def start_appliance(self) -> None:
        """The lab gateway (when there is one) and the appliance; it registers with the
        online service of the settings, in this process or another."""
        s = self.settings
        if self.state_dir is not None:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        gw = self.lab_gateway
        if gw is not None:
            tls = lab_gateway_context(self.tls, gw) if gw.protocol == "TLS" else (None, None)
            self.gateway = await LabGateway.start(gw.protocol, gw.ip or "127.0.0.1", gw.port, *tls)
        options = appliance_options(self.tls, server_ssl=self.server_ssl,
                                    client_ssl=self.client_ssl, exchange=self.exchange,
                                    pipes=self.exchange is not None)  # fmt: skip
        if self.online is not None:  # the dashboard's overview lists the tenant's appliances
            options.fleet = self.online.store.appliances
            options.fleet_summaries = self.online.summaries.rows
        self.appliance = Appliance(s, options)
        self._appliance_tokens(self.appliance)
        await self.appliance.start()
        if self.appliance.traces is not None and self.online is not None:  # the callers' hop
            self.appliance.traces.attach(self.online.endpoint)
        sides = None if self.appliance.mediation is None else self.appliance.mediation.sides
        if self.gateway is not None and sides is not None:  # it reaches the role by its FQDN
            self.gateway.ua.resolver = lab_gateway_resolver(s, sides.tls_host)

    def _tenant_dashboard(self, api: FastAPI) -> None:
        if self.online is not None:
            tenant_dashboard(api, self.online)

    def _ssl(self, part: str) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
        """The server and client context of ``part`` (``online``, ``appliance``)."""
        tls = None if self.tls is None or self.server_ssl else self.tls.contexts[part]
        return (self.server_ssl, self.client_ssl) if tls is None else (tls.server, tls.client)

    def _appliance_tokens(self, appliance: Appliance) -> None:
        """The appliance's own token toward the online service of this process, and the lab
        admin token on the appliance's API too (one token for the CLI)."""
        if self.online is not None:
            tokens = self.online.store.access.tokens
            appliance.options.online_token = _fresh_token(tokens, appliance.name, "appliance")
        own = appliance.access.tokens
        if self.admin_token is None:
            self.admin_token = _fresh_token(own, LAB_ADMIN, "admin")
        else:
            own.revoke_named(LAB_ADMIN)
            own.adopt(self.admin_token, LAB_ADMIN, "admin")

    def _provision(self, store: TenantStore) -> None:
        """The tenant, once (a kept state directory keeps what admins changed): the settings'
        SIP domains, the site, a dial plan for ten-digit numbers, media bypass off, and in the
        lab (:attr:`lab_users`) two users with line numbers and a known password."""
        if store.domains():
            return
        s = self.settings
        for domain in s.common.sip_domains:
            store.add_domain(domain)
        realm = s.common.default_domain
        edge_fqdn = s.edge_server.external_sip_pool_name or f"edge.{realm}"  # as it registers
        store.new_site(Site(name=s.common.site_name, edge_fqdn=edge_fqdn, country_code="1"))
        for user, number in LAB_USERS if self.lab_users else ():
            store.set_user(
                User(
                    sip_uri=f"sip:{user}@{realm}",
                    display_name=user.capitalize(),
                    enterprise_voice_enabled=True,
                    line_uri=f"tel:{number}",
                    hybrid_pstn_site=s.common.site_name,
                ).with_password(LAB_PASSWORD, realm)
            )
        store.set_dialplan_rule(
            DialPlanRule(name="NANP10", pattern=r"(\d{10})", translation="+1$1", priority=1)
        )
        store.set_network_config(
            NetworkConfig(media_bypass_enabled=False, internal_subnets=("127.0.0.0/8",))
        )

    def check_listeners(self) -> None:
        """Before anything starts: TLS listeners need a certificate (``ValueError`` naming the
        keys), every listen address must be free (:class:`ListenError` naming the key, the
        address and the OS reason). The bypass service only warns: without it calls are
        anchored, as the mediation role decides."""
        s, found = self.settings, list(listeners(self.settings))
        if self.lab_gateway is not None:
            gw = self.lab_gateway
            found.append(Listener(f"{gw.name}.Port", gw.protocol, gw.ip or "127.0.0.1", gw.port))
        if self.server_ssl is None and self.tls is None:  # no TLS hop between the roles
            if s.mediation_server.tls_port is not None:
                self.warnings.append(
                    f"[MediationServer] TLSPort {s.mediation_server.tls_port}: not listening, "
                    "no certificate (gateways on TLS cannot reach this appliance until it has "
                    "one); set TLSPort = false to say so"
                )
            found = [x for x in found if x.transport != "TLS"]
        for listener in found:
            try:
                probe_listener(listener)
            except ListenError as exc:
                if listener.key != "MediationServer.BypassServicePort":
                    raise
                self.warnings.append(f"{exc}; calls are anchored without the bypass service")

    async def _ready(self, timeout: float) -> None:
        """Until the appliance is registered and its replica holds the tenant."""
        assert self.online is not None and self.appliance is not None
        link, replicator = self.appliance.link, self.appliance.replicator
        assert link is not None and replicator is not None
        async with asyncio.timeout(timeout):
            while not link.registered:
                await asyncio.sleep(0.02)
            await replicator.synced(self.online.store.version, timeout)

    async def stop(self) -> None:
        if self.appliance is not None:
            await self.appliance.stop()
            self.appliance.close()
            self.appliance = None
        if self.gateway is not None:
            await self.gateway.stop()
            self.gateway = None
        if self.online is not None:
            await self.online.stop()
            self.online = None
        if self.tls is not None:
            await self.tls.stop()
            self.tls = None

    def where(self) -> list[tuple[str, str]]:
        """(piece, address) rows: where everything listens."""
        rows: list[tuple[str, str]] = []
        if self.online is not None:
            for t in self.online.transports:
                rows.append(("online SIP (registrar, proxy)", f"{t.kind.lower()}:{_hp(t.local)}"))
            if self.online.api is not None:
                rows.append(("online API", self.online.api.url))
        if self.appliance is not None:
            rows += appliance_rows(self.appliance)
        if self.gateway is not None:
            for t in self.gateway.endpoint.transports:
                rows.append(("lab gateway", f"{t.kind.lower()}:{_hp(t.local)}"))
            rows.append(("lab gateway media echo", f"udp:127.0.0.1:{self.gateway.echo.port}"))
        if self.tls is not None:  # MTLS between the roles: `hybridvoice ca status`
            rows.append(("site CA (certificates for MTLS)", str(self.tls.store.directory)))
        return rows


LAB_ADMIN: Final = "lab-admin"
"""The name of the admin token ``hybridvoice up`` makes."""


def _fresh_token(tokens: TokenStore, name: str, scope: str) -> str:
    """A new token called ``name``; the ones made by earlier starts are revoked."""
    tokens.revoke_named(name)
    return tokens.create(name, scope)[1]


def _hp(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ListenError(ValueError):
    """A listen address is not free: the setting, the address, the OS reason and the fix."""

    def __init__(self, listener: Listener, error: OSError) -> None:
        self.listener = listener
        self.error = error
        reason = error.strerror or str(error)
        code = errno.errorcode.get(error.errno or 0, "")
        super().__init__(
            f"{listener.setting}: cannot listen on {listener}: {reason}"
            f"{f' ({code})' if code else ''}; {_advice(listener, error.errno)}"
        )


def _advice(listener: Listener, code: int | None) -> str:
    setting = listener.setting
    if code == errno.EADDRINUSE:
        return (f"another program (another hybridvoice up?) holds it: stop that, or set "
                f"{setting} to a free port")  # fmt: skip
    if code in (errno.EACCES, errno.EPERM) and 0 < listener.port < PRIVILEGED_PORTS:
        return f"ports below {PRIVILEGED_PORTS} need privilege: set {setting} to one above"
    if code == errno.EADDRNOTAVAIL:
        section = setting.split("]")[0] + "]"
        return f"{listener.host} is not an address of this host: change the IP of {section}"
    return f"check {setting} and the address of its section"


def _listener_in(error: OSError, found: Sequence[Listener]) -> Listener | None:
    """The listener whose address a bind error names (asyncio: ``('127.0.0.1', 5068)``)."""
    text = str(error)
    return next((x for x in found if f"'{x.host}', {x.port})" in text), None)


def probe_listener(listener: Listener) -> None:
    """Bind ``listener``'s address and let it go, as the role will (TCP with SO_REUSEADDR,
    as asyncio's servers do); :class:`ListenError` when the OS refuses."""
    if listener.port == 0:
        return
    family = socket.AF_INET6 if ":" in listener.host else socket.AF_INET
    kind = socket.SOCK_DGRAM if listener.socket_kind == "udp" else socket.SOCK_STREAM
    try:
        with socket.socket(family, kind) as probe:
            if kind == socket.SOCK_STREAM:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((listener.host, listener.port))
    except OSError as exc:
        raise ListenError(listener, exc) from exc


def default_state_dir(settings: Settings, *, lab: bool) -> Path:
    """Where ``hybridvoice up`` keeps its data unless told: the per-user data directory
    (platformdirs: ``~/.local/share/hybridvoice`` on Linux, honouring ``XDG_DATA_HOME``),
    ``lab/`` for the lab, ``sites/<SiteName>/`` for settings of a site, so that a lab and a
    real site never share a tenant."""
    import platformdirs  # noqa: PLC0415 - keep the CLI's start fast

    root = Path(platformdirs.user_data_dir("hybridvoice", appauthor=False))
    if lab:
        return root / "lab"
    return root / "sites" / re.sub(r"[^A-Za-z0-9_.-]", "_", settings.common.site_name)


async def run_up(
    settings: Settings,
    state_dir: Path | None,
    *,
    console: Console,
    lab_gateway: bool | None = None,
    lab_users: bool = True,
    wire: bool = False,
) -> None:
    """``hybridvoice up``: start :class:`Lab`, say where everything is, run until SIGINT/SIGTERM.

    ``state_dir`` keeps the tenant, the replica and the call records across restarts (None:
    in memory, gone at exit); ``lab_users`` seeds alice and bob into a new tenant."""
    import time  # noqa: PLC0415

    from rich.table import Table  # noqa: PLC0415

    started = time.monotonic()
    where = "in memory (gone when up stops)" if state_dir is None else str(state_dir)
    console.print(f"state: {where}")
    lab = Lab(settings, state_dir, lab_gateway=lab_gateway, lab_users=lab_users, wire=wire)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        with console.status("starting the online service, the appliance and the lab gateway"):
            await lab.start()
        collector = tune_gc()  # young-generation passes only: no multi-second pauses
        table = Table(title=f"hybridvoice up: ready in {time.monotonic() - started:.2f} s")
        table.add_column("piece")
        table.add_column("listens on")
        for piece, address in lab.where():
            table.add_row(piece, address)
        console.print(table)
        for warning in lab.warnings:
            console.print(f"[yellow]warning:[/yellow] {warning}")
        if not lab.settings.gateways and NO_GATEWAY_CONFIGURED not in lab.warnings:
            console.print(f"[yellow]warning:[/yellow] {NO_GATEWAY_CONFIGURED}")
        _print_next_steps(lab, console)
        if lab.admin_token is not None:
            saved = save_token(lab.admin_token)
            console.print(f"admin token (for the CLI and both APIs) in {saved}")
        if state_dir is not None:
            console.print(f"logs in {state_dir / 'logs'} (hybridvoice logs search)")
        console.print(f"data in {where}; stop with Ctrl-C")
        await stop.wait()
        if collector is not None:
            collector.cancel()
    finally:
        await lab.stop()


def _print_next_steps(lab: Lab, console: Console) -> None:
    s = lab.settings
    domain = s.common.default_domain
    sip_host, sip_port = s.online.sip_addresses[0], s.online.sip_port
    if not lab.lab_users:
        console.print(
            f"no lab users (settings of a real site): add users with "
            f"hybridvoice user set sip:NAME@{domain} --line-uri tel:+NUMBER --site "
            f"{s.common.site_name}; registrar/outbound proxy {sip_host}:{sip_port}"
        )
        _print_dashboard(lab, console)
        return
    console.print(
        f"lab users: {', '.join(f'{u}@{domain} ({n})' for u, n in LAB_USERS)}, "
        f"password [bold]{LAB_PASSWORD}[/bold] (as seeded into a new tenant)"
    )
    console.print(
        f"try:   hybridvoice test-call --from alice --to {LAB_PSTN_NUMBER}\n"
        f"or a softphone: user alice, domain {domain}, password {LAB_PASSWORD}, "
        f"registrar/outbound proxy {sip_host}:{sip_port} (UDP or TCP); dial {LAB_PSTN_NUMBER}"
    )
    _print_dashboard(lab, console)


def _print_dashboard(lab: Lab, console: Console) -> None:
    api = None if lab.appliance is None else lab.appliance.api
    tenant = None if lab.online is None or lab.online.api is None else lab.online.api.url
    if api is not None:  # docs/dashboard.md; log in with the admin token below
        also = "" if tenant is None else f"; the tenant's: {tenant}/"
        console.print(f"dashboard: {api.url}/ (this appliance{also}; log in with the admin token)")
