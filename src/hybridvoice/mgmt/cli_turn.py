"""``hybridvoice turn serve``: the TURN relay (RFC 8656, :mod:`hybridvoice.net.turn`) alone.

For benchmarks and labs: UDP (and with ``--tcp`` TCP, RFC 8656 §3.1) on ``--listen``, relay
ports on ``--relay-host`` in ``--ports``, MRAS credentials (the TURN REST scheme, coturn's
``use-auth-secret``) from ``--secret``. Prints ``READY`` with its address once listening and
``STATS`` with the core's counters (JSON) on SIGTERM/SIGINT. Runs on uvloop when installed,
with :func:`hybridvoice.net.loop.tune_gc`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register_turn_commands", "turn_app"]

turn_app = typer.Typer(
    help="Run the TURN relay on its own (benchmarks, labs).", no_args_is_help=True
)


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise typer.BadParameter(f"{text!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


@turn_app.command("serve")
def serve(
    secret: Annotated[
        str, typer.Option(envvar="HYBRIDVOICE_TURN_SECRET", help="MRAS shared secret")
    ],
    listen: Annotated[str, typer.Option(help="UDP (and TCP) listener")] = "127.0.0.1:3478",
    relay_host: Annotated[str, typer.Option(help="address of the relay ports")] = "127.0.0.1",
    ports: Annotated[str, typer.Option(help="relay port range FIRST-LAST")] = "49152-65535",
    external_ip: Annotated[
        str | None, typer.Option(help="relayed address advertised (default: relay host)")
    ] = None,
    realm: Annotated[str, typer.Option()] = "hybridvoice",
    tcp: Annotated[bool, typer.Option("--tcp/--no-tcp", help="listen on TCP too")] = False,
    allow_loopback_peers: Annotated[bool, typer.Option(help="relay to 127.0.0.0/8")] = False,
    user_quota: Annotated[int, typer.Option(help="allocations per user")] = 10,
    demux: Annotated[
        str | None, typer.Option(help="epoll (Linux default), reader or reader1 (benchmarks)")
    ] = None,
    profile: Annotated[Path | None, typer.Option(help="write cProfile stats here")] = None,
    metrics: Annotated[
        str | None, typer.Option(help="Serve Prometheus /metrics on HOST:PORT", metavar="HOST:PORT")
    ] = None,
) -> None:
    """Run the TURN relay until SIGTERM/SIGINT."""
    import asyncio  # noqa: PLC0415 - keep --help fast
    import contextlib  # noqa: PLC0415
    import signal  # noqa: PLC0415
    import time  # noqa: PLC0415

    from hybridvoice.media.mras import MrasVerifier  # noqa: PLC0415
    from hybridvoice.media.turn_state import TurnConfig  # noqa: PLC0415
    from hybridvoice.net.loop import run, tune_gc, uvloop_available  # noqa: PLC0415
    from hybridvoice.net.turn import TurnRelay  # noqa: PLC0415

    from .metrics_http import MetricsListenError, serve_metrics  # noqa: PLC0415
    from .metrics_turn import turn_registry  # noqa: PLC0415

    first, _, last = ports.partition("-")
    config = TurnConfig(
        realm=realm,
        external_ip=external_ip or relay_host,
        allow_loopback_peers=allow_loopback_peers,
        user_quota=user_quota,
    )
    verifier = MrasVerifier(secret.encode(), wall=time.time)

    async def main() -> None:
        tune_gc()  # young-generation passes only on the data path; a full one every 600 s
        relay = await TurnRelay.open(
            config,
            verifier,
            listen=_hostport(listen),
            relay_host=relay_host,
            ports=(int(first), int(last or first)),
            tcp=tcp,
            demux=demux,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        exporter = None
        if metrics is not None:
            try:
                exporter = await serve_metrics(turn_registry(relay), metrics)
            except MetricsListenError:
                relay.close()
                raise
            print(f"METRICS {exporter.url}/metrics", flush=True)
        host, port = relay.address
        print(f"READY {host}:{port} tcp={tcp} uvloop={uvloop_available()}", flush=True)
        try:
            await stop.wait()
        finally:
            if exporter is not None:
                await exporter.stop()
            counters = dict(relay.server.counters)
            counters["send_errors"] = relay.send_errors
            relay.close()
            print("STATS " + json.dumps(counters, sort_keys=True), flush=True)

    if profile is None:
        try:
            with contextlib.suppress(KeyboardInterrupt):
                run(main())
        except MetricsListenError as exc:
            typer.echo(f"cannot start: {exc}", err=True)
            raise typer.Exit(2) from exc
        return
    import cProfile  # noqa: PLC0415

    profiler = cProfile.Profile()
    with contextlib.suppress(KeyboardInterrupt):
        profiler.runcall(run, main())
    profiler.dump_stats(profile)


def register_turn_commands(app: typer.Typer) -> None:
    app.add_typer(turn_app, name="turn")
