"""``hybridvoice plan callflow``: which network segments a call's signalling and media cross.

The answer comes from :mod:`hybridvoice.planning` (docs/planning.md): hybridvoice's own PSTN
paths for ``--scenario pstn``, seed 002's principles for ``p2p`` and ``conference``. It is
printed as a table of hops, the segments per traffic type, seed 002's summary and one line of
reason per choice; ``--json`` prints one object, ``--svg FILE`` writes a diagram.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hybridvoice.mgmt.callflow_svg import callflow_svg
from hybridvoice.planning.callflow import ClientLocation, Hop
from hybridvoice.planning.callflow import Path as FlowPath
from hybridvoice.planning.explain import CallflowPlan, PlanScenario, plan_callflow, plan_data

__all__ = ["YesNo", "callflow", "register"]

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


class YesNo(StrEnum):
    YES = "yes"
    NO = "no"


ScenarioOpt = Annotated[
    PlanScenario,
    typer.Option(
        "--scenario",
        help="pstn: a PSTN call through the site (hybridvoice's own paths); p2p: a call to a "
        "colleague inside the network; conference: joining an online conference",
    ),
]
ClientOpt = Annotated[
    ClientLocation,
    typer.Option("--client", help="where the calling client is: internal or internet"),
]
PeeringOpt = Annotated[
    YesNo,
    typer.Option("--peering", help="the customer network has a private peering link to the cloud"),
]
BypassOpt = Annotated[
    YesNo,
    typer.Option("--bypass", help="media bypass is on (internal clients only; PSTN calls only)"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object")]
SvgOpt = Annotated[
    Path | None,
    typer.Option("--svg", help="also write the diagram to this SVG file", dir_okay=False),
]


def _chain(path: FlowPath) -> str:
    """The segments along `path`; a path of several parties' legs (a peer-to-peer call's
    signalling) is shown per chain of hops, each named by where it starts."""
    chains: list[list[Hop]] = []
    for hop in path.hops:
        if chains and chains[-1][-1].target == hop.source:
            chains[-1].append(hop)
        else:
            chains.append([hop])
    shown = [
        " > ".join(s.value for s in FlowPath(path.traffic, tuple(chain)).segments())
        for chain in chains
    ]
    if len(chains) == 1:
        return shown[0]
    return "; ".join(
        f"{chain[0].source}: {text}" for chain, text in zip(chains, shown, strict=True)
    )


def _cell(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "; ".join(f"{party}: {route}" for party, route in value.items())
    if isinstance(value, list):
        return " or ".join(f"{_cell(opt['route'])} ({opt['condition']})" for opt in value)
    return str(value)


def _show(plan: CallflowPlan) -> None:
    title = (
        f"{plan.scenario.value} call, {plan.client.value} client, "
        f"peering {'yes' if plan.peering else 'no'}, bypass {'yes' if plan.bypass else 'no'}"
    )
    table = Table(title=title, title_justify="left")
    for column in ("traffic", "from", "to", "segments crossed"):
        table.add_column(column)
    for path in (plan.signalling, plan.media):
        for hop in path.hops:
            crossed = " > ".join(segment.value for segment in hop.segments)
            table.add_row(path.traffic.value, hop.source, hop.target, crossed)
    out.print(table)
    out.print("[bold]Segments[/bold]")
    out.print(f"  signalling: {_chain(plan.signalling)}")
    out.print(f"  media:      {_chain(plan.media)}")
    out.print("[bold]Seed 002 summary[/bold] (local / peering / internet)")
    for traffic, value in plan.summary.items():
        out.print(f"  {traffic}: {_cell(value)}  [dim](of {plan.describes[traffic]})[/dim]")
    out.print("[bold]Why[/bold]")
    for reason in plan.reasons:
        out.print(f"  - {reason}")
    for note in plan.notes:
        out.print(f"[yellow]note:[/yellow] {note}")


def callflow(
    scenario: ScenarioOpt = PlanScenario.PSTN,
    client: ClientOpt = ClientLocation.INTERNAL,
    peering: PeeringOpt = YesNo.NO,
    bypass: BypassOpt = YesNo.NO,
    as_json: JsonOpt = False,
    svg: SvgOpt = None,
) -> None:
    """Show the hops and network segments of a call's signalling and media, and why."""
    plan = plan_callflow(
        scenario, client=client, peering=peering is YesNo.YES, bypass=bypass is YesNo.YES
    )
    if svg is not None:
        title = f"{plan.scenario.value} call: {plan.client.value} client" + (
            ", peering" if plan.peering else ", no peering"
        )
        if plan.scenario is PlanScenario.PSTN:
            title += ", media bypass" if plan.bypassed else ", no bypass"
        try:
            svg.write_text(callflow_svg((plan.signalling, plan.media), title=title))
        except OSError as exc:
            err.print(f"[red]--svg:[/red] cannot write {svg}: {exc.strerror or exc}")
            raise typer.Exit(2) from exc
    if as_json:
        print(json.dumps(plan_data(plan), indent=2))
        return
    _show(plan)
    if svg is not None:
        out.print(f"diagram written to {svg}")


def register(plan_app: typer.Typer) -> None:
    """Add ``plan callflow`` to the ``plan`` command group."""
    plan_app.command("callflow")(callflow)
