"""``hybridvoice update plan | start | status``: a rolling update of one site's appliances.

The original updated appliances by itself inside the tenant's update windows (Switch-CcVersion,
Enter-/Exit-CcUpdate, Get-CcRunningVersion). Here an admin runs it on the host of the site's
appliances, from a site file (:mod:`.update_site`): ``plan`` shows what would happen and what
blocks it; ``start`` runs the rollout in the foreground (one appliance at a time, in the
site's update windows unless ``--now``; :mod:`.update_plan`) and prints each step; ``status``
shows the last rollout (its state file) and the versions running now. ``docs/updates.md``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from hybridvoice.online.update_windows import TenantUpdateWindow

from .cli_admin import ONLINE_URL, Json, Url, api, auth_headers, fail, out, show
from .cli_update_windows import update_state_text

__all__ = ["register_update_commands", "update_app"]

update_app = typer.Typer(
    help="Rolling updates of a site's appliances (Switch-CcVersion, Enter/Exit-CcUpdate).",
    no_args_is_help=True,
)

SiteFile = Annotated[
    Path, typer.Option("--site-file", help="The site's appliances and versions (docs/updates.md)")
]
Version = Annotated[str, typer.Option("--version", help="The version to update to")]
Now = Annotated[
    bool, typer.Option("--now", help="Do not wait for the site's update windows (by hand)")
]
_PLAN_COLUMNS = ("order", "appliance", "version", "state", "calls_now", "action")


def _site(path: Path) -> Any:
    from .update_site import UpdateSiteError, load_update_site  # noqa: PLC0415

    try:
        return load_update_site(path)
    except UpdateSiteError as exc:
        fail(str(exc), "Fix the site file (docs/updates.md describes its keys).")


def _windows(url: str, site: str, now: bool) -> tuple[list[TenantUpdateWindow] | None, Any]:
    """The site's windows (None with --now) and its update state from the online service."""
    hints = {404: f"The online service has no site {site}: the site file's Site must name "
             "it (`hybridvoice site list`)."}  # fmt: skip
    state = api("GET", url, f"/v1/sites/{site}/update-state", hints=hints)
    if now:
        return None, state
    if not state["enable_auto_update"]:
        fail(f"auto update is off for site {site}",
             f"Turn it on (`hybridvoice site set-updates {site} --auto-update`) or update "
             "by hand now with --now.")  # fmt: skip
    windows = [TenantUpdateWindow.model_validate({k: v for k, v in w.items()
                                                  if k != "description"})
               for w in state["windows"]]  # fmt: skip
    return windows, state


def _timers(drain: float, stop: float, start: float) -> Any:
    from .update_plan import RolloutTimers  # noqa: PLC0415

    try:
        return RolloutTimers(drain=drain, stop=stop, start=start)
    except ValueError as exc:
        fail(f"--{str(exc).split()[0]}-seconds: {exc}", "Give a number of seconds above 0.")


Drain = Annotated[
    float, typer.Option("--drain-seconds", help="Calls in progress may last this long")
]
StopS = Annotated[float, typer.Option("--stop-seconds", help="The old process ends within this")]
StartS = Annotated[
    float,
    typer.Option("--start-seconds", help="The new version must be healthy within this"),
]


@update_app.command("plan")
def update_plan(
    site_file: SiteFile, version: Version, now: Now = False, drain_seconds: Drain = 300.0,
    stop_seconds: StopS = 30.0, start_seconds: StartS = 120.0, url: Url = ONLINE_URL,
    as_json: Json = False,
) -> None:  # fmt: skip
    """What `update start` would do: each appliance's version and state, the update window.
    Exits 1 when something blocks the rollout."""
    from .update_plan import plan_rows  # noqa: PLC0415
    from .update_run import read_views  # noqa: PLC0415

    site = _site(site_file)
    timers = _timers(drain_seconds, stop_seconds, start_seconds)
    _, state = _windows(url, site.site, True)
    installed = site.installations()
    views = asyncio.run(read_views(site, url, auth_headers()))
    rows = plan_rows([a.name for a in site.appliances], views, version)
    blocks = [r["action"] for r in rows if not r["ready"]]
    if version not in installed:
        blocks.append(f"version {version} is not installed in {site.versions_dir}")
    for row in rows:
        if row["version"] not in installed and row["version"] not in (None, version):
            blocks.append(f"{row['appliance']}'s version {row['version']} is not installed: "
                          "it could not be rolled back")  # fmt: skip
    plan = {"site": site.site, "version": version, "installed": sorted(installed),
            "per_appliance_seconds": timers.per_appliance, "appliances": rows,
            "update_state": state, "now": now, "blocked": blocks}  # fmt: skip
    if as_json:
        show(plan, True)
    else:
        show(rows, False, _PLAN_COLUMNS, f"rolling update of site {site.site} to {version}")
        out.print(f"installed versions: {', '.join(sorted(installed)) or 'none'} (in "
                  f"{site.versions_dir}); each appliance takes at most "
                  f"{timers.per_appliance:g} s", highlight=False)  # fmt: skip
        out.print("update windows ignored (--now)" if now else update_state_text(state),
                  highlight=False)  # fmt: skip
        for block in blocks:
            out.print(f"[red]blocked:[/red] {block}", highlight=False)
    if blocks:
        raise typer.Exit(1)


@update_app.command("start")
def update_start(
    site_file: SiteFile, version: Version, now: Now = False, drain_seconds: Drain = 300.0,
    stop_seconds: StopS = 30.0, start_seconds: StartS = 120.0, url: Url = ONLINE_URL,
) -> None:  # fmt: skip
    """Update the site's appliances to VERSION one at a time, in the site's update windows
    (or --now); a new version that fails its health check is rolled back and the rollout
    stops. Runs until done; exit 0 only when every appliance runs VERSION."""
    from .update_plan import Rollout  # noqa: PLC0415
    from .update_run import RolloutBusyError, RolloutDriver, rollout_lock  # noqa: PLC0415

    site = _site(site_file)
    timers = _timers(drain_seconds, stop_seconds, start_seconds)
    windows, _ = _windows(url, site.site, now)
    names = [a.name for a in site.appliances]
    installed = set(site.installations())
    rollout = Rollout(names, version, installed=installed, windows=windows, timers=timers)

    def told(text: str) -> None:
        out.print(f"{dt.datetime.now(dt.UTC):%H:%M:%S} {text}", highlight=False)

    driver = RolloutDriver(rollout, site, online=url, headers=auth_headers(), events=told)
    try:
        with rollout_lock(site.state_file):
            end = asyncio.run(driver.run())
    except RolloutBusyError as exc:
        fail(f"site {site.site}: {exc}", "Wait for it to end; `hybridvoice update status "
             f"--site-file {site_file}` shows where it is.")  # fmt: skip
    except KeyboardInterrupt:
        fail("interrupted: the rollout stopped where it was",
             f"`hybridvoice update status --site-file {site_file}` shows where; an appliance "
             "left in maintenance: `hybridvoice appliance maintenance exit`.")  # fmt: skip
    out.print(f"rollout {end.outcome}: {end.summary}", highlight=False)
    out.print(f"state: {site.state_file}; processes' output beside it", highlight=False)
    if end.outcome != "completed":
        raise typer.Exit(1)


@update_app.command("status")
def update_status(site_file: SiteFile, url: Url = ONLINE_URL, as_json: Json = False) -> None:
    """The last rollout of the site (from its state file) and each appliance's version now."""
    from .update_run import read_views, rollout_owner  # noqa: PLC0415

    site = _site(site_file)
    owner = rollout_owner(site.state_file)
    try:
        last: dict[str, Any] | None = json.loads(site.state_file.read_text())
    except FileNotFoundError:
        last = None
    except (OSError, ValueError) as exc:
        fail(f"cannot read {site.state_file}: {exc}", "Remove it: it is rewritten by the next "
             "`hybridvoice update start`.")  # fmt: skip
    views = asyncio.run(read_views(site, url, auth_headers()))
    running = [{"appliance": name, "version": v.version, "state": v.state,
                "calls_now": v.calls_now, "cloud": v.cloud_status,
                "problem": v.healthy()} for name, v in views.items()]  # fmt: skip
    if as_json:
        show({"site": site.site, "rollout": last, "running_pid": owner, "appliances": running},
             True)  # fmt: skip
        return
    show(running, False, ("appliance", "version", "state", "calls_now", "cloud", "problem"),
         f"site {site.site} now")  # fmt: skip
    if last is None:
        out.print("no rollout yet", highlight=False)
        return
    when = dt.datetime.fromtimestamp(last["updated_at"], dt.UTC)
    outcome = last["outcome"] or f"running ({last['phase']} {last['appliance'] or ''})".strip()
    if last["outcome"] is None and owner is None:
        outcome = f"stopped unfinished ({last['phase']} {last['appliance'] or ''})".strip()
    elif owner is not None:
        outcome += f", pid {owner}"
    out.print(f"last rollout to {last['version']}: {outcome}, as of {when:%Y-%m-%d %H:%M:%S} "
              "UTC", highlight=False)  # fmt: skip
    if last["summary"]:
        out.print(f"  {last['summary']}", highlight=False)
    for event in last["events"][-10:]:
        at = dt.datetime.fromtimestamp(event["at"], dt.UTC)
        out.print(f"  {at:%H:%M:%S} {event['text']}", highlight=False)


def register_update_commands(app: typer.Typer) -> None:
    app.add_typer(update_app, name="update")
