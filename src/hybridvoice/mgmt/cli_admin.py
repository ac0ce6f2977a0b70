"""Admin commands for the cloud side and the appliance (typer sub-commands of ``hybridvoice``).

They talk JSON to the online service's API (``--url``, default ``$HYBRIDVOICE_URL`` or
``http://127.0.0.1:8470``) and to an appliance's management API (``--appliance``, default
``$HYBRIDVOICE_APPLIANCE_URL`` or ``http://127.0.0.1:8472``). Names follow the original's
cmdlets (docs/cmdlets.md has the map): New/Get/Set/Remove-CsHybridPSTNSite are
``site new|get|set|remove``, Set-CsUserPstnSettings is ``user set``,
Set-CsTenantHybridConfiguration is ``tenant set``, Set-CsNetworkConfiguration's
MediaBypassSettings are ``bypass enable|disable``, Get-CsHybridPSTNAppliance is
``appliance list``, Get-CcApplianceStatus is ``appliance status``, Enter/Exit-CcUpdate are
``appliance maintenance enter|exit``; the appliance's gateways and call records are
``gateway ...`` and ``calls ...`` (:mod:`.cli_appliance`). Every command takes ``--json`` for
scripts; errors say what went wrong in the command line's terms (never an API call), what to
do next, and exit 1 (2 when the service cannot be reached).

A command that changes an object sends only what the admin gave (a partial update,
:func:`change`), never what it read back: read-only fields (``has_password``) and fields the
admin did not name stay the service's business.
"""

from __future__ import annotations

import json
import os
import re
import ssl
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final, NoReturn

import httpx
import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from hybridvoice.cms.tokens import bearer
from hybridvoice.online.models import SECRET_USER_FIELDS, DialPlanRule, Site, User

from .credentials import TOKEN_ENV, current_token, token_file

__all__ = [
    "PlainHelpGroup",
    "api",
    "auth_headers",
    "cell",
    "change",
    "client",
    "exists",
    "fail",
    "format_duration",
    "given",
    "register_admin_commands",
    "show",
]

out = Console()
err = Console(stderr=True)

ONLINE_URL = os.environ.get("HYBRIDVOICE_URL", "http://127.0.0.1:8470")
APPLIANCE_URL = os.environ.get("HYBRIDVOICE_APPLIANCE_URL", "http://127.0.0.1:8472")

#: which option gave a service URL, for "cannot reach" errors (an option's callback sees it)
_URL_OPTIONS: dict[str, str] = {}


def _url_of(option: str) -> Any:
    def remember(value: str) -> str:
        _URL_OPTIONS[value] = option
        return value

    return remember


Url = Annotated[
    str,
    typer.Option("--url", help="The online service's API", envvar="HYBRIDVOICE_URL",
                 callback=_url_of("--url (or $HYBRIDVOICE_URL)")),
]  # fmt: skip
ApplianceUrl = Annotated[
    str,
    typer.Option(
        "--appliance", help="The appliance's management API", envvar="HYBRIDVOICE_APPLIANCE_URL",
        callback=_url_of("--appliance (or $HYBRIDVOICE_APPLIANCE_URL)"),
    ),
]  # fmt: skip
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts")]


# --- help without type labels -------------------------------------------------------------------
class _PlainOption(TyperOption):
    def display_type_rich(self, ctx: Any) -> str | None:
        return None


class _PlainArgument(TyperArgument):
    def display_type_rich(self, ctx: Any) -> str | None:
        return None


def _plain_help(command: TyperCommand | TyperGroup, ctx: Any) -> None:
    """Drop the ``<str>``/``<bool>`` labels typer prints after every option of ``command``
    and its sub-commands: the option names and help say it better."""
    helper = command.get_help_option(ctx)
    for param in [*command.params, *([helper] if helper is not None else [])]:
        if type(param) is TyperOption:
            param.__class__ = _PlainOption
        elif type(param) is TyperArgument:
            param.__class__ = _PlainArgument
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            if isinstance(sub, TyperCommand | TyperGroup):
                _plain_help(sub, ctx)


class PlainHelpGroup(TyperGroup):
    """The ``hybridvoice`` command: help without type labels, for every sub-command (also
    those other modules register)."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if isinstance(command, TyperCommand | TyperGroup):
            _plain_help(command, ctx)
        return command

    def get_params(self, ctx: Any) -> Any:
        _plain_help(self, ctx)
        return super().get_params(ctx)


# --- errors in the command line's terms ---------------------------------------------------------
#: what the services name in their errors (API calls, store operations, body fields) -> the
#: command or option that does it
_CLI_TERMS: Final = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"GET /v1/domains", "`hybridvoice domain list`"),
        (r"POST /v1/domains|\badd_domain\b", "`hybridvoice domain add`"),
        (r"DELETE /v1/users/\S+", "`hybridvoice user remove`"),
        (r"PUT /v1/users/\S+", "`hybridvoice user set`"),
        (r"GET /v1/users", "`hybridvoice user list`"),
        (r"PUT /v1/sites/\{\w+\}|\bset_site\b", "`hybridvoice site set`"),
        (r"PUT /v1/sites/(\S+)", r"`hybridvoice site set \1`"),
        (r"GET /v1/sites/\{\w+\}", "`hybridvoice site get`"),
        (r"GET /v1/sites", "`hybridvoice site list`"),
        (r"POST /v1/sites|\bnew_site\b", "`hybridvoice site new`"),
        (r"DELETE /v1/appliances/\S+|\bremove_appliance\b", "`hybridvoice appliance remove`"),
        (r"GET /v1/appliances", "`hybridvoice appliance list`"),
        (r"POST /v1/appliances|\bregister_appliance\b", "starting the appliance"),
        (r"PUT /v1/dialplan/\S+", "`hybridvoice dialplan set`"),
        (r"GET /v1/dialplan", "`hybridvoice dialplan list`"),
        (r"GET /v1/calls", "`hybridvoice calls list`"),
        (r"GET /v1/gateways", "`hybridvoice gateway list`"),
        (r"POST /v1/gateways", "`hybridvoice gateway add`"),
        (r"PATCH /v1/gateways/(\S+)", r"`hybridvoice gateway set \1`"),
        (r"\bhybrid_pstn_site\b", "--site"),
        (r"\benterprise_voice_enabled\b", "--enterprise-voice"),
        (r"\binternational_calls_allowed\b", "--international"),
        (r"\b(line_uri|display_name|edge_fqdn|country_code|peer_destination)\b",
         lambda m: "--" + m.group(1).replace("_", "-")),
        (r"\bhybrid_config_service_internal_url\b", "--hybrid-config-service-internal-url"),
    )
)  # fmt: skip


def cli_terms(text: str) -> str:
    """``text`` from a service with its API calls and fields named as commands and options."""
    for pattern, replacement in _CLI_TERMS:
        text = pattern.sub(replacement, text)
    return text


def fail(message: str, hint: str | None, code: int = 1) -> NoReturn:
    err.print(f"[red]{message}[/red]", highlight=False)
    if hint:
        err.print(hint, highlight=False)
    raise typer.Exit(code)


def client(base: str) -> httpx.Client:
    """The HTTP client of every command (one place for what each request carries)."""
    return httpx.Client(base_url=base, timeout=10.0, headers=auth_headers(), verify=trust())


def trust() -> ssl.SSLContext | bool:
    """HTTPS: the system's roots, plus the PEM file named by ``$HYBRIDVOICE_CA`` (the site
    root, ``hybridvoice ca export-root``, for an online API whose certificate the site CA
    issued)."""
    path = os.environ.get(CA_ENV)
    if not path:
        return True
    try:
        return ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        fail(f"{CA_ENV}: cannot load {path}: {exc}", "name a PEM file of CA certificates, "
             "e.g. the site root from `hybridvoice ca export-root --output root.pem`")  # fmt: skip


#: the environment variable naming extra trusted roots for HTTPS
CA_ENV: Final = "HYBRIDVOICE_CA"


def exists(base: str, path: str) -> bool | None:
    """Does the service have ``path``? None when it cannot say (unreachable, an error)."""
    try:
        with client(base) as http:
            status = http.get(path).status_code
    except httpx.HTTPError:
        return None
    return True if status == 200 else False if status == 404 else None


def _request(method: str, base: str, path: str, body: Mapping[str, Any] | None = None,
             params: Mapping[str, Any] | None = None) -> httpx.Response:  # fmt: skip
    try:
        with client(base) as http:
            return http.request(method, path, json=body, params=params)
    except httpx.HTTPError as exc:
        fail(
            f"cannot reach {base}: {exc}",
            f"Is `hybridvoice up` running? Point {_URL_OPTIONS.get(base, 'the URL')} at it.",
            2,
        )


def api(
    method: str,
    base: str,
    path: str,
    body: Mapping[str, Any] | None = None,
    *,
    missing_ok: bool = False,
    hints: Mapping[int, str] | None = None,
    params: Mapping[str, Any] | None = None,
) -> Any:
    """One JSON request; errors become a message in the command line's terms and exit 1/2.
    ``missing_ok``: a 404 raises ``LookupError`` instead (the caller creates the thing).
    ``hints``: what to do next, by status, in this command's words (else the service's
    hint, translated)."""
    response = _request(method, base, path, body, params)
    if response.status_code == 404 and missing_ok:
        raise LookupError(path)
    if response.status_code >= 400:
        _refused(response, hints or {})
    if response.status_code == 204 or not response.content:
        return None
    return response.json()


def auth_headers() -> dict[str, str]:
    """``Authorization: Bearer`` with the CLI's token (:mod:`.credentials`), when there is one."""
    return bearer(current_token())


def _refused(response: httpx.Response, hints: Mapping[int, str]) -> NoReturn:
    try:
        detail = response.json()
    except ValueError:
        detail = {"error": response.text or response.reason_phrase}
    if isinstance(detail, dict) and isinstance(detail.get("detail"), dict):
        detail = detail["detail"]
    if not isinstance(detail, dict):
        detail = {"error": str(detail)}
    error = str(detail.get("error") or detail.get("detail") or response.reason_phrase)
    hint = hints.get(response.status_code) or detail.get("hint")
    if response.status_code == 401:  # where the CLI's tokens come from
        hint = (f"Pass --token, set {TOKEN_ENV}, or start `hybridvoice up` (it saves its lab "
                f"admin token in {token_file()}).")  # fmt: skip
    fail(cli_terms(error), cli_terms(str(hint)) if hint else None)


def change(
    base: str,
    path: str,
    changes: Mapping[str, Any],
    *,
    model: type[BaseModel] | None = None,
    hints: Mapping[int, str] | None = None,
) -> Any:
    """A partial update: send only ``changes`` (PATCH). For a service that only replaces
    whole objects (405 to PATCH), read the object, keep the fields ``model`` accepts (never
    read-only or secret ones) and put it back with ``changes``. ``LookupError`` when the
    object does not exist."""
    if not changes:
        fail("nothing to change", "Give at least one option to change (--help lists them).")
    response = _request("PATCH", base, path, changes)
    if response.status_code == 405 and model is not None:
        current = api("GET", base, path, missing_ok=True)
        writable = set(model.model_fields) - SECRET_USER_FIELDS
        body = {k: v for k, v in current.items() if k in writable}
        return api("PUT", base, path, {**body, **changes}, hints=hints)
    if response.status_code == 404:
        raise LookupError(path)
    if response.status_code >= 400:
        _refused(response, hints or {})
    return response.json() if response.content else None


# --- output -------------------------------------------------------------------------------------
#: columns holding durations in seconds (``*_ms`` columns hold milliseconds)
_SECONDS: Final = frozenset({"duration", "talk_time", "ring_after", "answer_after", "lag_seconds"})


def format_duration(value: float, unit: str = "ms") -> str:
    """A duration for people: a few significant digits, never sixteen."""
    digits = 2 if abs(value) < 10 else 1 if abs(value) < 1000 else 0
    return f"{value:.{digits}f} {unit}"


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
            table.add_row(*(cell(row.get(c), c) for c in columns))
        out.print(table)
        return
    table = Table(title=title, show_header=False)
    for key, value in data.items():
        table.add_row(key, cell(value, key))
    out.print(table)


def cell(value: Any, column: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float) and column.endswith("_ms"):
        return format_duration(value)
    if isinstance(value, int | float) and column in _SECONDS:
        return format_duration(value, "s")
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


# --- sites (New/Get/Set/Remove-CsHybridPSTNSite) --------------------------------------------------
site_app = typer.Typer(help="Hybrid PSTN sites (New/Get/Set/Remove-CsHybridPSTNSite).",
                       no_args_is_help=True)  # fmt: skip
SITE_COLUMNS = ("name", "edge_fqdn", "country_code", "description")
SiteName = Annotated[str, typer.Argument(metavar="NAME", help="The site's name")]


def _no_site(name: str) -> dict[int, str]:
    return {404: f"There is no site {name}: `hybridvoice site list` shows the sites."}


@site_app.command("new")
def site_new(
    name: SiteName,
    edge_fqdn: Annotated[str, typer.Option(help="The site's access edge pool FQDN")],
    country_code: Annotated[str | None, typer.Option(help="E.164 country code, e.g. 1, 46")] = None,
    description: Annotated[str | None, typer.Option(help="Free text")] = None,
    url: Url = ONLINE_URL,
    as_json: Json = False,
) -> None:
    """Create a hybrid PSTN site (the first appliance's registration also creates one)."""
    body = given(name=name, edge_fqdn=edge_fqdn, country_code=country_code,
                  description=description)  # fmt: skip
    hints = {409: f"Change it with `hybridvoice site set {name}`."}
    show(api("POST", url, "/v1/sites", body, hints=hints), as_json)


@site_app.command("list")
def site_list(url: Url = ONLINE_URL, as_json: Json = False) -> None:
    """Every site."""
    show(api("GET", url, "/v1/sites")["sites"], as_json, SITE_COLUMNS, "hybrid PSTN sites")


@site_app.command("get")
def site_get(
    name: Annotated[
        str | None, typer.Argument(metavar="[NAME]", help="The site (all: none)")
    ] = None,
    url: Url = ONLINE_URL,
    as_json: Json = False,
) -> None:
    """Show one site, or all of them."""
    if name:
        show(api("GET", url, f"/v1/sites/{name}", hints=_no_site(name)), as_json)
    else:
        site_list(url, as_json)


@site_app.command("set")
def site_set(
    name: SiteName,
    edge_fqdn: Annotated[str | None, typer.Option(help="The site's access edge pool FQDN")] = None,
    country_code: Annotated[str | None, typer.Option(help="E.164 country code")] = None,
    description: Annotated[str | None, typer.Option(help="Free text")] = None,
    url: Url = ONLINE_URL,
    as_json: Json = False,
) -> None:
    """Change a site's edge FQDN, country code or description; what is not given stays."""
    changes = given(edge_fqdn=edge_fqdn, country_code=country_code, description=description)
    try:
        show(change(url, f"/v1/sites/{name}", changes, model=Site), as_json)
    except LookupError:
        fail(f"there is no site {name}", f"Create it with `hybridvoice site new {name} "
              "--edge-fqdn ...`; `hybridvoice site list` shows the sites.")  # fmt: skip


@site_app.command("remove")
def site_remove(name: SiteName, url: Url = ONLINE_URL) -> None:
    """Remove a site (refused while appliances are registered to it or users use it)."""
    api("DELETE", url, f"/v1/sites/{name}", hints=_no_site(name))
    out.print(f"site {name} removed")


# --- users (Set-CsUserPstnSettings, Get-CsOnlineUser) ---------------------------------------------
user_app = typer.Typer(help="Users and their PSTN settings (Set-CsUserPstnSettings).",
                       no_args_is_help=True)  # fmt: skip
USER_COLUMNS = ("sip_uri", "display_name", "line_uri", "enterprise_voice_enabled",
                "hybrid_pstn_site", "international_calls_allowed", "has_password")  # fmt: skip
SipUri = Annotated[str, typer.Argument(metavar="SIP_URI", help="e.g. sip:alice@contoso.com")]


def no_user(sip_uri: str) -> str:
    """What to say when ``sip_uri`` is not a user (every command says it the same way)."""
    user, _, domain = sip_uri.removeprefix("sip:").partition("@")
    return (f"{user} is not a user of {domain}: `hybridvoice user list` shows the users, "
            f"`hybridvoice user set sip:{user}@{domain} --password ...` creates it.")  # fmt: skip


@user_app.command("list")
def user_list(url: Url = ONLINE_URL, as_json: Json = False) -> None:
    """Every user (Get-CsOnlineUser)."""
    show(api("GET", url, "/v1/users")["users"], as_json, USER_COLUMNS, "users")


@user_app.command("get")
def user_get(
    sip_uri: Annotated[
        str | None, typer.Argument(metavar="[SIP_URI]", help="The user (all: none)")
    ] = None,
    url: Url = ONLINE_URL,
    as_json: Json = False,
) -> None:
    """Show one user, or all of them."""
    if sip_uri:
        show(api("GET", url, f"/v1/users/{sip_uri}", hints={404: no_user(sip_uri)}), as_json)
    else:
        user_list(url, as_json)


@user_app.command("set")
def user_set(
    sip_uri: SipUri,
    line_uri: Annotated[str | None, typer.Option(help="tel:+E.164 number")] = None,
    site: Annotated[str | None, typer.Option(help="Hybrid PSTN site (HybridPSTNSite)")] = None,
    enterprise_voice: Annotated[bool | None, typer.Option(help="Enterprise voice")] = None,
    international: Annotated[bool | None, typer.Option(help="AllowInternationalCalls")] = None,
    display_name: Annotated[str | None, typer.Option(help="The name callers see")] = None,
    password: Annotated[str | None, typer.Option(help="SIP digest password")] = None,
    url: Url = ONLINE_URL,
    as_json: Json = False,
) -> None:
    """Create a user or change its PSTN settings; options not given stay as they are."""
    changes = given(line_uri=line_uri, hybrid_pstn_site=site,
                     enterprise_voice_enabled=enterprise_voice,
                     international_calls_allowed=international,
                     display_name=display_name, password=password)  # fmt: skip
    path = f"/v1/users/{sip_uri}"
    try:
        show(change(url, path, changes, model=User), as_json)
    except LookupError:
        show(api("PUT", url, path, {"sip_uri": sip_uri, **changes}), as_json)


@user_app.command("remove")
def user_remove(sip_uri: SipUri, url: Url = ONLINE_URL) -> None:
    """Remove a user."""
    api("DELETE", url, f"/v1/users/{sip_uri}", hints={404: no_user(sip_uri)})
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
    use_onprem_dialplan: Annotated[
        bool | None, typer.Option(help="Normalise numbers with the appliance's dial plan")
    ] = None,
    url: Url = ONLINE_URL,
    as_json: Json = False,
) -> None:
    """Set HybridConfigServiceInternalUrl, PeerDestination, UseOnPremDialPlan; what is not
    given stays."""
    changes = given(hybrid_config_service_internal_url=hybrid_config_service_internal_url,
                     peer_destination=peer_destination,
                     use_onprem_dialplan=use_onprem_dialplan)  # fmt: skip
    show(change(url, "/v1/hybrid-config", changes), as_json)


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
    show(change(url, "/v1/network-config",
                given(media_bypass_enabled=True, always_bypass=always)), as_json)  # fmt: skip


@bypass_app.command("disable")
def bypass_disable(url: Url = ONLINE_URL, as_json: Json = False) -> None:
    """Disable media bypass: every call's media is anchored on the mediation role."""
    show(change(url, "/v1/network-config", {"media_bypass_enabled": False}), as_json)


@bypass_app.command("set")
def bypass_set(
    internal_subnets: Annotated[
        str | None,
        typer.Option(
            help="Client subnets that count as internal, space separated "
            '("" for the appliances\' own InternalSubnets)'
        ),
    ] = None,
    url: Url = ONLINE_URL,
    as_json: Json = False,
) -> None:
    """Change the network configuration's internal subnets; what is not given stays."""
    subnets = None if internal_subnets is None else internal_subnets.split()
    show(change(url, "/v1/network-config", given(internal_subnets=subnets)), as_json)


# --- dial plan (normalisation rules) --------------------------------------------------------------
dialplan_app = typer.Typer(help="The tenant dial plan's normalisation rules.", no_args_is_help=True)
RuleName = Annotated[str, typer.Argument(metavar="NAME", help="The rule's name")]


@dialplan_app.command("list")
def dialplan_list(url: Url = ONLINE_URL, as_json: Json = False) -> None:
    """The rules, in the order they are tried."""
    rows = api("GET", url, "/v1/dialplan")["rules"]
    show(rows, as_json, ("name", "priority", "pattern", "translation", "description"), "dial plan")


@dialplan_app.command("set")
def dialplan_set(
    name: RuleName,
    pattern: Annotated[
        str | None, typer.Option(help="Regular expression on the dialled string")
    ] = None,
    translation: Annotated[str | None, typer.Option(help="Replacement, e.g. +1$1")] = None,
    priority: Annotated[int | None, typer.Option(help="Lower is tried first")] = None,
    description: Annotated[str | None, typer.Option(help="Free text")] = None,
    url: Url = ONLINE_URL,
    as_json: Json = False,
) -> None:
    """Add a normalisation rule (--pattern and --translation needed), or change one: what
    is not given stays."""
    changes = given(pattern=pattern, translation=translation, priority=priority,
                     description=description)  # fmt: skip
    path = f"/v1/dialplan/{name}"
    try:
        show(change(url, path, changes, model=DialPlanRule), as_json)
    except LookupError:
        if pattern is None or translation is None:
            fail(f"there is no rule {name}",
                  f"Create it with `hybridvoice dialplan set {name} --pattern RE "
                  "--translation +1$1`.")  # fmt: skip
        show(api("PUT", url, path, {"name": name, **changes}), as_json)


@dialplan_app.command("remove")
def dialplan_remove(name: RuleName, url: Url = ONLINE_URL) -> None:
    """Remove a normalisation rule."""
    hints = {404: f"There is no rule {name}: `hybridvoice dialplan list` shows the rules."}
    api("DELETE", url, f"/v1/dialplan/{name}", hints=hints)
    out.print(f"rule {name} removed")


# --- SIP domains ----------------------------------------------------------------------------------
domain_app = typer.Typer(help="The tenant's SIP domains.", no_args_is_help=True)
DomainName = Annotated[str, typer.Argument(metavar="NAME", help="e.g. contoso.com")]


@domain_app.command("list")
def domain_list(url: Url = ONLINE_URL, as_json: Json = False) -> None:
    """The tenant's SIP domains."""
    data = api("GET", url, "/v1/domains")
    names = data["domains"] if isinstance(data, dict) else data
    rows = [{"name": n} if isinstance(n, str) else n for n in names]
    show(rows, as_json, ("name",), "SIP domains")


@domain_app.command("add")
def domain_add(name: DomainName, url: Url = ONLINE_URL, as_json: Json = False) -> None:
    """Add a SIP domain."""
    show(api("POST", url, "/v1/domains", {"name": name}), as_json)


@domain_app.command("remove")
def domain_remove(name: DomainName, url: Url = ONLINE_URL) -> None:
    """Remove a SIP domain (refused while users are in it)."""
    hints = {404: f"There is no domain {name}: `hybridvoice domain list` shows the domains.",
             409: "Remove its users first (`hybridvoice user remove`; `hybridvoice user "
                  "list` shows them), then the domain."}  # fmt: skip
    api("DELETE", url, f"/v1/domains/{name}", hints=hints)
    out.print(f"domain {name} removed")


def register_admin_commands(app: typer.Typer) -> None:
    """Add the admin sub-commands to the ``hybridvoice`` command."""
    from .cli_appliance import appliance_app, calls_app, gateway_app  # noqa: PLC0415
    from .cli_traces import register_trace_commands  # noqa: PLC0415

    register_trace_commands(calls_app)
    app.add_typer(site_app, name="site")
    app.add_typer(user_app, name="user")
    app.add_typer(tenant_app, name="tenant")
    app.add_typer(bypass_app, name="bypass")
    app.add_typer(appliance_app, name="appliance")
    app.add_typer(gateway_app, name="gateway")
    app.add_typer(calls_app, name="calls")
    app.add_typer(dialplan_app, name="dialplan")
    app.add_typer(domain_app, name="domain")
