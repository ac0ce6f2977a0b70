"""Appliance commands: registration and status, gateways, call records (typer sub-commands).

``appliance list|remove`` ask the online service (Get-CsHybridPSTNAppliance,
Unregister-CcAppliance); ``appliance status|maintenance``, ``gateway ...`` and ``calls ...``
ask one appliance's management API (``--appliance``). ``gateway add|set|enable|disable``
change the mediation role's gateways while it runs, with the settings file's keys and checks
(:mod:`hybridvoice.mgmt.gateways`); ``calls list|show`` are the original's Get-CcCallRecords.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

import typer
from rich.table import Table

from .cli_admin import (
    APPLIANCE_URL,
    ONLINE_URL,
    ApplianceUrl,
    Json,
    Url,
    api,
    cell,
    change,
    err,
    fail,
    given,
    out,
    show,
)
from .cli_appliance_serve import drain_and_leave, register_appliance_serve
from .cli_health import health_line

__all__ = ["appliance_app", "calls_app", "gateway_app"]

# --- appliances (Get-CsHybridPSTNAppliance, Get-CcApplianceStatus, Enter/Exit-CcUpdate) -----------
appliance_app = typer.Typer(help="Appliances: serve, list, status, maintenance.",
                            no_args_is_help=True)  # fmt: skip
register_appliance_serve(appliance_app)
APPLIANCE_COLUMNS = ("name", "site", "status", "version", "edge_sip_host", "edge_sip_port",
                     "edge_sip_transport")  # fmt: skip
GATEWAY_COLUMNS = ("name", "address", "transport", "enabled", "health", "last_options_rtt_ms",
                   "active_calls")  # fmt: skip


@appliance_app.command("list")
def appliance_list(
    site: Annotated[str | None, typer.Option(help="Only this site's")] = None,
    url: Url = ONLINE_URL,
    as_json: Json = False,
) -> None:
    """Appliances registered with the online service, and their status
    (Get-CsHybridPSTNAppliance)."""
    data = api("GET", url, "/v1/appliances", params=given(site=site))
    rows = data["appliances"] if isinstance(data, dict) else data
    show(rows, as_json, APPLIANCE_COLUMNS, "appliances")


@appliance_app.command("remove")
def appliance_remove(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The appliance's name")],
    url: Url = ONLINE_URL,
    appliance: Annotated[
        str | None,
        typer.Option(
            "--appliance",
            help="NAME's management API: drain it first and take it "
            "out of its site store (without it: only the cloud forgets it)",
        ),
    ] = None,
    drain_deadline: Annotated[
        float, typer.Option(min=0.0, help="Seconds to let its calls in progress finish")
    ] = 300.0,
) -> None:
    """Remove an appliance (Unregister-CcAppliance): with --appliance it is drained first (no
    new calls; calls in progress finish or the deadline passes) and leaves its site store,
    then the online service forgets it."""
    if appliance is not None:
        drain_and_leave(appliance, name, drain_deadline)
    hints = {404: f"There is no appliance {name}: `hybridvoice appliance list` shows them."}
    api("DELETE", url, f"/v1/appliances/{name}", hints=hints)
    out.print(f"appliance {name} unregistered")


CERTIFICATE_COLUMNS: Final = ("name", "subject", "not_after", "days_left")


@appliance_app.command("status")
def appliance_status(appliance: ApplianceUrl = APPLIANCE_URL, as_json: Json = False) -> None:
    """This appliance: roles, listeners, gateways and their health, calls now, replica version
    and lag, certificates with their days left (Get-CcApplianceStatus). Warns 30 days before
    a certificate expires."""
    data = api("GET", appliance, "/v1/status")
    if as_json:
        show(data, True)
        return
    summary = Table(title=f"appliance {data['name']} (site {data['site']})", show_header=False)
    summary.add_row("state", data["state"])
    summary.add_row("version", data["version"])
    summary.add_row("roles", ", ".join(data["roles"]))
    summary.add_row("calls now", f"{data['calls_now']} of {data['call_limit']}")
    summary.add_row("media bypass", cell(data["media_bypass"]))
    rep = data["replica"]
    connected = "connected" if rep["connected"] else "NOT connected"
    lag = cell(rep["lag_seconds"], "lag_seconds")
    summary.add_row("replica", f"version {rep['version']}, lag {lag}, {connected}")
    link = data["online"]
    summary.add_row("online service", f"{link['url']} "
                    f"({'registered' if link['registered'] else 'not registered'})")  # fmt: skip
    if data.get("health"):
        summary.add_row("health monitor", health_line(data["health"]))
    if site := data.get("site_store"):
        summary.add_row("site store", f"{site['site']} on etcd {', '.join(site['etcd'])}, "
                        f"revision {site['revision']} applied")  # fmt: skip
    out.print(summary)
    show(data["listeners"], False, ("role", "transport", "host", "port"), "listeners")
    show(data["gateways"], False, GATEWAY_COLUMNS, "gateways")
    if data.get("certificates"):
        show(data["certificates"], False, CERTIFICATE_COLUMNS, "certificates (site PKI)")
    for warning in data.get("warnings", ()):
        err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)


@appliance_app.command("maintenance")
def appliance_maintenance(
    action: Annotated[str, typer.Argument(metavar="enter|exit", help="enter or exit")],
    appliance: ApplianceUrl = APPLIANCE_URL,
    as_json: Json = False,
) -> None:
    """Drain the appliance (no new calls, calls in progress finish) or take calls again
    (Enter-CcUpdate / Exit-CcUpdate)."""
    if action not in ("enter", "exit"):
        fail(f"unknown action {action!r}", "Use: hybridvoice appliance maintenance enter|exit")
    show(api("POST", appliance, f"/v1/maintenance/{action}"), as_json)


# --- gateways -------------------------------------------------------------------------------------
gateway_app = typer.Typer(
    help="The appliance's PSTN gateways: list, health, add and change them while it runs.",
    no_args_is_help=True,
)
GatewayName = Annotated[str, typer.Argument(metavar="NAME", help="The gateway's name")]
Ip = Annotated[str | None, typer.Option("--ip", help="IP (settings key IP)")]
Fqdn = Annotated[str | None, typer.Option("--fqdn", help="FQDN, resolved at each change")]
Port = Annotated[int | None, typer.Option(help="Port (default 5060, 5061 for TLS)")]
Protocol = Annotated[
    str | None, typer.Option(help="UDP, TCP, TLS or MTLS (TLS with certificates both ways, 5067)")
]
Routes = Annotated[
    str | None,
    typer.Option(help="VoiceRoutes: route names of [HybridVoiceRoutes], space separated"),
]
MaxSessions = Annotated[int | None, typer.Option(help="MaxConcurrentSessions")]
Options = Annotated[
    bool | None, typer.Option("--options/--no-options", help="SendSipOptions (health checks)")
]
FailoverTime = Annotated[float | None, typer.Option(help="FailoverTimeSeconds")]
FailoverCodes = Annotated[
    str | None, typer.Option(help="FailoverResponseCodes, space separated, e.g. '408 503 504'")
]
MediaBypass = Annotated[bool | None, typer.Option(help="MediaBypass toward this gateway")]
MediaEncryption = Annotated[
    str | None, typer.Option(help="MediaEncryption toward this gateway: RTP, SRTP or Optional")
]
ForwardPai = Annotated[bool | None, typer.Option(help="ForwardPAI (P-Asserted-Identity)")]
MutualTls = Annotated[
    bool | None,
    typer.Option(help="MutualTls: the gateway must present a certificate naming it (TLS)"),
]
TrustedRoots = Annotated[
    str | None,
    typer.Option(help="TrustedRootsFile: PEM roots of the gateway's own chain (on the appliance)"),
]


def _no_gateway(name: str) -> dict[int, str]:
    return {404: f"There is no gateway {name}: `hybridvoice gateway list` shows them, "
                 f"`hybridvoice gateway add {name} --ip ...` adds it."}  # fmt: skip


def _gateway_keys(**options: Any) -> dict[str, Any]:
    """The options given, as the settings file's keys (errors name those keys)."""
    keys = {"ip": "IP", "fqdn": "FQDN", "port": "Port", "protocol": "Protocol",
            "voice_routes": "VoiceRoutes", "max_sessions": "MaxConcurrentSessions",
            "send_options": "SendSipOptions", "failover_time": "FailoverTimeSeconds",
            "failover_codes": "FailoverResponseCodes", "media_bypass": "MediaBypass",
            "media_encryption": "MediaEncryption",
            "forward_pai": "ForwardPAI", "enabled": "Enabled", "mutual_tls": "MutualTls",
            "trusted_roots_file": "TrustedRootsFile"}  # fmt: skip
    return {keys[k]: v for k, v in options.items() if v is not None}


def _gateway_change(appliance: str, name: str, changes: dict[str, Any], as_json: bool) -> None:
    try:
        row = change(appliance, f"/v1/gateways/{name}", changes, hints=_no_gateway(name))
    except LookupError:
        fail(f"there is no gateway {name}", _no_gateway(name)[404])
    _show_gateway(row, as_json)


def _show_gateway(row: dict[str, Any], as_json: bool) -> None:
    show(row, as_json, title=f"gateway {row.get('name', '')}")


@gateway_app.command("list")
def gateway_list(appliance: ApplianceUrl = APPLIANCE_URL, as_json: Json = False) -> None:
    """Every gateway: address, transport, enabled, OPTIONS health and last round trip,
    active calls."""
    rows = api("GET", appliance, "/v1/gateways")["gateways"]
    show(rows, as_json, GATEWAY_COLUMNS, "gateways")


@gateway_app.command("health")
def gateway_health(
    name: GatewayName, appliance: ApplianceUrl = APPLIANCE_URL, as_json: Json = False
) -> None:
    """One gateway's OPTIONS health: state, last answer and round trip, last error, misses
    in a row, calls."""
    _show_gateway(api("GET", appliance, f"/v1/gateways/{name}", hints=_no_gateway(name)), as_json)


def _gateway_command(*, create: bool) -> Callable[..., None]:
    """``gateway add`` (``create``) and ``gateway set``: the same options, sent as the
    settings file's keys; a change sends only the options given."""

    def command(
        name: GatewayName,
        ip: Ip = None,
        fqdn: Fqdn = None,
        port: Port = None,
        protocol: Protocol = None,
        voice_routes: Routes = None,
        max_sessions: MaxSessions = None,
        send_options: Options = None,
        failover_time: FailoverTime = None,
        failover_codes: FailoverCodes = None,
        media_bypass: MediaBypass = None,
        media_encryption: MediaEncryption = None,
        forward_pai: ForwardPai = None,
        mutual_tls: MutualTls = None,
        trusted_roots_file: TrustedRoots = None,
        appliance: ApplianceUrl = APPLIANCE_URL,
        as_json: Json = False,
    ) -> None:
        changes = _gateway_keys(
            ip=ip, fqdn=fqdn, port=port, protocol=protocol, voice_routes=voice_routes,
            max_sessions=max_sessions, send_options=send_options, failover_time=failover_time,
            failover_codes=failover_codes, media_bypass=media_bypass, forward_pai=forward_pai,
            mutual_tls=mutual_tls, trusted_roots_file=trusted_roots_file,
            media_encryption=media_encryption,
        )  # fmt: skip
        if not create:
            _gateway_change(appliance, name, changes, as_json)
            return
        hints = {409: f"Change it with `hybridvoice gateway set {name}`."}
        made = api("POST", appliance, "/v1/gateways", {"Name": name, **changes}, hints=hints)
        _show_gateway(made, as_json)

    return command


gateway_add = gateway_app.command(
    "add",
    help="Add a gateway now, without a restart (kept for the next start): it gets calls for "
    "its voice routes at once and its OPTIONS health checks start.",
)(_gateway_command(create=True))
gateway_set = gateway_app.command(
    "set",
    help="Change a gateway now, without a restart (kept for the next start); what is not "
    "given stays. Calls in progress keep their gateway.",
)(_gateway_command(create=False))


@gateway_app.command("enable")
def gateway_enable(
    name: GatewayName, appliance: ApplianceUrl = APPLIANCE_URL, as_json: Json = False
) -> None:
    """Take calls on the gateway again (and accept its requests); health checks restart."""
    _gateway_change(appliance, name, {"Enabled": True}, as_json)


@gateway_app.command("disable")
def gateway_disable(
    name: GatewayName, appliance: ApplianceUrl = APPLIANCE_URL, as_json: Json = False
) -> None:
    """No new calls to or from the gateway; calls in progress finish."""
    _gateway_change(appliance, name, {"Enabled": False}, as_json)


# --- call records (Get-CcCallRecords) -------------------------------------------------------------
calls_app = typer.Typer(help="Call records of the appliance (Get-CcCallRecords).",
                        no_args_is_help=True)  # fmt: skip
CALL_COLUMNS = ("start", "direction", "caller", "callee", "gateway", "result", "media_mode",
                "duration", "a_call_id")  # fmt: skip
_AGO: Final = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since``: an age (``90s``, ``15m``, ``2h``, ``7d``) or an ISO 8601 time (UTC unless
    it names a zone). ``typer.BadParameter`` otherwise."""
    if m := _AGO.fullmatch(text.strip()):
        ago = timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})
        return (now or datetime.now(UTC)) - ago
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither an age (15m, 2h, 7d) nor a time (2026-12-05T10:00)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _result(record: dict[str, Any]) -> str:
    """answered, failed (with the SIP status), active or interrupted."""
    state = record.get("state")
    if state in ("active", "interrupted"):
        return str(state)
    if record.get("answer_utc"):
        return "answered"
    return " ".join(str(p) for p in ("failed", record.get("sip_status")) if p)


@calls_app.command("list")
def calls_list(
    since: Annotated[
        str | None, typer.Option(help="Calls that started since: 15m, 2h, 7d or an ISO time")
    ] = None,
    party: Annotated[
        str | None,
        typer.Option("--user", "--number", help="Calls whose caller or callee contains this"),
    ] = None,
    result: Annotated[
        str | None,
        typer.Option(help="answered, failed, active, interrupted, or a SIP status (503)"),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first")] = 50,
    appliance: ApplianceUrl = APPLIANCE_URL,
    as_json: Json = False,
) -> None:
    """Call records, newest first (Get-CcCallRecords)."""
    query = given(since=None if since is None else parse_since(since).isoformat(),
                   party=party, result=result, limit=limit)  # fmt: skip
    rows = api("GET", appliance, "/v1/calls", params=query)
    if as_json:
        show(rows, True)
        return
    for row in rows:
        row["result"] = _result(row)
        row["start"] = str(row.get("start_utc", ""))[:19].replace("T", " ")
    show(rows, False, CALL_COLUMNS, "calls")


@calls_app.command("show")
def calls_show(
    call_id: Annotated[
        str, typer.Argument(metavar="CALL_ID", help="Call-ID of either leg, or the record id")
    ],
    appliance: ApplianceUrl = APPLIANCE_URL,
    as_json: Json = False,
) -> None:
    """One call: parties, gateway and attempts, media path, times, who hung up and why."""
    hints = {404: "`hybridvoice calls list` shows the calls and their Call-IDs."}
    show(api("GET", appliance, f"/v1/calls/{call_id}", hints=hints), as_json, title="call")
