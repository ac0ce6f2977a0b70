"""The ``hybridvoice`` command line (typer + rich).

Command names stay close to the original system's cmdlets where one exists; the map
lives in docs/cmdlets.md once the roles land.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hybridvoice import __version__

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
)
sip_app = typer.Typer(
    help="Talk SIP directly: OPTIONS pings and a responder for labs.", no_args_is_help=True
)
app.add_typer(sip_app, name="sip")

out = Console()
err = Console(stderr=True)


@app.command()
def version() -> None:
    """Print the hybridvoice version."""
    out.print(__version__)


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
        if as_json:
            out.print_json(json.dumps({"uri": uri, "error": str(exc)}))
        else:
            err.print(f"[red]no answer:[/red] {exc}")
            err.print("Check the address and port, the transport (;transport=tcp), the peer.")
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
            "naming a media port, and hold them until BYE. No RTP is sent or received yet."
        ),
    ] = False,
) -> None:
    """Run a SIP responder for labs: answers OPTIONS 200 and refuses calls politely (480),
    or answers them with --answer (signalling and SDP only: no media flows).

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


def main() -> None:
    """Entry point of the ``hybridvoice`` script."""
    try:
        import uvloop  # noqa: PLC0415

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is optional
        pass
    sys.exit(app())
