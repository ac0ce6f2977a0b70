"""``hybridvoice plan verify``: planned against observed call paths on the running deployment
(:mod:`hybridvoice.mgmt.plan_verify`; ``docs/planning.md``, "Verify").

Exit codes: 0 every scenario took its planned path, 1 a difference (or a failed test call),
2 verify could not run (what to do next is printed).
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hybridvoice.mgmt.credentials import current_token
from hybridvoice.planning.callflow import Path
from hybridvoice.planning.observed import SegmentMap

from .plan_verify import CannotVerifyError, ScenarioResult, VerifyOptions, run_verify

__all__ = ["register", "verify_json"]

out = Console()
err = Console(stderr=True)


def _hops(path: Path) -> list[str]:
    return [
        f"{h.source} -> {h.target}: {' > '.join(s.value for s in h.segments) or 'unknown'}"
        for h in path.hops
    ]


def verify_json(segments: SegmentMap, results: list[ScenarioResult]) -> dict[str, Any]:
    """The ``--json`` object: ok, the segment map, and per scenario both paths and verdicts."""
    scenarios = []
    for r in results:
        entry: dict[str, Any] = {
            "name": r.scenario.name, "client": r.scenario.client.value,
            "bypass_setting": r.scenario.bypass, "client_address": r.address,
            "call_id": None if r.call is None else r.call.call_id,
            "media_path": None if r.call is None else r.call.media_path,
            "ok": r.ok, "error": r.error,
        }  # fmt: skip
        for c in r.comparisons:
            entry[c.traffic.value] = {
                "ok": c.ok, "planned": _hops(c.planned), "observed": _hops(c.observed),
                "planned_segments": [s.value for s in c.planned.segments()],
                "observed_segments": [s.value for s in c.observed.segments()],
                "differences": list(c.differences),
            }  # fmt: skip
        entry["observed_hops"] = r.observed
        scenarios.append(entry)
    return {"ok": all(r.ok for r in results), "segments": segments.to_json(),
            "scenarios": scenarios}  # fmt: skip


def _seen(result: ScenarioResult, traffic: str) -> list[str]:
    """The observed hops with the addresses they used (and which were inferred)."""
    hops = (result.observed or {}).get(traffic) or []
    return [
        f"{h['source']} -> {h['target']}: {' > '.join(h['segments']) or 'unknown'}\n"
        f"  {h['source_address']} -> {h['target_address']}{' (inferred)' if h['inferred'] else ''}"
        for h in hops
    ]


def _table(results: list[ScenarioResult]) -> Table:
    table = Table(title="planned vs observed call paths")
    for column in ("scenario", "traffic", "planned", "observed", "result"):
        table.add_column(column)
    for r in results:
        if r.error is not None:
            table.add_row(r.scenario.name, "", "", f"[red]{r.error}[/red]", "[red]FAIL[/red]")
            continue
        for c in r.comparisons:
            verdict = "[green]PASS[/green]" if c.ok else "[red]FAIL[/red]"
            planned = "\n".join(f"{hop}\n" for hop in _hops(c.planned)).rstrip("\n")
            table.add_row(r.scenario.name, c.traffic.value, planned,
                          "\n".join(_seen(r, c.traffic.value)), verdict)  # fmt: skip
    return table


def verify(
    appliance: Annotated[
        str,
        typer.Option(
            "--appliance", help="The appliance's management API", envvar="HYBRIDVOICE_APPLIANCE_URL"
        ),
    ] = "http://127.0.0.1:8472",
    url: Annotated[
        str,
        typer.Option(
            "--url",
            help="The online service's API (to switch media bypass)",
            envvar="HYBRIDVOICE_URL",
        ),
    ] = "http://127.0.0.1:8470",
    from_: Annotated[
        str, typer.Option("--from", help="The calling user: alice@contoso.example")
    ] = "alice@contoso.example",
    to: Annotated[str, typer.Option("--to", help="The number to call")] = "+15550199",
    password: Annotated[
        str, typer.Option(help="The user's SIP password", envvar="HYBRIDVOICE_PASSWORD")
    ] = "hybridvoice",
    internet_address: Annotated[
        str | None,
        typer.Option(
            help="The internet client's local address (default: a loopback address "
            "outside the customer's subnets)"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Test calls for the PSTN scenarios (internal with bypass, internal without, internet
    client); planned and observed paths side by side.

    Switches the tenant's media bypass for the calls, then puts it back.

    Exit codes: 0 planned == observed, 1 a difference, 2 verify could not run.
    """
    user, _, domain = from_.removeprefix("sip:").partition("@")
    if not domain:
        err.print("[red]--from:[/red] give user@domain, e.g. alice@contoso.example")
        raise typer.Exit(2)
    options = VerifyOptions(
        online_url=url, appliance_url=appliance, user=user, domain=domain, password=password,
        number=to, token=current_token(), internet_address=internet_address,
    )  # fmt: skip
    try:
        segments, results = asyncio.run(run_verify(options))
    except CannotVerifyError as exc:
        if as_json:
            out.print_json(json.dumps({"ok": False, "error": str(exc), "hint": exc.hint}))
        else:
            err.print(f"[red]cannot verify:[/red] {exc}", highlight=False)
            err.print(exc.hint, highlight=False)
        raise typer.Exit(2) from exc
    answer = verify_json(segments, results)
    if as_json:
        out.print_json(json.dumps(answer))
    else:
        out.print(_table(results))
        for r in results:
            for c in r.comparisons:
                for difference in c.differences:
                    out.print(f"{r.scenario.name}, {c.traffic.value}: {difference}",
                              highlight=False)  # fmt: skip
        out.print("[green]PASS[/green]" if answer["ok"] else "[red]FAIL[/red]")
    if not answer["ok"]:
        raise typer.Exit(1)


def register(plan_app: typer.Typer) -> None:
    """Add ``plan verify`` to the ``plan`` group."""
    plan_app.command("verify")(verify)
