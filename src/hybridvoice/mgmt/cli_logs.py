"""``hybridvoice logs``: search the log files (the original's Search-CcLog) and change the
log levels of a running appliance (its Start-CcLogging / Stop-CcLogging).

- ``logs search [--since 1h] [--until ...] [--call-id ID] [--level warning]
  [--component mediation] [--limit N] [--json] [--dir DIR]``: the JSON log files of a state
  directory (:mod:`.log_search`), a table by default, one JSON object a line with ``--json``.
- ``logs start [--level debug] [--component mediation=debug]``: ``PUT /v1/logging`` of the
  appliance's management API (admin token); ``logs stop``: back to ``warning``, every
  component following it; ``logs status``: the levels in force.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.table import Table

from .cli_admin import APPLIANCE_URL, ApplianceUrl, cli_terms, client, fail, out
from .cli_errors import refusal
from .log_search import LogQuery, LogSearchError, parse_when, search
from .logs import LoggingSetupError, parse_components

__all__ = ["logs_app", "register_log_commands"]

logs_app = typer.Typer(
    help="Search the logs (Search-CcLog); turn verbose logging on and off (Start/Stop-CcLogging).",
    no_args_is_help=True,
)


def default_log_dir() -> Path:
    """Where ``hybridvoice up`` (the lab) writes its logs: ``$HYBRIDVOICE_LOG_DIR`` if set,
    else ``logs/`` of the lab's state directory."""
    env = os.environ.get("HYBRIDVOICE_LOG_DIR")
    if env:
        return Path(env)
    import platformdirs  # noqa: PLC0415 - keep the CLI's start fast

    return Path(platformdirs.user_data_dir("hybridvoice", appauthor=False)) / "lab" / "logs"


_EXTRA_SHOWN = ("call", "call_id")
_UNREACHABLE = "Is `hybridvoice up` or the appliance running? Point --appliance at it."


@logs_app.command("search")
def logs_search(
    since: Annotated[
        str | None, typer.Option(help="From this time: 30m, 1h, 2d ago, or 2026-12-07T02:00Z")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Up to this time (same forms)")] = None,
    call_id: Annotated[
        str | None,
        typer.Option("--call-id", help="Lines about this call (the Call-ID of either leg)"),
    ] = None,
    level: Annotated[
        str | None, typer.Option(help="This level and above: debug, info, warning, error")
    ] = None,
    component: Annotated[
        str | None, typer.Option(help="Only this component: mediation, edge, online, net...")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many (the newest); 0: all")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line")] = False,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="The log directory (STATE_DIR/logs); default: the lab's, or $HYBRIDVOICE_LOG_DIR",
        ),
    ] = None,
) -> None:
    """Search the log files by time, call, level and component; oldest first."""
    now = datetime.now(UTC)
    where = directory or default_log_dir()
    try:
        query = LogQuery(
            since=None if since is None else parse_when(since, now, "--since"),
            until=None if until is None else parse_when(until, now, "--until"),
            call_id=call_id,
            level=level,
            component=None if component is None else component.lower(),
        )
        result = search(where, query, limit=limit if limit > 0 else None)
    except LogSearchError as exc:
        fail(str(exc), "Point --dir at STATE_DIR/logs of the process that logged.", 2)
    if as_json:
        for line in result.lines:
            obj = {"ts": line.ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                   "level": line.level, "logger": line.logger, "message": line.message,
                   **line.fields}  # fmt: skip
            out.print(json.dumps(obj, default=str), markup=False, highlight=False, soft_wrap=True)
    else:
        table = Table("time (UTC)", "level", "component", "message", "call", box=None)
        for line in result.lines:
            call = line.fields.get("call") or line.fields.get("call_id") or ""
            rest = " ".join(f"{k}={v}" for k, v in line.fields.items() if k not in _EXTRA_SHOWN)
            message = f"{line.message} {rest}".strip()
            table.add_row(line.ts.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], line.level,
                          line.component, message, str(call))  # fmt: skip
        out.print(table)
    summary = f"{len(result.lines)} lines from {len(result.files)} files in {where}"
    if result.malformed:
        summary += f"; {result.malformed} malformed lines skipped"
    typer.echo(summary, err=True)


def _put(appliance: str, body: dict[str, Any]) -> None:
    try:
        with client(appliance) as http:
            response = http.put("/v1/logging", json=body)
    except httpx.HTTPError as exc:
        fail(f"cannot reach {appliance}: {exc}", _UNREACHABLE, 2)
    _show(response)


def _show(response: httpx.Response) -> None:
    if response.status_code >= 400:
        error, hint = refusal(response)
        if response.status_code in (401, 403):
            hint = "Changing log levels needs an admin token: pass --token or HYBRIDVOICE_TOKEN."
        fail(cli_terms(error), cli_terms(hint) if hint else None)
    levels = response.json()
    parts = ", ".join(f"{k}={v}" for k, v in sorted(levels.get("components", {}).items()))
    out.print(f"log level {levels.get('level')}" + (f"; {parts}" if parts else ""))


@logs_app.command("start")
def logs_start(
    level: Annotated[str, typer.Option(help="The process's level")] = "info",
    component: Annotated[
        str | None,
        typer.Option(help="Levels of components: mediation=debug,edge=info"),
    ] = None,
    appliance: ApplianceUrl = APPLIANCE_URL,
) -> None:
    """Turn verbose logging on at run time (Start-CcLogging); no restart."""
    try:
        components = parse_components(component or "")
    except LoggingSetupError as exc:
        fail(str(exc), None, 2)
    _put(appliance, {"level": level, "components": components})


@logs_app.command("stop")
def logs_stop(
    level: Annotated[str, typer.Option(help="The level to go back to")] = "warning",
    appliance: ApplianceUrl = APPLIANCE_URL,
) -> None:
    """Back to quiet logging (Stop-CcLogging): ``warning``, every component following it."""
    try:
        with client(appliance) as http:
            current = http.get("/v1/logging")
    except httpx.HTTPError as exc:
        fail(f"cannot reach {appliance}: {exc}", _UNREACHABLE, 2)
    if current.status_code >= 400:
        _show(current)
    names = current.json().get("components", {})
    _put(appliance, {"level": level, "components": dict.fromkeys(names)})


@logs_app.command("status")
def logs_status(appliance: ApplianceUrl = APPLIANCE_URL) -> None:
    """The log levels in force on the appliance."""
    try:
        with client(appliance) as http:
            response = http.get("/v1/logging")
    except httpx.HTTPError as exc:
        fail(f"cannot reach {appliance}: {exc}", _UNREACHABLE, 2)
    _show(response)


def register_log_commands(app: typer.Typer) -> None:
    """Add ``logs`` to the top-level command line."""
    app.add_typer(logs_app, name="logs")
