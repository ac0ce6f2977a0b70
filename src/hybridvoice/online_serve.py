"""``hybridvoice online serve``: one online service instance as a process of its own.

The online part of ``hybridvoice up`` (:meth:`hybridvoice.app.Lab.start_online`: the tenant
provisioned once, the registrar, the proxy, the API), without the appliance. With etcd members
(``--etcd host:port ...`` or ``[Online] StoreEtcd``) the tenant, its change feed, the
registrations and the API tokens live in that cluster (:mod:`hybridvoice.online.store_kv`,
:mod:`~hybridvoice.online.registrar_shared`, :mod:`~hybridvoice.online.tokens_kv`): start
two or more instances on it, each with its own settings file (its own SIP and API
addresses), and they serve one tenant. Without members: SQLite, as ``up``.

It prints where it listens, then ``ready``; it stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from hybridvoice.cms.settings import Settings
    from hybridvoice.online.kv_bridge import KvBridge

__all__ = ["register_online_serve", "run_online"]

#: the tenant every instance of a cluster serves (one tenant per etcd cluster, for now)
TENANT = "default"


async def run_online(
    settings: Settings,
    state_dir: Path | None,
    *,
    etcd: tuple[str, ...] = (),
    console: Console,
    lab_users: bool = False,
) -> None:
    """Start the online service (on etcd when ``etcd`` or ``[Online] StoreEtcd`` names
    members), say where it listens, run until SIGINT or SIGTERM."""
    # the command line stays fast to start (--help): the service's modules load here
    from hybridvoice.app import Lab  # noqa: PLC0415
    from hybridvoice.mgmt.credentials import save_token  # noqa: PLC0415
    from hybridvoice.online.kv_bridge import KvBridge  # noqa: PLC0415
    from hybridvoice.online.registrar_shared import share_registrations  # noqa: PLC0415
    from hybridvoice.online.store_kv import KvTenantStore  # noqa: PLC0415
    from hybridvoice.online.tokens_kv import share_tokens  # noqa: PLC0415

    members = etcd or settings.online.store_etcd
    lab = Lab(settings, state_dir, lab_gateway=False, lab_users=lab_users)
    bridge: KvBridge | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if members:
            from hybridvoice.store.etcd_kv import EtcdStore  # noqa: PLC0415 - needs aetcd

            bridge = KvBridge(lambda: EtcdStore(list(members)))
            local: Path | str = ":memory:"
            if state_dir is not None:
                state_dir.mkdir(parents=True, exist_ok=True)
                local = state_dir / "online-local.db"  # the audit log and site roots
            store = KvTenantStore(bridge, local, tenant=TENANT)
            share_tokens(store)
            lab.tenant_store = store
        await lab.start_online()
        online = lab.online
        assert online is not None and online.registrar is not None
        if bridge is not None and lab.tenant_store is not None:
            assert isinstance(lab.tenant_store, KvTenantStore)
            share_registrations(online.registrar, lab.tenant_store)
            console.print(f"store: etcd {', '.join(members)} (tenant {TENANT})")
        else:
            where = "in memory (gone at exit)" if state_dir is None else str(state_dir)
            console.print(f"store: SQLite, {where}")
        for piece, address in lab.where():
            console.print(f"{piece}: {address}")
        if lab.admin_token is not None:
            console.print(f"admin token (valid on every instance) in {save_token(lab.admin_token)}")
        console.print("ready; stop with Ctrl-C or SIGTERM")
        await stop.wait()
    finally:
        await lab.stop()
        if bridge is not None:
            bridge.close()


def register_online_serve(online_app: typer.Typer) -> None:
    """``hybridvoice online serve``."""

    @online_app.command("serve")
    def serve(
        config: Annotated[
            Path, typer.Option(help="Settings file: [Online] and [Common] as for up")
        ],
        state_dir: Annotated[
            Path | None,
            typer.Option(
                help="Where this instance keeps its data (SQLite: the tenant; on etcd: its "
                "audit log). Default: in memory",
                metavar="DIR",
            ),
        ] = None,
        etcd: Annotated[
            list[str] | None,
            typer.Option(
                help="An etcd member's client address, host:port (repeat for each member); "
                "default: [Online] StoreEtcd, else SQLite",
            ),
        ] = None,
        lab_users: Annotated[
            bool,
            typer.Option(
                "--lab-users/--no-lab-users",
                help="Seed the lab users alice and bob (known password) into a new tenant",
            ),
        ] = False,
        log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "warning",
    ) -> None:
        """Run one online service instance (registrar, proxy, API) as its own process; with
        etcd members, several instances serve one tenant."""
        from hybridvoice.cms.settings import SettingsError, load_settings  # noqa: PLC0415
        from hybridvoice.cms.settings_online_store import etcd_members  # noqa: PLC0415
        from hybridvoice.mgmt.logs import LoggingSetupError, configure_logging  # noqa: PLC0415
        from hybridvoice.store.kv import StoreError  # noqa: PLC0415

        out, err = Console(soft_wrap=True), Console(stderr=True, soft_wrap=True)
        try:
            logs = None if state_dir is None else state_dir / "logs"  # for logs search
            configure_logging(log_level, "text", sys.stderr, directory=logs)
        except LoggingSetupError as exc:
            err.print(f"[red]cannot start:[/red] {exc}", highlight=False)
            raise typer.Exit(2) from exc
        try:
            members = etcd_members(etcd or [])
        except ValueError as exc:
            err.print(f"[red]cannot start:[/red] --etcd {exc}", highlight=False)
            raise typer.Exit(2) from exc
        try:
            settings = load_settings(config)
        except SettingsError as exc:
            err.print(f"[red]{config}: settings refused[/red]", highlight=False)
            for problem in exc.problems:
                err.print(f"  {problem}", highlight=False)
            raise typer.Exit(2) from exc
        except OSError as exc:
            err.print(f"[red]cannot read {config}:[/red] {exc.strerror or exc}")
            raise typer.Exit(2) from exc
        try:
            asyncio.run(
                run_online(settings, state_dir, etcd=members, console=out, lab_users=lab_users)
            )
        except KeyboardInterrupt:
            pass
        except (StoreError, OSError) as exc:
            err.print(f"[red]cannot start:[/red] {exc}", highlight=False)
            raise typer.Exit(1) from exc
