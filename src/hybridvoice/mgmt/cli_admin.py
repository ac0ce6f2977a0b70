"""Admin commands for the cloud side and the appliance (typer sub-commands of ``hybridvoice``).

They talk JSON to the online service's API (``--url``, default ``$HYBRIDVOICE_URL`` or
``http://127.0.0.1:8470``) and to an appliance's management API (``--appliance``, default
``$HYBRIDVOICE_APPLIANCE_URL`` or ``http://127.0.0.1:8472``). Names follow the original's
cmdlets (docs/cmdlets.md has the map): New/Get/Set/Remove-CsHybridPSTNSite are
``site new|get|set|remove``, Set-CsUserPstnSettings is ``user set``,
Set-CsTenantHybridConfiguration is ``tenant set``, Set-CsNetworkConfiguration's
MediaBypassSettings are ``bypass enable|disable``, Get-CsHybridPSTNAppliance is
``appliance list``, Get-CcApplianceStatus is ``appliance status``, Enter/Exit-CcUpdate are
``appliance maintenance enter|exit``. Every command takes ``--json`` for scripts; errors say
what to do next and exit 1 (2 when the service cannot be reached).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.table import Table

from .credentials import TOKEN_ENV, current_token, token_file

__all__ = ["api", "auth_headers", "register_admin_commands", "show"]

out = Console()
err = Console(stderr=True)

ONLINE_URL = os.environ.get("HYBRIDVOICE_URL", "http://127.0.0.1:8470")
APPLIANCE_URL = os.environ.get("HYBRIDVOICE_APPLIANCE_URL", "http://127.0.0.1:8472")

Url = Annotated[
    str, typer.Option("--url", help="The online service's API", envvar="HYBRIDVOICE_URL")
]
ApplianceUrl = Annotated[
    str,
    typer.Option(
        "--appliance", help="The appliance's management API", envvar="HYBRIDVOICE_APPLIANCE_URL"
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts")]


def _fail(message: str, hint: str | None, code: int = 1) -> NoReturn:
    err.print(f"[red]{message}[/red]")
    if hint:
        err.print(hint)
    raise typer.Exit(code)


def api(
    method: str,
    base: str,
    path: str,
    body: Mapping[str, Any] | None = None,
    *,
    missing_ok: bool = False,
) -> Any:
    """One JSON request; errors become a message with the service's hint and exit 1/2.
    ``missing_ok``: a 404 raises ``LookupError`` instead (the caller creates the thing)."""
    try:
        with httpx.Client(base_url=base, timeout=10.0, headers=auth_headers()) as client:
            response = client.request(method, path, json=body)
    except httpx.HTTPError as exc:
        _fail(
            f"cannot reach {base}: {exc}",
            "Is `hybridvoice up` running? Point --url (or the environment variable) at it.",
            2,
        )
    if response.status_code == 404 and missing_ok:
        raise LookupError(path)
    if response.status_code >= 400:
        try:
            detail = response.json()
        except ValueError:
            detail = {"error": response.text}
        if isinstance(detail, dict) and isinstance(detail.get("detail"), dict):
            detail = detail["detail"]
        error = detail.get("error", detail) if isinstance(detail, dict) else detail
        hint = detail.get("hint") if isinstance(detail, dict) else None
        if response.status_code == 401:
            hint = (f"Pass --token, set {TOKEN_ENV}, or start `hybridvoice up` (it saves its lab "
                    f"admin token in {token_file()}).")  # fmt: skip
        _fail(f"{method} {path}: {response.status_code} {error}", hint)
    if response.status_code == 204 or not response.content:
        return None
    return response.json()


def auth_headers() -> dict[str, str]:
    """``Authorization: Bearer`` with the CLI's token (:mod:`.credentials`), when there is one."""
    token = current_token()
    return {"Authorization": f"Bearer {token}"} if token else {}


def show(data: Any, as_json: bool, columns: Sequence[str] = (), title: str | None = None) -> None:
    """``data`` as JSON, as a table of ``columns`` (a list of rows), or as key/value rows."""
    if as_json:
        out.print_json(json.dumps(data))
        return
    if data is None:
        out.print("done")
        return
    if isinstance(data, list):
        table = Table(title=title)
        for column in columns:
            table.add_column(column)
        for row in data:
            table.add_row(*(_cell(row.get(c)) for c in columns))
        out.print(table)
        return
    table = Table(title=title, show_header=False)
    for key, value in data.items():
        table.add_row(key, _cell(value))
    out.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def _given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


# --- sites (New/Get/Set/Remove-CsHybridPSTNSite) --------------------------------------------------
site_app = typer.Typer(help="Hybrid PSTN sites (New/Get/Set/Remove-CsHybridPSTNSite).",
                       no_args_is_help=True)  # fmt: skip
SITE_COLUMNS = ("name", "edge_fqdn", "country_code", "description")


@site_app.command("new")
def site_new(
    name: str,
    edge_fqdn: Annotated[str, typer.Option(help="The site's access edge pool FQDN")],
    country_code: Annotated[str | None, typer.Option(help="E.164 country code, e.g. 1, 46")] = None,
    description: str = "",
    url: Url = ONLINE_URL,
    as_json: Json = False,
) -> None:
    """Create a hybrid PSTN site (the first appliance's registration also creates one)."""
    body = _given(name=name, edge_fqdn=edge_fqdn, country_code=country_code)
    show(api("POST", url, "/v1/sites", {**body, "description": description}), as_json)


@site_app.command("get")
def site_get(name: Annotated[str | None, typer.Argument()] = None, url: Url = ONLINE_URL,
             as_json: Json = False) -> None:  # fmt: skip
    """Show one site, or all of them."""
    if name:
        show(api("GET", url, f"/v1/sites/{name}"), as_json)
    else:
        show(api("GET", url, "/v1/sites")["sites"], as_json, SITE_COLUMNS, "hybrid PSTN sites")


@site_app.command("set")
def site_set(
    name: str,
    edge_fqdn: Annotated[str | None, typer.Option()] = None,
    country_code: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    url: Url = ONLINE_URL,
    as_json: Json = False,
) -> None:
    """Change a site's edge FQDN, country code or description."""
    current = api("GET", url, f"/v1/sites/{name}")
    body = {**current, **_given(edge_fqdn=edge_fqdn, country_code=country_code,
                                description=description)}  # fmt: skip
    show(api("PUT", url, f"/v1/sites/{name}", body), as_json)


@site_app.command("remove")
def site_remove(name: str, url: Url = ONLINE_URL) -> None:
    """Remove a site (refused while appliances are registered to it)."""
    api("DELETE", url, f"/v1/sites/{name}")
    out.print(f"site {name} removed")


# --- users (Set-CsUserPstnSettings, Get-CsOnlineUser) ---------------------------------------------
user_app = typer.Typer(help="Users and their PSTN settings (Set-CsUserPstnSettings).",
                       no_args_is_help=True)  # fmt: skip
USER_COLUMNS = ("sip_uri", "line_uri", "enterprise_voice_enabled", "hybrid_pstn_site",
                "international_calls_allowed")  # fmt: skip


@user_app.command("get")
def user_get(sip_uri: Annotated[str | None, typer.Argument()] = None, url: Url = ONLINE_URL,
             as_json: Json = False) -> None:  # fmt: skip
    """Show one user, or all of them."""
    if sip_uri:
        show(api("GET", url, f"/v1/users/{sip_uri}"), as_json)
    else:
        show(api("GET", url, "/v1/users")["users"], as_json, USER_COLUMNS, "users")


@user_app.command("set")
def user_set(
    sip_uri: Annotated[str, typer.Argument(help="e.g. sip:alice@contoso.com")],
    line_uri: Annotated[str | None, typer.Option(help="tel:+E.164 number")] = None,
    site: Annotated[str | None, typer.Option(help="Hybrid PSTN site (HybridPSTNSite)")] = None,
    enterprise_voice: Annotated[bool | None, typer.Option(help="Enterprise voice")] = None,
    international: Annotated[bool | None, typer.Option(help="AllowInternationalCalls")] = None,
    display_name: Annotated[str | None, typer.Option()] = None,
    password: Annotated[str | None, typer.Option(help="SIP digest password")] = None,
    url: Url = ONLINE_URL,
    as_json: Json = False,
) -> None:
    """Create a user or change its PSTN settings; options not given stay as they are."""
    try:
        current = api("GET", url, f"/v1/users/{sip_uri}", missing_ok=True)
    except LookupError:
        current = {"sip_uri": sip_uri}
    body = {**current, **_given(line_uri=line_uri, hybrid_pstn_site=site,
                                enterprise_voice_enabled=enterprise_voice,
                                international_calls_allowed=international,
                                display_name=display_name, password=password)}  # fmt: skip
    show(api("PUT", url, f"/v1/users/{sip_uri}", body), as_json)


@user_app.command("remove")
def user_remove(sip_uri: str, url: Url = ONLINE_URL) -> None:
    """Remove a user."""
    api("DELETE", url, f"/v1/users/{sip_uri}")
    out.print(f"user {sip_uri} removed")


# --- tenant hybrid configuration ------------------------------------------------------------------
tenant_app = typer.Typer(help="Tenant hybrid configuration (Set/Get-CsTenantHybridConfiguration).",
                         no_args_is_help=True)  # fmt: skip


@tenant_app.command("get")
def tenant_get(url: Url = ONLINE_URL, as_json: Json = False) -> None:
    """Show the tenant hybrid configuration."""
    show(api("GET", url, "/v1/hybrid-config"), as_json)


@tenant_app.command("set")
def tenant_set(
    hybrid_config_service_internal_url: Annotated[
        str | None, typer.Option(help="The media bypass web service URL clients use")
    ] = None,
    peer_destination: Annotated[
        str | None, typer.Option(help="Appliance pool for users without a site")
    ] = None,
    url: Url = ONLINE_URL,
    as_json: Json = False,
) -> None:
    """Set HybridConfigServiceInternalUrl and PeerDestination."""
    current = api("GET", url, "/v1/hybrid-config")
    body = {**current, **_given(
        hybrid_config_service_internal_url=hybrid_config_service_internal_url,
        peer_destination=peer_destination)}  # fmt: skip
    show(api("PUT", url, "/v1/hybrid-config", body), as_json)


# --- media bypass (network configuration) ---------------------------------------------------------
bypass_app = typer.Typer(help="Media bypass (Set-CsNetworkConfiguration MediaBypassSettings).",
                         no_args_is_help=True)  # fmt: skip


@bypass_app.command("get")
def bypass_get(url: Url = ONLINE_URL, as_json: Json = False) -> None:
    """Show the network configuration (media bypass, internal subnets)."""
    show(api("GET", url, "/v1/network-config"), as_json)


@bypass_app.command("enable")
def bypass_enable(
    always: Annotated[
        bool | None, typer.Option("--always/--not-always", help="AlwaysBypass")
    ] = None,
    url: Url = ONLINE_URL,
    as_json: Json = False,
) -> None:
    """Enable media bypass: internal clients send media straight to the gateway. Appliances
    pick it up from replication within a second; the next call uses it."""
    body = _given(always_bypass=always) or None
    show(api("POST", url, "/v1/network-config/media-bypass/enable", body), as_json)


@bypass_app.command("disable")
def bypass_disable(url: Url = ONLINE_URL, as_json: Json = False) -> None:
    """Disable media bypass: every call's media is anchored on the mediation role."""
    show(api("POST", url, "/v1/network-config/media-bypass/disable"), as_json)


# --- appliances (Get-CsHybridPSTNAppliance, Get-CcApplianceStatus, Enter/Exit-CcUpdate) -----------
appliance_app = typer.Typer(help="Appliances: list, status, maintenance.", no_args_is_help=True)
APPLIANCE_COLUMNS = ("name", "site", "status", "version", "edge_sip_host", "edge_sip_port",
                     "edge_sip_transport")  # fmt: skip


@appliance_app.command("list")
def appliance_list(
    site: Annotated[str | None, typer.Option(help="Only this site's")] = None,
    url: Url = ONLINE_URL,
    as_json: Json = False,
) -> None:
    """Appliances registered with the online service, and their status
    (Get-CsHybridPSTNAppliance)."""
    path = "/v1/appliances" + (f"?site={site}" if site else "")
    data = api("GET", url, path)
    rows = data["appliances"] if isinstance(data, dict) else data
    show(rows, as_json, APPLIANCE_COLUMNS, "appliances")


@appliance_app.command("remove")
def appliance_remove(name: str, url: Url = ONLINE_URL) -> None:
    """Unregister an appliance (Unregister-CcAppliance)."""
    api("DELETE", url, f"/v1/appliances/{name}")
    out.print(f"appliance {name} unregistered")


@appliance_app.command("status")
def appliance_status(appliance: ApplianceUrl = APPLIANCE_URL, as_json: Json = False) -> None:
    """This appliance: roles, listeners, gateways and their health, calls now, replica version
    and lag (Get-CcApplianceStatus)."""
    data = api("GET", appliance, "/v1/status")
    if as_json:
        show(data, True)
        return
    summary = Table(title=f"appliance {data['name']} (site {data['site']})", show_header=False)
    summary.add_row("state", data["state"])
    summary.add_row("version", data["version"])
    summary.add_row("roles", ", ".join(data["roles"]))
    summary.add_row("calls now", f"{data['calls_now']} of {data['call_limit']}")
    summary.add_row("media bypass", _cell(data["media_bypass"]))
    rep = data["replica"]
    connected = "connected" if rep["connected"] else "NOT connected"
    summary.add_row("replica", f"version {rep['version']}, lag {rep['lag_seconds']} s, {connected}")
    link = data["online"]
    summary.add_row("online service", f"{link['url']} "
                    f"({'registered' if link['registered'] else 'not registered'})")  # fmt: skip
    out.print(summary)
    show(data["listeners"], False, ("role", "transport", "host", "port"), "listeners")
    show(data["gateways"], False, ("name", "address", "health", "active_calls", "calls_total",
                                   "last_options_rtt_ms"), "gateways")  # fmt: skip


@appliance_app.command("maintenance")
def appliance_maintenance(
    action: Annotated[str, typer.Argument(help="enter or exit")],
    appliance: ApplianceUrl = APPLIANCE_URL,
    as_json: Json = False,
) -> None:
    """Drain the appliance (no new calls, calls in progress finish) or take calls again
    (Enter-CcUpdate / Exit-CcUpdate)."""
    if action not in ("enter", "exit"):
        _fail(f"unknown action {action!r}", "Use: hybridvoice appliance maintenance enter|exit")
    show(api("POST", appliance, f"/v1/maintenance/{action}"), as_json)


# --- dial plan (normalisation rules) --------------------------------------------------------------
dialplan_app = typer.Typer(help="The tenant dial plan's normalisation rules.", no_args_is_help=True)


@dialplan_app.command("list")
def dialplan_list(url: Url = ONLINE_URL, as_json: Json = False) -> None:
    """The rules, in the order they are tried."""
    rows = api("GET", url, "/v1/dialplan")["rules"]
    show(rows, as_json, ("name", "priority", "pattern", "translation", "description"), "dial plan")


@dialplan_app.command("set")
def dialplan_set(
    name: str,
    pattern: Annotated[str, typer.Option(help="Regular expression on the dialled string")],
    translation: Annotated[str, typer.Option(help="Replacement, e.g. +1$1")],
    priority: int = 0,
    description: str = "",
    url: Url = ONLINE_URL,
    as_json: Json = False,
) -> None:
    """Add or change a normalisation rule."""
    body = {"name": name, "pattern": pattern, "translation": translation,
            "priority": priority, "description": description}  # fmt: skip
    show(api("PUT", url, f"/v1/dialplan/{name}", body), as_json)


@dialplan_app.command("remove")
def dialplan_remove(name: str, url: Url = ONLINE_URL) -> None:
    """Remove a normalisation rule."""
    api("DELETE", url, f"/v1/dialplan/{name}")
    out.print(f"rule {name} removed")


# --- SIP domains ----------------------------------------------------------------------------------
domain_app = typer.Typer(help="The tenant's SIP domains.", no_args_is_help=True)


@domain_app.command("list")
def domain_list(url: Url = ONLINE_URL, as_json: Json = False) -> None:
    """The tenant's SIP domains."""
    data = api("GET", url, "/v1/domains")
    names = data["domains"] if isinstance(data, dict) else data
    rows = [{"name": n} if isinstance(n, str) else n for n in names]
    show(rows, as_json, ("name",), "SIP domains")


@domain_app.command("add")
def domain_add(name: str, url: Url = ONLINE_URL, as_json: Json = False) -> None:
    """Add a SIP domain."""
    show(api("POST", url, "/v1/domains", {"name": name}), as_json)


@domain_app.command("remove")
def domain_remove(name: str, url: Url = ONLINE_URL) -> None:
    """Remove a SIP domain (refused while users are in it)."""
    api("DELETE", url, f"/v1/domains/{name}")
    out.print(f"domain {name} removed")


def register_admin_commands(app: typer.Typer) -> None:
    """Add the admin sub-commands to the ``hybridvoice`` command."""
    app.add_typer(site_app, name="site")
    app.add_typer(user_app, name="user")
    app.add_typer(tenant_app, name="tenant")
    app.add_typer(bypass_app, name="bypass")
    app.add_typer(appliance_app, name="appliance")
    app.add_typer(dialplan_app, name="dialplan")
    app.add_typer(domain_app, name="domain")
