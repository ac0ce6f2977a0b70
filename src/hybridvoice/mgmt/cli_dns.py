"""``hybridvoice dns``: geo-DNS for the media bypass service name (docs/geo-dns.md).

``dns show`` lists the policy (sites, client subnets, mediation addresses), ``dns serve``
answers the name as an authoritative server (UDP and TCP), ``dns export --format
bind|windows`` writes the same policy for BIND 9 (views) or Windows DNS Server (policies, the
original's recommended setup). Each reads the ``[GeoDns]`` policy file and, with
``--appliance-config``, the appliance settings files its sites' mediation addresses come from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from hybridvoice.mediation.geo_dns import GeoPolicy

__all__ = ["dns_app", "register_dns_commands"]

dns_app = typer.Typer(
    help="Geo-DNS for the media bypass service name: show, serve, export (BIND, Windows).",
    no_args_is_help=True,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

PolicyArg = Annotated[
    Path, typer.Argument(help="the geo-DNS policy file (TOML with a [GeoDns] table)")
]
AppliancesOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--appliance-config",
        help="an appliance settings file: its [Common] SiteName and [MediationServer] "
        "BypassServiceIP (else IP) add a mediation address to that site; repeat per appliance",
    ),
]
_FORMAT_HELP = "bind: named.conf views + zone files; windows: DNS Server policy PowerShell commands"
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


def _load(policy: Path, appliances: list[Path] | None) -> GeoPolicy:
    from hybridvoice.cms.settings import SettingsError  # noqa: PLC0415
    from hybridvoice.cms.settings_geo_dns import load_geo_dns  # noqa: PLC0415
    from hybridvoice.mediation.geo_dns import policy_from_settings  # noqa: PLC0415

    try:
        return policy_from_settings(load_geo_dns(policy, appliances or []))
    except SettingsError as exc:
        err.print(f"[red]bad geo-DNS settings:[/red] {exc}")
        raise typer.Exit(2) from exc


@dns_app.command("show")
def show(policy: PolicyArg, appliance: AppliancesOpt = None, as_json: JsonOpt = False) -> None:
    """List the sites: their client subnets and the mediation addresses their clients get."""
    geo = _load(policy, appliance)
    if as_json:
        out.print_json(json.dumps(geo.to_json()))
        return
    table = Table(title=f"{geo.name} (zone {geo.zone}, TTL {geo.ttl} s)")
    for column in ("site", "client subnets", "mediation addresses"):
        table.add_column(column)
    for s in geo.sites:
        table.add_row(s.name, "\n".join(map(str, s.subnets)), "\n".join(map(str, s.addresses)))
    out.print(table)
    unmatched = {"all": "every site's addresses", "nxdomain": "NXDOMAIN", "refuse": "REFUSED"}
    out.print(f"clients of no site: {unmatched[geo.unmatched]}")


@dns_app.command("export")
def export(
    policy: PolicyArg,
    format_: Annotated[
        Literal["bind", "windows"],
        typer.Option("--format", help=_FORMAT_HELP),
    ],
    appliance: AppliancesOpt = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="write the files into this directory (else print them)"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Export the policy for BIND 9 or Windows DNS Server."""
    from hybridvoice.mediation.geo_dns_export import bind_files, windows_commands  # noqa: PLC0415

    geo = _load(policy, appliance)
    files = dict(bind_files(geo)) if format_ == "bind" else {"geo-dns.ps1": windows_commands(geo)}
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            for name, text in files.items():
                (out_dir / name).write_text(text)
        except OSError as exc:
            err.print(f"[red]cannot write {out_dir}:[/red] {exc.strerror}")
            raise typer.Exit(2) from exc
        written = [str(out_dir / name) for name in files]
        if as_json:
            out.print_json(json.dumps({"format": format_, "files": written}))
        else:
            for path in written:
                out.print(f"wrote {path}")
        return
    if as_json:
        out.print_json(json.dumps({"format": format_, "files": files}))
    elif format_ == "windows":
        out.print(files["geo-dns.ps1"], end="", markup=False)
    else:
        for name, text in files.items():
            out.print(f"// ===== {name} =====\n{text}", markup=False)


@dns_app.command("serve")
def serve(
    policy: PolicyArg,
    appliance: AppliancesOpt = None,
    listen: Annotated[str, typer.Option(help="HOST:PORT for UDP and TCP")] = "127.0.0.1:5353",
    tcp: Annotated[bool, typer.Option("--tcp/--no-tcp", help="listen on TCP too")] = True,
    down_file: Annotated[
        Path | None,
        typer.Option(help="mediation addresses not to hand out, one a line (re-read on SIGHUP)"),
    ] = None,
    metrics: Annotated[
        str | None,
        typer.Option(help="HOST:PORT to serve Prometheus metrics on (/metrics); default: none"),
    ] = None,
) -> None:
    """Answer the bypass service name per site until SIGTERM/SIGINT (READY, then STATS)."""
    import contextlib  # noqa: PLC0415

    from hybridvoice.cms.settings import SettingsError  # noqa: PLC0415
    from hybridvoice.mgmt.geo_dns_service import serve_geo_dns  # noqa: PLC0415
    from hybridvoice.net.loop import run  # noqa: PLC0415

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        err.print(f"[red]bad --listen:[/red] {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:5353")
        raise typer.Exit(2)
    metrics_at = None
    if metrics is not None:
        m_host, _, m_port = metrics.rpartition(":")
        if not m_host or not m_port.isdigit() or int(m_port) > 65535:
            err.print(f"[red]bad --metrics:[/red] {metrics!r}: expected HOST:PORT")
            raise typer.Exit(2)
        metrics_at = (m_host.strip("[]"), int(m_port))
    try:
        with contextlib.suppress(KeyboardInterrupt):
            run(
                serve_geo_dns(
                    policy, appliance or [], host.strip("[]"), int(port), tcp=tcp,
                    down_file=down_file, metrics=metrics_at,
                )
            )  # fmt: skip
    except SettingsError as exc:
        err.print(f"[red]bad geo-DNS settings:[/red] {exc}")
        raise typer.Exit(2) from exc
    except (OSError, ValueError) as exc:
        err.print(f"[red]cannot serve:[/red] {exc}")
        raise typer.Exit(2) from exc


def register_dns_commands(app: typer.Typer) -> None:
    app.add_typer(dns_app, name="dns")
