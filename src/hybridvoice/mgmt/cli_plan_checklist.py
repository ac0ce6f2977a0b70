"""``hybridvoice plan checklist``: the DNS records, firewall rules and certificates a deployment
needs, from its settings (:mod:`hybridvoice.planning.checklist`; docs/planning-checklist.md).

``--config`` takes a CloudConnector.ini, a settings TOML or a fleet TOML (told apart by
content); without it, the settings ``hybridvoice up`` runs with none. ``--format`` table
(default), json or markdown (a report to hand to the network team), ``--output`` a file.
"""

from __future__ import annotations

import io
import json
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from hybridvoice.planning.checklist import Checklist

__all__ = ["register"]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
Format = Literal["table", "json", "markdown"]


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except IsADirectoryError as exc:
        err.print(f"[red]{what} {escape(str(path))}:[/red] is a directory, not a file")
        raise typer.Exit(2) from exc
    except UnicodeDecodeError as exc:
        err.print(f"[red]{what} {escape(str(path))}:[/red] not a text file ({escape(exc.reason)})")
        raise typer.Exit(2) from exc
    except OSError as exc:
        err.print(
            f"[red]cannot read {what} {escape(str(path))}:[/red] {escape(str(exc.strerror or exc))}"
        )
        raise typer.Exit(2) from exc


def _geo(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        return tomllib.loads(_read(path, "--geo-dns"))
    except tomllib.TOMLDecodeError as exc:
        err.print(f"[red]--geo-dns {escape(str(path))}:[/red] not TOML: {escape(str(exc))}")
        raise typer.Exit(2) from exc


def _build(configs: list[Path], geo: Path | None, bypass_name: str | None) -> Checklist:
    from hybridvoice.cms.settings import SettingsError  # noqa: PLC0415
    from hybridvoice.planning.checklist import build_checklist  # noqa: PLC0415
    from hybridvoice.planning.checklist_source import (  # noqa: PLC0415
        ChecklistSourceError,
        defaults_deployment,
        deployment_from_text,
        merge_deployments,
    )

    geo_raw = _geo(geo)
    parts = []
    config: Path | None = None
    try:
        for config in configs:
            parts.append(
                (str(config), deployment_from_text(str(config), _read(config, "--config")))
            )
        deployment = merge_deployments(parts) if parts else defaults_deployment()
    except ChecklistSourceError as exc:
        err.print(f"[red]--config {escape(exc.name)}:[/red] {escape(exc.reason)}")
        raise typer.Exit(2) from exc
    except SettingsError as exc:
        err.print(f"[red]--config {escape(str(config))}: settings refused[/red]")
        for problem in exc.problems:
            err.print(f"  {problem}", markup=False, highlight=False)
        raise typer.Exit(2) from exc
    try:
        return build_checklist(deployment, geo_dns=geo_raw, bypass_name=bypass_name)
    except SettingsError as exc:
        err.print(f"[red]--geo-dns {escape(str(geo))}: policy refused[/red]")
        for problem in exc.problems:
            err.print(f"  {problem}", markup=False, highlight=False)
        raise typer.Exit(2) from exc


def _tables(checklist: Checklist, console: Console) -> None:
    from hybridvoice.planning.checklist_report import sections  # noqa: PLC0415

    console.print(f"Checklist of {checklist.source}", markup=False)
    for section in sections(checklist):
        table = Table(title=section.title, caption=section.intro, show_lines=False)
        for header in section.headers:
            table.add_column(header, overflow="fold")
        for row in section.rows:
            table.add_row(*row)
        if not section.rows:
            table.add_row(*(["-"] * len(section.headers)))
        console.print(table)


def checklist_command(
    config: Annotated[
        list[Path] | None,
        typer.Option(
            help="A CloudConnector.ini, a settings TOML or a fleet TOML (told apart by "
            "content); repeat it for one settings file per appliance. Default: the settings "
            "hybridvoice up runs without --config",
        ),
    ] = None,
    format_: Annotated[
        Format,
        typer.Option("--format", help="table, json, or markdown (a report for the network team)"),
    ] = "table",
    as_json: Annotated[bool, typer.Option("--json", help="the same as --format json")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write to this file instead")
    ] = None,
    geo_dns: Annotated[
        Path | None,
        typer.Option(
            "--geo-dns",
            help="a [GeoDns] policy file (docs/geo-dns.md): its service name and client "
            "subnets per site. Default: the sites' [MediationServer] InternalSubnets",
        ),
    ] = None,
    bypass_name: Annotated[
        str | None,
        typer.Option(
            help="the media bypass service name (default: hybridvoice.<default SIP domain>)"
        ),
    ] = None,
) -> None:
    """Every DNS record, firewall rule and certificate the deployment needs, and what is wrong.

    The public access edge A records per site, the internal-only media bypass name and its
    geo-DNS policy, the external and internal firewall rules with this deployment's addresses
    and port ranges (the mediation media range sized at 4 ports per call), every certificate
    with its subject and SANs. Exit code 2 when --config or --geo-dns cannot be read.
    """
    from hybridvoice.planning.checklist_report import to_json, to_markdown  # noqa: PLC0415

    chosen: Format = "json" if as_json else format_
    checklist = _build(config or [], geo_dns, bypass_name)
    if chosen == "json":
        text = json.dumps(to_json(checklist), indent=2) + "\n"
    elif chosen == "markdown":
        text = to_markdown(checklist)
    elif output is None:  # a terminal wraps to its width; a pipe gets whole rows (for grep)
        _tables(checklist, out if out.is_terminal else Console(highlight=False, width=200))
        return
    else:
        recorder = Console(record=True, width=200, file=io.StringIO())
        _tables(checklist, recorder)
        text = recorder.export_text()
    if output is None:
        typer.echo(text, nl=False)  # verbatim: no markup, no emoji codes
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        err.print(
            f"[red]cannot write {escape(str(output))}:[/red] {escape(str(exc.strerror or exc))}"
        )
        raise typer.Exit(2) from exc
    out.print(f"wrote {output} ({chosen})", markup=False)


def register(plan_app: typer.Typer) -> None:
    """Add ``plan checklist`` to the ``plan`` group."""
    plan_app.command("checklist")(checklist_command)
