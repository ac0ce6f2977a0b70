"""``hybridvoice appliance serve``: one appliance (edge, mediation, its settings replica, its
API and health monitor) as its own process, registered with the online service its settings
name (``[Online] ServiceURL``).

Several appliances of one site run on one host side by side, each with its own settings file
(ports, ``[Common] ServerName``) and state directory. On start it prints where it listens and
a ``READY`` line; SIGTERM (or SIGINT) drains it (maintenance: the cloud sends no new calls,
calls in progress finish or the drain deadline passes), then stops every role. Assembly code:
it builds the appliance with the helpers ``hybridvoice up`` uses too (:mod:`.appliance_setup`).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hybridvoice.cms.edge_names import appliance_name
from hybridvoice.cms.settings import Settings
from hybridvoice.cms.tokens import TokenError
from hybridvoice.net.loop import tune_gc

from .appliance import Appliance
from .appliance_setup import appliance_options, appliance_rows, site_tls_for
from .site_link import SiteConfig, open_site_store

__all__ = ["ServeOptions", "admin_token", "appliance_state_dir", "run_appliance", "with_state_dir"]

ADMIN_TOKEN_FILE = "admin-token"
"""In the state directory: the admin token an appliance made on its first start (mode 0600)."""
SITE_ADMIN = "site-admin"
"""The name under which a given ``--admin-token`` is kept."""
DRAIN_DEADLINE = 30.0
"""Seconds SIGTERM waits for calls in progress before the roles stop (``--drain-deadline``)."""


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """What the command line adds to the settings file."""

    #: the bearer token toward the online API (None: ``[Management] OnlineToken``; an https
    #: ServiceURL: the appliance's site certificate instead)
    online_token: str | None = None
    #: seconds a stop waits for calls in progress (they are refused new ones meanwhile)
    drain_deadline: float = DRAIN_DEADLINE
    #: an admin token the appliance's API takes (one token for every appliance of a site);
    #: None: the appliance's own, made on its first start (:data:`ADMIN_TOKEN_FILE`)
    admin_token: str | None = None


def appliance_state_dir(settings: Settings, data_root: Path) -> Path:
    """The default state directory of an appliance: ``<data_root>/appliances/<name>``, so that
    appliances of one site on one host never share one."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", appliance_name(settings))
    return data_root / "appliances" / name


def with_state_dir(settings: Settings, state_dir: Path) -> Settings:
    """``settings`` with ``[Management] StateDirectory`` set to ``state_dir``."""
    management = settings.management.model_copy(update={"state_directory": str(state_dir)})
    return settings.model_copy(update={"management": management})


def admin_token(appliance: Appliance, token: str | None, state_dir: Path | None) -> Path | None:
    """Adopt ``token`` as the appliance API's admin token (earlier adopted ones revoked); with
    none given and no admin token yet, make one and write it to ``<state_dir>/admin-token``
    (mode 0600). Returns the file written, else None."""
    tokens = appliance.access.tokens
    if token is not None:
        known = tokens.verify(token)
        if known is not None and known.scope == "admin":
            return None  # adopted at an earlier start: kept
        for old in tokens.tokens():
            if old.name == SITE_ADMIN and old.active:
                tokens.revoke(old.id)
        try:
            tokens.adopt(token, SITE_ADMIN, "admin")
        except TokenError as exc:
            revoked = "it was revoked on this appliance: give a new one"
            why = revoked if "exists" in str(exc) else exc
            raise ValueError(f"--admin-token: {why}") from None
        return None
    if state_dir is None or any(t.scope == "admin" and t.active for t in tokens.tokens()):
        return None
    path = state_dir / ADMIN_TOKEN_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, f"{tokens.create('admin', 'admin')[1]}\n".encode())
    finally:
        os.close(fd)
    return path


async def run_appliance(
    settings: Settings, options: ServeOptions, *, console: Console
) -> tuple[int, int]:
    """Start the appliance, print where it listens, run until SIGTERM/SIGINT, drain, stop.

    ``settings`` name the state directory (:func:`with_state_dir`). Returns (calls in
    progress when the stop began, calls still up when the drain deadline passed)."""
    started = time.monotonic()
    state = settings.management.state_directory
    state_dir = Path(state) if state else None
    if state_dir is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
    tls = site_tls_for(settings, state_dir)
    appliance: Appliance | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    collector = None
    try:
        if tls is not None:
            tls.watch(60.0)
        built = appliance_options(tls, online_token=options.online_token)
        site = SiteConfig.load(state_dir)
        if site is not None:  # a site on etcd: its store, followed by the appliance
            built.site, built.site_store = site, open_site_store(site.etcd)
            console.print(f"site {site.site} on etcd {', '.join(site.etcd)}")
        appliance = Appliance(settings, built)
        where = admin_token(appliance, options.admin_token, state_dir)
        if where is not None:
            console.print(f"admin token for this appliance's API in {where}")
        await appliance.start()
        collector = tune_gc()
        table = Table(title=f"appliance {appliance.name} (site {settings.common.site_name}): "
                      f"ready in {time.monotonic() - started:.2f} s")  # fmt: skip
        table.add_column("piece")
        table.add_column("listens on")
        for piece, address in appliance_rows(appliance):
            table.add_row(piece, address)
        console.print(table)
        console.print(f"registers with {settings.online.service_url}; state in "
                      f"{state_dir or 'memory'}; stop with SIGTERM or Ctrl-C")  # fmt: skip
        api = appliance.api.url if appliance.api is not None else "-"
        print(f"READY name={appliance.name} api={api}", flush=True)
        await stop.wait()
        active = appliance.mediation.admission.active if appliance.mediation else 0
        console.print(f"stopping: draining {active} call(s), up to {options.drain_deadline:g} s")
        left = await appliance.drain(options.drain_deadline)
        console.print(f"stopped: {active - left} call(s) finished, {left} cut at the deadline")
        return active, left
    finally:
        if collector is not None:
            collector.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if appliance is not None:
            await appliance.stop()
            appliance.close()
        if tls is not None:
            await tls.stop()
