"""``hybridvoice up --config FLEET.toml``: a whole tenant of several sites on one host.

The assembly: it checks every listen address of the plan (:mod:`hybridvoice.cms.fleet_plan`),
starts the online service in this process (:class:`hybridvoice.app.Lab`'s online part, with
the fleet's detection window), provisions the tenant's sites and users (once: a kept state
directory keeps what admins changed), runs a lab gateway where a site asks for one, writes one
settings file per appliance, and starts each appliance as its own process (``hybridvoice
appliance serve``: its token toward the online service and the lab admin token in its
environment, never in a file), supervised by :mod:`.children`. Ready when every appliance is
registered and online at the online service.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console

from hybridvoice.app import Lab, LabGateway, ListenError, probe_listener
from hybridvoice.cms.fleet_plan import AppliancePlan, FleetPlan
from hybridvoice.cms.listeners import Listener
from hybridvoice.cms.template import render_settings
from hybridvoice.mgmt.credentials import save_token
from hybridvoice.net.loop import tune_gc
from hybridvoice.online.models import Site, User
from hybridvoice.online.store import TenantStore

from .children import ChildCommand, ChildProcesses
from .supervisor import Report, describe_exit

__all__ = ["ONLINE_TOKEN_ENV", "Fleet", "FleetListenError", "FleetStartError", "appliance_command",
           "run_fleet_up"]  # fmt: skip

#: the environment variables ``hybridvoice appliance serve`` reads its tokens from
ONLINE_TOKEN_ENV = "HYBRIDVOICE_ONLINE_TOKEN"
ADMIN_TOKEN_ENV = "HYBRIDVOICE_ADMIN_TOKEN"


class FleetStartError(RuntimeError):
    """An appliance did not come up: which one, why, and the end of its log."""


def appliance_command(config: Path, state_dir: Path) -> list[str]:
    """The command line of one appliance process."""
    return [
        sys.executable, "-m", "hybridvoice", "appliance", "serve",
        "--config", str(config), "--state-dir", str(state_dir),
    ]  # fmt: skip


class FleetListenError(ValueError):
    """A listen address of the fleet is taken: the fleet key, the address, the OS reason and
    the fix."""


def _fix(key: str) -> str:
    if key.startswith("Online."):
        return f"change [Online] {key.partition('.')[2]}"
    if key.startswith("Site["):
        return f"change {key}"
    if ".MediationServer.MediaPort" in key:
        return "move [Fleet] MediaPortStart"
    return "move [Fleet] BasePort (every appliance's ports follow it)"


def _probe(listener: Listener) -> None:
    """:func:`hybridvoice.app.probe_listener`; :class:`FleetListenError` naming the fleet key
    when the OS refuses."""
    try:
        probe_listener(listener)
    except ListenError as exc:
        reason = exc.error.strerror or str(exc.error)
        raise FleetListenError(
            f"{listener.key}: cannot listen on {listener}: {reason}; another program holds "
            f"it (another hybridvoice up?): stop that, or {_fix(listener.key)}"
        ) from exc.error


class Fleet:
    """The online service, the lab gateways and one process per appliance."""

    def __init__(
        self,
        plan: FleetPlan,
        state_dir: Path | None,
        *,
        report: Callable[[Report], None] | None = None,
        command: Callable[[Path, Path], list[str]] = appliance_command,
        grace: float = 40.0,
    ) -> None:
        self.plan = plan
        #: where the tenant and each appliance's state live; None: a temporary directory,
        #: removed at :meth:`stop`
        self.state_dir = state_dir
        self._temp: str | None = None
        #: what the supervisor reported so far (started, died, stopped), oldest first
        self.reported: list[Report] = []
        self._report = report
        self.command = command
        self.grace = grace
        self.lab: Lab | None = None
        self.gateways: dict[str, LabGateway] = {}  # gateway name -> lab gateway
        self.children: ChildProcesses | None = None
        self.admin_token: str | None = None

    def report(self, item: Report) -> None:
        self.reported.append(item)
        if self._report is not None:
            self._report(item)

    @property
    def store(self) -> TenantStore:
        assert self.lab is not None and self.lab.online is not None
        return self.lab.online.store

    async def start(self, timeout: float = 90.0) -> None:
        """Everything, in order; ready when every appliance is online at the online service.
        :class:`FleetListenError` (an address taken, before anything started) or
        :class:`FleetStartError` (an appliance died or did not register in ``timeout``)."""
        for listener in self.plan.listeners():
            _probe(listener)
        root = self.state_dir
        if root is None:
            self._temp = tempfile.mkdtemp(prefix="hybridvoice-fleet-")
            root = Path(self._temp)
        try:
            await self._start_online(None if self.state_dir is None else root / "online")
            await self._start_gateways()
            await self._start_appliances(root / "appliances")
            await self._ready(timeout)
        except BaseException:
            await self.stop()
            raise

    async def _start_online(self, state_dir: Path | None) -> None:
        plan = self.plan
        lab = self.lab = Lab(plan.online_settings, state_dir, lab_gateway=False, lab_users=False)
        lab.online_overrides = {
            "heartbeat_timeout": plan.heartbeat_timeout,
            "appliance_timeout": plan.appliance_timeout,
        }
        await lab.start_online()
        self.admin_token = lab.admin_token
        self._provision(self.store)

    def _provision(self, store: TenantStore) -> None:
        """The sites as the description says; each user once (an existing user is left as an
        admin may have changed it)."""
        realm = self.plan.description.domain
        for site in self.plan.sites:
            edge_fqdn = f"edge.{realm}"  # what each of its appliances registers
            wanted = Site(name=site.name, edge_fqdn=edge_fqdn, country_code=site.country_code)
            old = store.get_site(site.name)
            if old is None:
                store.new_site(wanted)
            elif old.country_code != site.country_code:
                store.set_site(old.model_copy(update={"country_code": site.country_code}))
        for user in self.plan.users:
            if store.get_user(user.sip_uri) is not None:
                continue
            name = user.sip_uri.removeprefix("sip:").partition("@")[0]
            store.set_user(
                User(
                    sip_uri=user.sip_uri,
                    display_name=name.capitalize(),
                    enterprise_voice_enabled=True,
                    line_uri=None if user.number is None else f"tel:{user.number}",
                    hybrid_pstn_site=user.site,
                    international_calls_allowed=user.international,
                ).with_password(user.password, realm)
            )

    async def _start_gateways(self) -> None:
        for lab in self.plan.lab_gateways:
            g = lab.gateway
            self.gateways[g.name] = await LabGateway.start(g.protocol, g.ip or "127.0.0.1", g.port)

    async def _start_appliances(self, root: Path) -> None:
        tokens = self.store.access.tokens
        commands: dict[str, ChildCommand] = {}
        for appliance in self.plan.appliances:
            where = root / appliance.name
            where.mkdir(parents=True, exist_ok=True)
            config = where / "settings.toml"
            config.write_text(render_settings(appliance.settings), encoding="utf-8")
            tokens.revoke_named(appliance.name)  # the one of an earlier start
            token = tokens.create(appliance.name, "appliance")[1]
            env = {ONLINE_TOKEN_ENV: token}
            if self.admin_token is not None:
                env[ADMIN_TOKEN_ENV] = self.admin_token
            commands[appliance.name] = ChildCommand(
                self.command(config, where / "state"), where / "appliance.log", env
            )
        self.children = ChildProcesses(commands, self.report, grace=self.grace)
        await self.children.start()

    async def _ready(self, timeout: float) -> None:
        children = self.children
        assert children is not None
        deadline = time.monotonic() + timeout
        waiting = [a.name for a in self.plan.appliances]
        while waiting:
            for name in list(waiting):
                child = children.supervisor.children[name]
                if child.state == "exited":
                    raise FleetStartError(self._died(name, child.code))
                found = self.store.get_appliance(name)
                if found is not None and found.status == "online":
                    waiting.remove(name)
            if waiting and time.monotonic() > deadline:
                raise FleetStartError(
                    f"not registered with the online service within {timeout:g} s: "
                    f"{', '.join(waiting)} (logs: {self.log_of(waiting[0])})"
                )
            await asyncio.sleep(0.05)

    def log_of(self, name: str) -> Path:
        assert self.children is not None
        return self.children.commands[name].log

    def _died(self, name: str, code: int | None) -> str:
        log = self.log_of(name)
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
        how = describe_exit(code) if code is not None else "exited"
        return f"appliance {name} {how} while starting ({log}):\n{tail}"

    async def stop(self) -> None:
        """Every appliance by PID (SIGTERM, SIGKILL after the grace), the lab gateways, the
        online service."""
        if self.children is not None:
            await self.children.stop()
            self.children = None
        for gateway in self.gateways.values():
            await gateway.stop()
        self.gateways.clear()
        if self.lab is not None:
            await self.lab.stop()
            self.lab = None
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)
            self._temp = None

    def where(self) -> list[tuple[str, str]]:
        """(piece, address) rows: the online service, each appliance, each lab gateway, and
        what each site's gateways trunk to."""
        rows = [] if self.lab is None else list(self.lab.where())
        for site in self.plan.sites:
            for appliance in self.plan.of_site(site.name):
                pid = None if self.children is None else self.children.pid(appliance.name)
                piece = f"{site.name} / {appliance.name}" + (f" (pid {pid})" if pid else "")
                rows.append((piece, _appliance_row(appliance)))
            names = ", ".join(g.name for g in site.gateway)
            rows.append((f"{site.name}: {names} trunk to", _trunks(self.plan.of_site(site.name))))
        for lab in self.plan.lab_gateways:
            gateway = self.gateways.get(lab.gateway.name)
            if gateway is not None:
                for t in gateway.endpoint.transports:
                    rows.append((f"{lab.site}: lab gateway {lab.gateway.name}",
                                 f"{t.kind.lower()}:{t.local[0]}:{t.local[1]}"))  # fmt: skip
        return rows


def _trunks(appliances: Sequence[AppliancePlan]) -> str:
    """``udp 127.0.0.1: 23004 23014; tcp 127.0.0.1: 23003 23013``: where a site's gateways
    send calls (every mediation role of the site)."""
    parts = []
    for kind, index in (("udp", 2), ("tcp", 1)):
        ports = [a.gateway_side[index] for a in appliances if a.gateway_side[index]]
        if ports:
            parts.append(f"{kind} {appliances[0].gateway_side[0]}: {' '.join(map(str, ports))}")
    return "; ".join(parts)


def _appliance_row(appliance: AppliancePlan) -> str:
    s = appliance.settings
    edge, ms = s.edge_server, s.mediation_server
    gateways = "/".join(str(p) for p in (ms.udp_port, ms.tcp_port) if p)
    return (
        f"edge {edge.external_protocol.lower()}:{edge.external_sip_ips[0]}:"
        f"{edge.external_sip_port}, gateways udp/tcp :{gateways}, API :{s.management.port}"
    )


async def run_fleet_up(plan: FleetPlan, state_dir: Path | None, *, console: Console) -> None:
    """Start :class:`Fleet`, print where everything is, run until SIGINT/SIGTERM, then stop
    every appliance by PID."""
    from rich.table import Table  # noqa: PLC0415

    started = time.monotonic()
    where = "in memory (gone when up stops)" if state_dir is None else str(state_dir)
    console.print(f"state: {where}")

    def report(item: Report) -> None:
        if item.problem:
            console.print(f"[yellow]warning:[/yellow] {item.text}", highlight=False)
        else:
            console.print(item.text, highlight=False)

    fleet = Fleet(plan, state_dir, report=report)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    count = len(plan.appliances)
    sites = len(plan.sites)
    try:
        with console.status(f"starting the online service and {count} appliances of {sites} "
                            "sites"):  # fmt: skip
            if not await _started_unless_stopped(fleet, stop):
                console.print("stopped while starting: every appliance started so far is stopped")
                return
        collector = tune_gc()
        table = Table(title=f"hybridvoice up: {sites} sites, {count} appliance processes, ready "
                            f"in {time.monotonic() - started:.2f} s")  # fmt: skip
        table.add_column("piece")
        table.add_column("listens on")
        for piece, address in fleet.where():
            table.add_row(piece, address)
        console.print(table)
        _print_users(plan, console)
        if fleet.admin_token is not None:
            saved = save_token(fleet.admin_token)
            console.print(f"admin token (for the CLI, the online API and every appliance's API) "
                          f"in {saved}")  # fmt: skip
        console.print(f"appliance logs under {_logs_root(fleet, state_dir)}; stop with Ctrl-C")
        await stop.wait()
        console.print("stopping: every appliance drains and stops (SIGTERM by PID)")
        if collector is not None:
            collector.cancel()
    finally:
        await fleet.stop()


async def _started_unless_stopped(fleet: Fleet, stop: asyncio.Event) -> bool:
    """Start ``fleet``; False when ``stop`` is set first (Ctrl-C while 50 appliances start):
    the start is cancelled and what it started is stopped (:meth:`Fleet.start` does that on
    any way out). Start errors are raised."""
    starting = asyncio.create_task(fleet.start())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not starting.done():
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        return False
    starting.result()
    return True


def _logs_root(fleet: Fleet, state_dir: Path | None) -> str:
    if state_dir is not None:
        return str(state_dir / "appliances")
    return "a temporary directory" if fleet._temp is None else f"{fleet._temp}/appliances"


def _print_users(plan: FleetPlan, console: Console) -> None:
    online = plan.online_settings.online
    rows: Sequence[str] = [
        f"{u.sip_uri.removeprefix('sip:')} ({u.site}{', ' + u.number if u.number else ''})"
        for u in plan.users
    ]
    if rows:
        console.print(f"users (seeded once into a new tenant): {'; '.join(rows)}", highlight=False)
    console.print(
        f"registrar/outbound proxy {online.sip_addresses[0]}:{online.sip_port} (UDP or TCP); "
        "each user's PSTN calls break out at its own site's gateways",
        highlight=False,
    )
