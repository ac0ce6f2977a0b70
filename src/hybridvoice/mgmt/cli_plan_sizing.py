"""``hybridvoice plan gateways`` and ``plan appliances``: sizing (docs/planning-sizing.md).

The model is :mod:`hybridvoice.planning.sizing` (gateway ports, seed 004),
:mod:`hybridvoice.planning.erlang` (Erlang B) and :mod:`hybridvoice.planning.appliances`
(appliances per site, the original's limits); this module reads the options, prints the
answer as a table or one JSON object, and tells bad input by the option that carried it.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Annotated, Any, Literal, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from hybridvoice.planning.appliances import (
    DEFAULT_APPLIANCE_AVAILABILITY,
    AppliancePlan,
    plan_appliances,
)
from hybridvoice.planning.sizing import (
    MAX_GATEWAY_PORTS,
    MAX_SITES,
    MIN_GATEWAY_PORTS,
    GatewayPlan,
    SizingError,
    even_sites,
    plan_gateways,
)

__all__ = ["register"]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

#: The model's field -> the option that carries it.
OPTIONS = {
    "users": "--users",
    "usage": "--usage",
    "busy_hour_erlangs": "--busy-hour-erlangs",
    "blocking": "--blocking",
    "concurrent_calls": "--concurrent-calls",
    "hardware": "--hardware",
    "redundancy": "--redundancy",
    "appliance_availability": "--appliance-availability",
}
HOURS_PER_YEAR = 8766.0
DEFAULT_BLOCKING = 0.01

GATEWAYS_HELP = (
    "Gateway ports and gateways for a number of users (seed 004).\n\n"
    "Ports by usage: 1 port per 15 users for light usage (1 PSTN call per user per hour), "
    "per 10 users for moderate (2), per 5 users for heavy (3 or more). "
    f"Gateways have {MIN_GATEWAY_PORTS} to {MAX_GATEWAY_PORTS} ports; every site gets at least "
    "two (one can fail), the fewest that carry its ports, sized evenly. "
    "With --busy-hour-erlangs, each site also gets the Erlang B trunks for its share of the "
    "traffic at --blocking, and the larger figure rules."
)

APPLIANCES_HELP = (
    "Appliances and sites for a number of concurrent calls.\n\n"
    "An appliance carries 500 calls on normal hardware, 50 on minimum. A site holds up to 16 "
    "appliances, spares included (N+1: one spare, N+2: two), and there are at most "
    f"{MAX_SITES} sites. "
    "A site's availability is the chance that at least N of its N+k appliances are up, each up "
    f"with --appliance-availability (default {DEFAULT_APPLIANCE_AVAILABILITY}: the lowest figure "
    "at which every site size meets the original's 99.8% for N+1 and 99.9% for N+2)."
)

UsageOpt = Annotated[
    Literal["light", "moderate", "heavy"],
    typer.Option("--usage", help="light: 1 port per 15 users; moderate: per 10; heavy: per 5"),
]


def _fail(exc: SizingError, *, named_sites: bool = False) -> NoReturn:
    field = exc.field.split("[", 1)[0]
    option = OPTIONS.get(field, exc.field)
    if field == "sites":
        option = "--site" if named_sites else "--sites"
    if exc.field.startswith("sites["):
        option = f"--site {exc.field[6:-1]}=..."
    err.print(f"[red]error:[/red] {option}: {exc.reason}")
    raise typer.Exit(2)


def _named_sites(specs: list[str]) -> list[tuple[str, int]]:
    sites = []
    for spec in specs:
        name, sep, count = spec.rpartition("=")
        if not sep or not name.strip():
            _fail(
                SizingError("sites", f"{spec!r} is not NAME=USERS (e.g. Amsterdam=1200)"),
                named_sites=True,
            )
        try:
            users = int(count.replace(",", "").replace("_", ""))
        except ValueError:
            _fail(
                SizingError("sites", f"{spec!r}: {count!r} is not a whole number of users"),
                named_sites=True,
            )
        sites.append((name.strip(), users))
    return sites


def _sizes(gateways: tuple[int, ...]) -> str:
    """(940, 940, 940) -> '3 x 940'; (641, 640, 640) -> '1 x 641 + 2 x 640'."""
    return " + ".join(f"{n} x {size}" for size, n in sorted(Counter(gateways).items())[::-1])


def _percent(p: float) -> str:
    """0.998 -> '99.8%', 0.9999047 -> '99.99%' (three decimals at most, no trailing zeros)."""
    return f"{p * 100:.3f}".rstrip("0").rstrip(".") + "%"


def gateways_json(plan: GatewayPlan) -> dict[str, Any]:
    return {
        "usage": plan.usage,
        "users_per_port": plan.users_per_port,
        "users": plan.users,
        "busy_hour_erlangs": plan.busy_hour_erlangs,
        "blocking": plan.blocking,
        "ports": plan.ports,
        "installed_ports": plan.installed_ports,
        "gateways": plan.gateway_count,
        "sites": [
            {
                "name": s.name,
                "users": s.users,
                "rule_ports": s.rule_ports,
                "traffic_erlangs": s.traffic_erlangs,
                "erlang_trunks": s.erlang_trunks,
                "ports": s.ports,
                "rules": s.rules,
                "gateways": list(s.gateways),
                "installed_ports": s.installed_ports,
            }
            for s in plan.sites
        ],
    }


def _print_gateways(plan: GatewayPlan) -> None:
    erlang = plan.busy_hour_erlangs is not None
    table = Table(
        title=f"Gateways for {plan.users:,} {plan.usage} users "
        f"(1 port per {plan.users_per_port} users)"
    )
    columns = ["site", "users", "ports by rule"]
    if erlang:
        columns += ["busy-hour E", "Erlang B trunks"]
    columns += ["ports needed", "gateways", "ports per gateway", "ports installed"]
    for column in columns:
        table.add_column(
            column, justify="left" if column in ("site", "ports per gateway") else "right"
        )
    for s in plan.sites:
        row = [s.name, f"{s.users:,}", f"{s.rule_ports:,}"]
        if erlang:
            row += [f"{s.traffic_erlangs:,.2f}", f"{s.erlang_trunks:,}"]
        row += [f"{s.ports:,}", str(len(s.gateways)), _sizes(s.gateways), f"{s.installed_ports:,}"]
        table.add_row(*row)
    if len(plan.sites) > 1:
        row = ["all sites", f"{plan.users:,}", f"{sum(s.rule_ports for s in plan.sites):,}"]
        if erlang:
            trunks = sum(s.erlang_trunks or 0 for s in plan.sites)
            row += [f"{plan.busy_hour_erlangs:,.2f}", f"{trunks:,}"]
        row += [f"{plan.ports:,}", str(plan.gateway_count), "", f"{plan.installed_ports:,}"]
        table.add_row(*row, style="bold")
    out.print(table)
    if erlang:
        by_erlang = [s.name for s in plan.sites if s.rules == "Erlang B"]
        grade = f"{(plan.blocking or 0) * 100:g}% blocking"
        if not by_erlang:
            out.print(f"rules: the rule of thumb (Erlang B at {grade} needs no more ports)")
        elif len(by_erlang) == len(plan.sites):
            out.print(f"rules: Erlang B at {grade} (the traffic needs more than the rule of thumb)")
        else:
            out.print(f"rules: Erlang B at {grade} at {', '.join(by_erlang)}; the rule elsewhere")
    if plan.installed_ports > plan.ports:
        out.print(
            f"installed ports exceed the need: every site has at least two gateways of at least "
            f"{MIN_GATEWAY_PORTS} ports"
        )


def gateways(
    usage: UsageOpt,
    users: Annotated[
        int | None,
        typer.Option("--users", help="users to serve (with --site: optional, their sum)"),
    ] = None,
    sites: Annotated[
        int | None,
        typer.Option(
            "--sites", help=f"share the users evenly over this many sites (1..{MAX_SITES})"
        ),
    ] = None,
    site: Annotated[
        list[str] | None,
        typer.Option("--site", help="a site and its users, NAME=USERS; repeat per site"),
    ] = None,
    busy_hour_erlangs: Annotated[
        float | None,
        typer.Option(
            "--busy-hour-erlangs",
            help="the busy-hour PSTN traffic of all users in erlangs: adds Erlang B trunks",
        ),
    ] = None,
    blocking: Annotated[
        float | None,
        typer.Option(
            "--blocking",
            help="with --busy-hour-erlangs: the share of calls that may find all trunks busy "
            "(default 0.01)",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    try:
        if blocking is not None and busy_hour_erlangs is None:
            raise SizingError("blocking", "applies to --busy-hour-erlangs: give that too")
        if sites is not None and site:
            raise SizingError("sites", "give --sites N or --site NAME=USERS, not both")
        named: list[tuple[str, int]] | None = None
        if site:
            named = _named_sites(site)
        elif sites is not None:
            if users is None:
                raise SizingError("users", "--sites shares --users: give both")
            named = list(even_sites(users, sites))
        plan = plan_gateways(
            users,
            usage,
            sites=named,
            busy_hour_erlangs=busy_hour_erlangs,
            blocking=DEFAULT_BLOCKING if blocking is None else blocking,
        )
    except SizingError as exc:
        _fail(exc, named_sites=bool(site))
    if as_json:
        out.print_json(json.dumps(gateways_json(plan)))
    else:
        _print_gateways(plan)


def appliances_json(plan: AppliancePlan) -> dict[str, Any]:
    return {
        "concurrent_calls": plan.concurrent_calls,
        "hardware": plan.hardware,
        "redundancy": plan.redundancy,
        "calls_per_appliance": plan.calls_per_appliance,
        "appliance_availability": plan.appliance_availability,
        "quoted_availability": plan.quoted_availability,
        "meets_quoted": plan.meets_quoted,
        "appliances": plan.appliances,
        "guaranteed_calls": plan.guaranteed_calls,
        "sites": [
            {
                "name": s.name,
                "active": s.active,
                "spares": s.spares,
                "appliances": s.appliances,
                "guaranteed_calls": s.guaranteed_calls,
                "installed_calls": s.installed_calls,
                "availability": s.availability,
                "appliance_availability_for_quoted": s.appliance_availability_for_quoted,
            }
            for s in plan.sites
        ],
    }


def _print_appliances(plan: AppliancePlan) -> None:
    quoted = _percent(plan.quoted_availability)
    table = Table(
        title=f"Appliances for {plan.concurrent_calls:,} concurrent calls ({plan.hardware} "
        f"hardware: {plan.calls_per_appliance} calls each, {plan.redundancy})"
    )
    for column in (
        "site",
        "appliances (N+k)",
        "calls (spares down)",
        "calls (all up)",
        "site availability",
        f"per appliance for {quoted}",
    ):
        table.add_column(column, justify="left" if column == "site" else "right")
    for s in plan.sites:
        table.add_row(
            s.name,
            f"{s.active}+{s.spares}",
            f"{s.guaranteed_calls:,}",
            f"{s.installed_calls:,}",
            _percent(s.availability),
            _percent(s.appliance_availability_for_quoted),
        )
    if len(plan.sites) > 1:
        table.add_row(
            "all sites",
            f"{plan.appliances}",
            f"{plan.guaranteed_calls:,}",
            f"{sum(s.installed_calls for s in plan.sites):,}",
            "",
            "",
            style="bold",
        )
    out.print(table)
    a = plan.appliance_availability
    down = (1 - a) * HOURS_PER_YEAR
    out.print(
        f"each appliance up {_percent(a)} of the time (about {down:,.1f} h down a year), "
        "failing independently; a site is up while at least N of its N+k appliances are"
    )
    if plan.meets_quoted:
        out.print(f"every site meets the original's {quoted} for {plan.redundancy}")
    else:
        short = [s.name for s in plan.sites if s.availability < plan.quoted_availability]
        out.print(
            f"[yellow]below the original's {quoted} for {plan.redundancy}:[/yellow] "
            f"{', '.join(short)} (see the last column for the appliance availability it needs)"
        )


def appliances(
    concurrent_calls: Annotated[
        int, typer.Option("--concurrent-calls", help="calls at the busiest moment, all sites")
    ],
    hardware: Annotated[
        Literal["normal", "minimum"],
        typer.Option("--hardware", help="normal: 500 calls per appliance; minimum: 50"),
    ] = "normal",
    redundancy: Annotated[
        Literal["N+1", "N+2"],
        typer.Option("--redundancy", help="spare appliances per site: N+1 one, N+2 two"),
    ] = "N+1",
    appliance_availability: Annotated[
        float,
        typer.Option(
            "--appliance-availability",
            help="the share of time one appliance is up (0 < A <= 1)",
        ),
    ] = DEFAULT_APPLIANCE_AVAILABILITY,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    try:
        plan = plan_appliances(concurrent_calls, hardware, redundancy, appliance_availability)
    except SizingError as exc:
        _fail(exc)
    if as_json:
        out.print_json(json.dumps(appliances_json(plan)))
    else:
        _print_appliances(plan)


def register(plan_app: typer.Typer) -> None:
    """Add ``gateways`` and ``appliances`` to ``hybridvoice plan``."""
    plan_app.command("gateways", help=GATEWAYS_HELP)(gateways)
    plan_app.command("appliances", help=APPLIANCES_HELP)(appliances)
