"""The ``hybridvoice`` command line (typer + rich).

Command names stay close to the original system's cmdlets where one exists; the map
lives in docs/cmdlets.md once the roles land.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hybridvoice import __version__
from hybridvoice.mgmt.cli_admin import PlainHelpGroup, format_duration, register_admin_commands
from hybridvoice.mgmt.cli_ca import register_ca_commands
from hybridvoice.mgmt.cli_dns import register_dns_commands
from hybridvoice.mgmt.cli_logs import register_log_commands
from hybridvoice.mgmt.cli_online import online_app, register_online_commands
from hybridvoice.mgmt.cli_plan import register_plan_commands
from hybridvoice.mgmt.cli_serve_common import LogComponents, LogFormatOption, LogLevel
from hybridvoice.mgmt.cli_tokens import register_token_commands
from hybridvoice.mgmt.cli_turn import register_turn_commands
from hybridvoice.mgmt.cli_update import register_update_commands
from hybridvoice.mgmt.cli_update_windows import register_update_window_commands
from hybridvoice.mgmt.credentials import TOKEN_ENV, current_token
from hybridvoice.online_serve import register_online_serve

app = typer.Typer(
    name="hybridvoice",
    help=(
        "hybridvoice: an open hybrid-voice cloud connector.\n\n"
        "Cloud users, local media, PSTN breakout at each site: the online service and "
        "appliances with edge, mediation, CMS and CA roles."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    cls=PlainHelpGroup,
)
sip_app = typer.Typer(
    help="Talk SIP directly: OPTIONS pings and a responder for labs.", no_args_is_help=True
)
app.add_typer(sip_app, name="sip")
mediation_app = typer.Typer(
    help="Run the mediation role on its own (benchmarks, demos).", no_args_is_help=True
)
app.add_typer(mediation_app, name="mediation")
register_admin_commands(app)
register_token_commands(app)
register_ca_commands(app)
register_turn_commands(app)
register_online_commands(app)
register_online_serve(online_app)
register_dns_commands(app)
register_log_commands(app)
register_update_window_commands(app)
register_update_commands(app)
register_plan_commands(app)

out = Console()
err = Console(stderr=True)


@app.command()
def version() -> None:
    """Print the hybridvoice version."""
    out.print(__version__)


def _print_version(given: bool) -> None:
    if given:
        from importlib.metadata import version as installed  # noqa: PLC0415

        out.print(f"hybridvoice {installed('hybridvoice')}", highlight=False)
        raise typer.Exit


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit", is_eager=True, callback=_print_version
        ),
    ] = False,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="Bearer token for the management APIs (default: $HYBRIDVOICE_TOKEN, else the "
            "one `hybridvoice up` saved in the user's config directory)",
        ),
    ] = None,
) -> None:
    """hybridvoice: an open hybrid-voice cloud connector."""  # the app's help is shown
    if token:  # this command's $HYBRIDVOICE_TOKEN: credentials.current_token reads it there
        os.environ[TOKEN_ENV] = token


@sip_app.command("options")
def sip_options(
    uri: Annotated[
        str,
        typer.Argument(help="Target, e.g. sip:gw1.example.com or sip:127.0.0.1:5060;transport=tcp"),
    ],
    transport: Annotated[
        str | None, typer.Option(help="udp, tcp or tls; default: from the URI (RFC 3263)")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a final response")] = 5.0,
    insecure: Annotated[
        bool, typer.Option(help="TLS: do not verify the server certificate")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Send OPTIONS to URI and print the response and the round-trip time.

    Exits 0 on a 2xx answer, 1 on any other final response, 2 when nothing answered.
    """
    import ssl  # noqa: PLC0415 - keep --help fast

    from hybridvoice.net.options import RequestTimeoutError, TransportError, ping  # noqa: PLC0415

    context = None
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        result = asyncio.run(ping(uri, transport=transport, timeout=timeout, tls_context=context))
    except ValueError as exc:
        err.print(f"[red]bad URI:[/red] {exc}")
        err.print("Give a SIP URI such as sip:gw1.example.com:5060;transport=tcp")
        raise typer.Exit(2) from exc
    except (RequestTimeoutError, TransportError, OSError) as exc:
        problem = _no_answer(uri, transport, timeout, exc)
        if as_json:
            out.print_json(json.dumps({"uri": uri, "error": problem}))
        else:
            err.print(f"[red]no answer:[/red] {problem}", highlight=False)
            err.print("Check the address and port, and the transport (the URI's ;transport= "
                      "or --transport) against what the peer listens on.")  # fmt: skip
        raise typer.Exit(2) from exc
    response = result.response
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "uri": uri,
                    "status": response.status,
                    "reason": response.reason,
                    "rtt_ms": round(result.rtt_ms, 3),
                    "headers": [[n, v] for n, v in response.headers],
                }
            )
        )
    else:
        table = Table(title=f"OPTIONS {uri}", show_header=False)
        table.add_row("status", f"{response.status} {response.reason}")
        table.add_row("round trip", f"{result.rtt_ms:.2f} ms")
        for name in ("Server", "User-Agent", "Allow", "Supported", "Accept"):
            value = response.headers.get(name)
            if value is not None:
                table.add_row(name, value)
        out.print(table)
    raise typer.Exit(0 if 200 <= response.status < 300 else 1)


def _no_answer(uri: str, transport: str | None, timeout: float, exc: Exception) -> str:
    """Why OPTIONS got no answer, with the transport, address and port it went to."""
    from hybridvoice.net.transport import DEFAULT_PORTS, TransportError  # noqa: PLC0415
    from hybridvoice.sip.uri import SipUri, parse_uri  # noqa: PLC0415

    target = parse_uri(uri)
    assert isinstance(target, SipUri)  # ping refused anything else with ValueError
    kind = (transport or target.transport or ("TLS" if target.secure else "UDP")).upper()
    where = f"{kind} {target.maddr or target.host}:{target.port or DEFAULT_PORTS[kind]}"
    reason = getattr(exc, "reason", None)
    if reason == "timeout":
        return f"no final response from {where} within {timeout:g} s"
    if reason == "transport" or isinstance(exc, TransportError | OSError):
        detail = "" if reason == "transport" else f": {exc}"
        return (f"could not reach {where} (refused or unreachable{detail}): nothing "
                f"listens there over {kind}?")  # fmt: skip
    return f"{where}: {exc}"


@sip_app.command("serve")
def sip_serve(
    listen: Annotated[
        list[str],
        typer.Option(help="transport:host:port to listen on; repeat for several"),
    ] = ["udp:127.0.0.1:5060"],  # noqa: B006 - typer needs a literal default
    tls_cert: Annotated[
        str | None, typer.Option(help="PEM certificate chain for tls listeners")
    ] = None,
    tls_key: Annotated[str | None, typer.Option(help="PEM private key for tls listeners")] = None,
    answer: Annotated[
        bool,
        typer.Option(
            help="Answer calls: 180, then 200 with an SDP answer (PCMU, PCMA, telephone-event) "
            "naming an echo port: every RTP packet sent there comes back. Calls last until BYE."
        ),
    ] = False,
) -> None:
    """Run a SIP responder for labs: answers OPTIONS 200 and refuses calls politely (480),
    or answers them with --answer and echoes their media (a PSTN test line).

    It runs the real endpoint (transports, transaction layer, UAS checks of RFC 3261 §8.2)
    and the UA core (dialogs, INVITE sessions).
    """
    from hybridvoice.app import run_responder  # noqa: PLC0415

    try:
        asyncio.run(
            run_responder(listen, tls_cert=tls_cert, tls_key=tls_key, console=err, answer=answer)
        )
    except KeyboardInterrupt:
        pass
    except ValueError as exc:
        err.print(f"[red]bad setting:[/red] {exc}")
        raise typer.Exit(2) from exc


@mediation_app.command("serve")
def mediation_serve(
    config: Annotated[Path, typer.Option(help="appliance settings (TOML)")],
    edge: Annotated[str, typer.Option(help="edge-side listener")] = "udp:127.0.0.1:5090",
    edge_target: Annotated[str, typer.Option(help="inbound next hop")] = "udp:127.0.0.1:5070",
    edge_domain: Annotated[str | None, typer.Option()] = None,
    relay: Annotated[
        bool, typer.Option("--relay/--no-relay", help="anchor media; --no-relay: SDP passes")
    ] = True,
    records: Annotated[Path | None, typer.Option(help="call records (SQLite)")] = None,
    bypass_service: Annotated[
        bool, typer.Option("--bypass-service/--no-bypass-service", help="media bypass service")
    ] = True,
    options_interval: Annotated[float | None, typer.Option()] = None,
    session_timer: Annotated[
        bool, typer.Option("--session-timer/--no-session-timer", help="ask for RFC 4028 timers")
    ] = True,
    gc_interval: Annotated[
        float,
        typer.Option(help="young-generation GC only, a full collection every N s (0: default)"),
    ] = 600.0,
    gc_log: Annotated[bool, typer.Option(help="print collector pauses > 20 ms")] = False,
    profile: Annotated[Path | None, typer.Option(help="write cProfile stats here")] = None,
    metrics: Annotated[
        str | None, typer.Option(help="Serve Prometheus /metrics on HOST:PORT", metavar="HOST:PORT")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "warning",
    log_component: Annotated[
        str, typer.Option(help="Levels of components: mediation=debug,net=info")
    ] = "",
    log_dir: Annotated[
        Path | None, typer.Option(help="Also write rotated JSON logs here (logs search --dir)")
    ] = None,
) -> None:
    """Run the mediation role alone: prints READY with its ports once listening, STATS with
    its call counters on SIGTERM/SIGINT."""
    import contextlib  # noqa: PLC0415

    from hybridvoice.app import run_mediation  # noqa: PLC0415
    from hybridvoice.mediation.role import RoleOptions, parse_hostport  # noqa: PLC0415
    from hybridvoice.net.loop import run  # noqa: PLC0415
    from hybridvoice.sip.session import SessionConfig  # noqa: PLC0415

    options = RoleOptions(
        edge=parse_hostport(edge),
        edge_target=parse_hostport(edge_target),
        edge_domain=edge_domain,
        relay=relay,
        bypass_service=bypass_service,
        records=records,
        options_interval=options_interval,
        session=None if session_timer else SessionConfig(session_expires=None),
    )
    from hybridvoice.mgmt.cli_serve_common import settings_or_exit, start_logging  # noqa: PLC0415

    start_logging(err, log_level, "text", log_component, directory=log_dir)
    settings = settings_or_exit(err, config)
    serve = run_mediation(settings, options, gc_interval=gc_interval, gc_log=gc_log,
                          metrics=metrics)  # fmt: skip
    if profile is None:
        from hybridvoice.mgmt.metrics_http import MetricsListenError  # noqa: PLC0415

        try:
            with contextlib.suppress(KeyboardInterrupt):
                run(serve)
        except MetricsListenError as exc:
            err.print(f"[red]cannot start:[/red] {exc}", highlight=False)
            raise typer.Exit(2) from exc
        return
    import cProfile  # noqa: PLC0415

    profiler = cProfile.Profile()
    with contextlib.suppress(KeyboardInterrupt):
        profiler.runcall(run, serve)
    profiler.dump_stats(profile)


@app.command()
def init(
    ini: Annotated[
        Path | None,
        typer.Option(help="Import this CloudConnector.ini instead of writing lab defaults"),
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Settings file to write")] = Path(
        "hybridvoice.toml"
    ),
    force: Annotated[bool, typer.Option(help="Overwrite OUTPUT if it exists")] = False,
    fleet: Annotated[
        bool,
        typer.Option(
            "--fleet",
            help="Write a fleet description instead: two sites, several appliances each, "
            "each appliance its own process under up (docs/fleet.md)",
        ),
    ] = False,
    segments: Annotated[
        bool,
        typer.Option(
            "--segments",
            help="A lab whose addresses tell the network segments "
            "apart, for hybridvoice plan verify (docs/planning.md)",
        ),
    ] = False,
) -> None:
    """Write a commented settings file (keys mirror CloudConnector.ini).

    Without --ini the file describes a one-machine lab (loopback, a built-in lab gateway);
    with --ini it carries over a real Cloud Connector Edition CloudConnector.ini, lists
    every key it could not map, and moves what cannot run on one host (listeners on one
    address, ports below 1024, TLS between roles without certificates), in the output and in
    the file's comments. Then: hybridvoice up --config.
    """
    from hybridvoice.cms.ini import import_ini  # noqa: PLC0415
    from hybridvoice.cms.settings import SettingsError  # noqa: PLC0415
    from hybridvoice.cms.template import lab_settings, render_settings  # noqa: PLC0415

    if fleet and ini is not None:
        err.print("[red]--fleet and --ini do not go together:[/red] a CloudConnector.ini is one "
                  "site's; import it without --fleet")  # fmt: skip
        raise typer.Exit(2)
    if output.exists() and not force:
        err.print(f"[red]{output} exists.[/red] Pass --force to overwrite it, or -o elsewhere.")
        raise typer.Exit(1)
    imported = None
    if fleet:
        from hybridvoice.cms.fleet_template import FLEET_EXAMPLE  # noqa: PLC0415

        text = FLEET_EXAMPLE
    elif ini is None:
        from hybridvoice.cms.template_segments import segmented_lab  # noqa: PLC0415

        text = render_settings(segmented_lab(lab_settings()) if segments else lab_settings())
    else:
        try:
            imported = import_ini(ini.read_text(encoding="utf-8-sig"))
        except OSError as exc:
            err.print(f"[red]cannot read {ini}:[/red] {exc.strerror or exc}")
            raise typer.Exit(2) from exc
        except SettingsError as exc:
            err.print(f"[red]{ini} cannot be imported:[/red]")
            for problem in exc.problems:
                err.print(f"  {problem}")
            err.print("Fix these keys in the ini file (or in the written TOML) and try again.")
            raise typer.Exit(2) from exc
        text = render_settings(
            imported.settings, source=str(ini), unmapped=imported.unmapped, notes=imported.notes
        )
    output.write_text(text, encoding="utf-8")
    out.print(f"wrote {output}")
    if imported is not None and imported.unmapped:
        out.print(f"{len(imported.unmapped)} key(s) of {ini} have no hybridvoice setting:")
        for key in imported.unmapped:
            out.print(f"  {key}", markup=False, highlight=False)
    if imported is not None and imported.notes:
        out.print(f"{len(imported.notes)} value(s) changed to run on one host (also in the file):")
        for note in imported.notes:
            out.print(f"  {note}", markup=False, highlight=False)
    out.print(f"next: hybridvoice up --config {output}")


def _is_fleet(config: Path) -> bool:
    from hybridvoice.cms.fleet_plan import is_fleet_file  # noqa: PLC0415

    return is_fleet_file(config)


@app.command()
def up(
    config: Annotated[
        Path | None, typer.Option(help="Settings file (hybridvoice init writes one)")
    ] = None,
    state_dir: Annotated[
        str | None,
        typer.Option(
            help="Where data lives (tenant, replica, call records), kept across restarts; "
            "':memory:' for a throwaway lab. Default: the per-user data directory "
            "(~/.local/share/hybridvoice/lab, or .../sites/SITENAME with --config)",
            metavar="DIR",
        ),
    ] = None,
    lab_users: Annotated[
        bool | None,
        typer.Option(
            "--lab-users/--no-lab-users",
            help="Seed the lab users alice and bob (known password) into a new tenant. "
            "Default: in the lab (no --config) only",
        ),
    ] = None,
    lab_gateway: Annotated[
        bool | None,
        typer.Option(
            "--lab-gateway/--no-lab-gateway",
            help="Run the built-in lab gateway in place of the first gateway of the settings "
            "(default: when that gateway is the lab one, 127.0.0.1:5080)",
        ),
    ] = None,
    wire: Annotated[
        bool,
        typer.Option(
            help="Put SIP between the online service, edge and mediation on loopback sockets "
            "(to watch it with tshark or tcpdump; TLS hops handshake). Default: in-process "
            "pipes, as the roles share this process",
        ),
    ] = False,
    segments: Annotated[
        bool,
        typer.Option(
            "--segments",
            help="The lab with addresses that tell the network segments apart (the online "
            "service on 127.64.0.1 as the cloud), as `hybridvoice plan verify` needs; the "
            "settings of `init --segments`. Without --config only",
        ),
    ] = False,
    log_level: LogLevel = "warning",
    log_format: LogFormatOption = "text",
    log_component: LogComponents = "",
) -> None:
    """Start the online service, one appliance with every role and, unless the settings name
    real gateways, a lab gateway that answers and echoes media — all on this machine.

    Prints where its data lives (kept across restarts), where each piece listens, a line to try.

    An address in use is named with its setting. Stop with Ctrl-C.
    """
    from hybridvoice.app import ListenError, default_state_dir, run_up  # noqa: PLC0415
    from hybridvoice.cms.template import lab_settings  # noqa: PLC0415
    from hybridvoice.mgmt.cli_serve_common import settings_or_exit, start_logging  # noqa: PLC0415

    start_logging(err, log_level, log_format, log_component)
    if config is not None and _is_fleet(config):  # several sites: docs/fleet.md
        from hybridvoice.fleet.cli_up import up_fleet  # noqa: PLC0415

        raise typer.Exit(up_fleet(config, state_dir, out=out, err=err))
    if config is None:
        settings = lab_settings()
        if segments:
            from hybridvoice.cms.template_segments import segmented_lab  # noqa: PLC0415

            settings = segmented_lab(settings)
    elif segments:
        err.print("--segments is the lab's: with --config, write the addresses in the file "
                  "(hybridvoice init --segments -o FILE shows them)")  # fmt: skip
        raise typer.Exit(2)
    else:
        settings = settings_or_exit(err, config, hint="Write one with: hybridvoice init")
    lab = config is None
    if state_dir == ":memory:":
        where = None
    else:
        where = Path(state_dir) if state_dir else default_state_dir(settings, lab=lab)
    seed = lab if lab_users is None else lab_users
    if where is not None:  # the logs also go to rotated files there (hybridvoice logs search)
        start_logging(err, log_level, log_format, log_component, settings=settings,
                      directory=where / "logs")  # fmt: skip
    try:
        asyncio.run(
            run_up(settings, where, console=out, lab_gateway=lab_gateway, lab_users=seed, wire=wire)
        )
    except KeyboardInterrupt:
        pass
    except ListenError as exc:
        err.print("[red]cannot start:[/red]", end=" ")
        err.print(str(exc), markup=False, highlight=False)
        if config is not None:
            err.print(f"The settings are in {config}.", markup=False, highlight=False)
        raise typer.Exit(1) from exc
    except (ValueError, OSError) as exc:
        err.print(f"[red]cannot start:[/red] {exc}")
        raise typer.Exit(1) from exc


@app.command("test-call")
def test_call(
    from_: Annotated[
        str, typer.Option("--from", help="The calling user: alice or alice@contoso.example")
    ],
    to: Annotated[str, typer.Option("--to", help="The number to call, e.g. +15550199")],
    password: Annotated[
        str, typer.Option(help="The user's SIP password", envvar="HYBRIDVOICE_PASSWORD")
    ] = "hybridvoice",
    proxy: Annotated[
        str, typer.Option(help="The online service's SIP address (registrar, outbound proxy)")
    ] = "udp:127.0.0.1:5060",
    url: Annotated[
        str,
        typer.Option(
            help="The online service's API (to find the SIP domain)", envvar="HYBRIDVOICE_URL"
        ),
    ] = "http://127.0.0.1:8470",
    appliance: Annotated[
        str,
        typer.Option(
            help="The appliance's management API (to learn the media path)",
            envvar="HYBRIDVOICE_APPLIANCE_URL",
        ),
    ] = "http://127.0.0.1:8472",
    duration: Annotated[float, typer.Option(help="Seconds of media")] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Place a real call as a user: register, call, send a tone, check it comes back, hang up.

    Prints the result, the SIP ladder, the media path (bypass or anchored) and the setup
    time. Exits 0 only when the call connected and media flowed.
    """
    from hybridvoice.app import parse_listen  # noqa: PLC0415
    from hybridvoice.mgmt.cli_admin import api, exists, no_user  # noqa: PLC0415
    from hybridvoice.mgmt.testcall import place_test_call  # noqa: PLC0415
    from hybridvoice.net.transport import Destination  # noqa: PLC0415

    user, _, domain = from_.removeprefix("sip:").partition("@")
    if not domain:
        domains = api("GET", url, "/v1/domains")
        names = domains.get("domains", []) if isinstance(domains, dict) else domains
        if not names:
            err.print("[red]the tenant has no SIP domain[/red]; give --from user@domain")
            raise typer.Exit(2)
        first = names[0]
        domain = first if isinstance(first, str) else first["name"]
    try:
        spec = parse_listen(proxy)
    except ValueError as exc:
        err.print(f"[red]--proxy:[/red] {exc}")
        raise typer.Exit(2) from exc
    known = exists(url, f"/v1/users/sip:{user}@{domain}")
    if known is False:  # the admin may ask; the registrar answers strangers as it does users
        err.print(f"[red]{no_user(f'sip:{user}@{domain}')}[/red]", highlight=False)
        raise typer.Exit(1)
    result = asyncio.run(
        place_test_call(
            user=user, domain=domain, password=password, number=to,
            proxy=Destination(spec.transport, spec.host, spec.port),
            duration=duration, appliance_url=appliance, user_known=known,
            api_token=current_token(),
        )
    )  # fmt: skip
    if as_json:
        out.print_json(json.dumps(result.to_json()))
    else:
        verdict = "[green]PASSED[/green]" if result.ok else "[red]FAILED[/red]"
        table = Table(title=f"test call {result.caller} -> {to}: {verdict}", show_header=False)
        table.add_row("result", f"{result.status or '-'} {result.reason or ''}")
        if result.error:
            table.add_row("error", result.error)
        if result.hint:
            table.add_row("what next", result.hint)
        setup = result.setup_ms
        table.add_row("setup time", "-" if setup is None else format_duration(setup))
        path = result.media_path or ("-" if setup is None else f"unknown ({appliance} did not say)")
        if result.media_reason:
            path += f" ({result.media_reason})"
        table.add_row("media path", path)
        table.add_row("remote media", result.remote_media or "-")
        tone = ", tone intact" if result.tone_intact else ""
        table.add_row("RTP", f"sent {result.rtp_sent}, received {result.rtp_received}{tone}")
        table.add_row("Call-ID", result.call_id or "-")
        table.add_row("SIP ladder", "\n".join(result.ladder))
        out.print(table)
    raise typer.Exit(0 if result.ok else 1)


def main() -> None:
    """Entry point of the ``hybridvoice`` script."""
    try:
        import uvloop  # noqa: PLC0415

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is optional
        pass
    sys.exit(app())
