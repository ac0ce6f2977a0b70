"""``hybridvoice up --config FLEET.toml``: the command-line side (load, plan, report errors,
run). ``cli.up`` hands a file over here when it is a fleet description
(:func:`hybridvoice.cms.fleet_plan.is_fleet_file`); any other file runs as one site."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from rich.console import Console

from hybridvoice.cms.fleet_plan import FleetPlan, load_fleet
from hybridvoice.cms.settings import SettingsError

from .up import FleetListenError, FleetStartError, run_fleet_up

__all__ = ["default_fleet_dir", "up_fleet"]


def default_fleet_dir(plan: FleetPlan) -> Path:
    """The per-user data directory's ``fleets/<first SIP domain>``."""
    import platformdirs  # noqa: PLC0415 - keep the CLI's start fast

    root = Path(platformdirs.user_data_dir("hybridvoice", appauthor=False))
    return root / "fleets" / re.sub(r"[^A-Za-z0-9_.-]", "_", plan.description.domain)


def up_fleet(config: Path, state_dir: str | None, *, out: Console, err: Console) -> int:
    """Run the fleet of ``config`` until Ctrl-C; the exit code (2: the file is refused, 1:
    the fleet could not start)."""
    try:
        plan = load_fleet(config)
    except SettingsError as exc:
        err.print(f"[red]{config}: fleet description refused[/red]")
        for problem in exc.problems:
            err.print(f"  {problem}", highlight=False, markup=False)
        return 2
    if state_dir == ":memory:":
        where = None
    else:
        where = Path(state_dir) if state_dir else default_fleet_dir(plan)
    try:
        asyncio.run(run_fleet_up(plan, where, console=out))
    except KeyboardInterrupt:
        pass
    except FleetListenError as exc:
        err.print(f"[red]cannot start:[/red] {exc}", highlight=False, markup=False)
        return 1
    except FleetStartError as exc:
        err.print("[red]cannot start the fleet:[/red]", end=" ")
        err.print(str(exc), highlight=False, markup=False)
        return 1
    return 0
