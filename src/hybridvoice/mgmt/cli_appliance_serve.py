"""``hybridvoice appliance serve``: one appliance as its own process (typer sub-command).

The settings file is one appliance's (``hybridvoice init`` writes one; several appliances of
a site on one host: one file each, with their own ports and ``[Common] ServerName``). Its
token toward the online service: ``--online-token`` (or ``HYBRIDVOICE_ONLINE_TOKEN``), else
``[Management] OnlineToken``; with an https ``[Online] ServiceURL`` its site certificate.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, cast

import typer

from .cli_admin import err, fail, out

__all__ = ["register_appliance_serve"]

ONLINE_TOKEN_ENV = "HYBRIDVOICE_ONLINE_TOKEN"
ADMIN_TOKEN_ENV = "HYBRIDVOICE_ADMIN_TOKEN"


def serve(
    config: Annotated[Path, typer.Option(help="The appliance's settings file")],
    state_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where its replica, call records, tokens and certificates live. Default: "
            "[Management] StateDirectory, else the per-user data directory's "
            "appliances/NAME",
            metavar="DIR",
        ),
    ] = None,
    online_token: Annotated[
        str | None,
        typer.Option(
            help="Bearer token (scope appliance) toward the online API. Default: "
            "[Management] OnlineToken",
            envvar=ONLINE_TOKEN_ENV,
        ),
    ] = None,
    admin_token: Annotated[
        str | None,
        typer.Option(
            help="An admin token this appliance's API takes (the same for every appliance of "
            "a site). Default: one made on the first start, in DIR/admin-token",
            envvar=ADMIN_TOKEN_ENV,
        ),
    ] = None,
    drain_deadline: Annotated[
        float,
        typer.Option(
            min=0.0, help="On SIGTERM: seconds to let calls in progress finish (no new calls)"
        ),
    ] = 30.0,
    log_level: Annotated[
        str, typer.Option(help="Log this level and above: debug, info, warning, error, critical")
    ] = "warning",
    log_format: Annotated[
        str, typer.Option(help="Logs to stderr as text (for humans) or json (one object a line)")
    ] = "text",
    log_component: Annotated[
        str, typer.Option(help="Levels of components: mediation=debug,edge=info (docs/logs.md)")
    ] = "",
) -> None:
    """Run one appliance (edge, mediation, settings replica, API, health monitor) in this
    process, registered with the online service of its settings. Prints where it listens;
    SIGTERM drains it (no new calls; calls in progress finish up to --drain-deadline), then
    stops it."""
    import platformdirs  # noqa: PLC0415 - keep the CLI's start fast

    from hybridvoice.cms.settings import SettingsError, load_settings  # noqa: PLC0415
    from hybridvoice.mgmt.logs import (  # noqa: PLC0415
        LogFormat,
        LoggingSetupError,
        configure_logging,
        parse_components,
    )

    from .appliance_serve import (  # noqa: PLC0415
        ServeOptions,
        appliance_state_dir,
        run_appliance,
        with_state_dir,
    )

    try:
        configure_logging(log_level, cast(LogFormat, log_format), sys.stderr,
                          components=parse_components(log_component))  # fmt: skip
    except LoggingSetupError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    try:
        settings = load_settings(config)
    except SettingsError as exc:
        err.print(f"[red]{config}: settings refused[/red]")
        for problem in exc.problems:
            err.print(f"  {problem}")
        raise typer.Exit(2) from exc
    except OSError as exc:
        err.print(f"[red]cannot read {config}:[/red] {exc.strerror or exc}")
        raise typer.Exit(2) from exc
    if state_dir is None:
        configured = settings.management.state_directory
        root = Path(platformdirs.user_data_dir("hybridvoice", appauthor=False))
        state_dir = Path(configured) if configured else appliance_state_dir(settings, root)
    settings = with_state_dir(settings, state_dir)
    try:  # the logs also go to rotated files in the state directory (hybridvoice logs search)
        configure_logging(log_level, cast(LogFormat, log_format), sys.stderr,
                          components={**settings.logging.component_levels(),
                                      **parse_components(log_component)},
                          directory=state_dir / "logs", max_bytes=settings.logging.max_bytes,
                          backups=settings.logging.files)  # fmt: skip
    except LoggingSetupError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    options = ServeOptions(
        online_token=online_token, drain_deadline=drain_deadline, admin_token=admin_token
    )
    try:
        asyncio.run(run_appliance(settings, options, console=out))
    except KeyboardInterrupt:
        pass
    except (ValueError, OSError) as exc:
        err.print(f"[red]cannot start:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from exc


JOIN_TOKEN_ENV = "HYBRIDVOICE_JOIN_TOKEN"


def join(
    etcd: Annotated[
        list[str], typer.Option(help="An etcd member of the site, host:port (repeat for each)")
    ],
    token: Annotated[
        str | None,
        typer.Option(
            help="The site's join token, SITE:SECRET (printed by --new-site)", envvar=JOIN_TOKEN_ENV
        ),
    ] = None,
    new_site: Annotated[
        bool,
        typer.Option(
            "--new-site",
            help="Make the site in etcd from --config (first "
            "appliance); prints the join token once",
        ),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            help="This appliance's settings file (name, addresses, ports). Default on "
            "a join: the site's settings, written to DIR/appliance.toml"
        ),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(help="This appliance's state directory (as for serve)", metavar="DIR"),
    ] = None,
) -> None:
    """Join this appliance to a site on etcd (Register-CcAppliance): it receives the site's
    settings and CA, has the CA issue its certificate, and its next `appliance serve`
    follows the site store and registers with the cloud. A wrong token is refused before
    anything is written. --new-site makes the site first (from --config)."""
    from .cli_site import run_join  # noqa: PLC0415

    run_join(etcd, token, new_site=new_site, config=config, state_dir=state_dir)


def drain_and_leave(appliance: str, name: str, deadline: float) -> None:
    """``appliance remove --appliance URL``: maintenance, wait for its calls (up to
    ``deadline`` seconds), then it leaves its site (heartbeats stop, site record deleted)."""
    import time  # noqa: PLC0415

    from .cli_admin import api  # noqa: PLC0415

    status = api("GET", appliance, "/v1/status")
    if status.get("name") != name:
        fail(f"--appliance {appliance} is appliance {status.get('name')!r}, not {name!r}",
             "Give the management API of the appliance to remove.", 2)  # fmt: skip
    api("POST", appliance, "/v1/maintenance/enter")
    end = time.monotonic() + deadline
    while (calls := api("GET", appliance, "/v1/status")["calls_now"]) and time.monotonic() < end:
        out.print(f"draining {name}: {calls} call(s) in progress", highlight=False)
        time.sleep(min(2.0, max(0.1, end - time.monotonic())))
    if calls:
        out.print(f"drain deadline passed: {calls} call(s) of {name} still up")
    left = api("POST", appliance, "/v1/leave")
    where = left.get("site_store_revision")
    out.print(f"appliance {name} drained and out of its site store"
              f"{f' (revision {where})' if where else ' (no site store)'}; "
              "stop its process when convenient")  # fmt: skip


def register_appliance_serve(app: typer.Typer) -> None:
    """Add ``serve`` and ``join`` to the ``appliance`` command group."""
    app.command("serve")(serve)
    app.command("join")(join)
