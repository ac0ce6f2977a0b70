"""Assembly of ``hybridvoice dns serve``: the geo-DNS core on the UDP/TCP transports.

Builds :class:`hybridvoice.mediation.geo_dns.GeoDns` from the ``[GeoDns]`` settings
(:mod:`hybridvoice.cms.settings_geo_dns`) and opens :class:`hybridvoice.net.dns_server.DnsServer`
for it; prints ``READY host:port`` once listening. SIGHUP re-reads the policy file (a bad file
is reported and the running policy kept) and the down file: one mediation address per line,
``#`` comments, the addresses the fleet's health monitor marks down. With ``metrics``, the
Prometheus families of :mod:`.metrics_geo_dns` on ``http://HOST:PORT/metrics``. SIGTERM/SIGINT
stop it and print ``STATS`` with the queries by site and result (JSON).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from prometheus_client import start_http_server

from hybridvoice.cms.settings import SettingsError
from hybridvoice.cms.settings_geo_dns import load_geo_dns
from hybridvoice.mediation.geo_dns import GeoDns, policy_from_settings
from hybridvoice.mgmt.metrics_geo_dns import geo_dns_registry
from hybridvoice.net.dns_server import DnsServer

__all__ = ["read_down_file", "serve_geo_dns"]


def read_down_file(path: Path) -> list[str]:
    """The addresses listed in ``path`` (``ValueError`` naming the line of a bad one)."""
    import ipaddress  # noqa: PLC0415

    found = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            found.append(str(ipaddress.ip_address(text)))
        except ValueError:
            raise ValueError(f"{path}:{number}: not an IP address, got {text!r}") from None
    return found


async def serve_geo_dns(
    policy_file: Path,
    appliances: Sequence[Path],
    host: str,
    port: int,
    *,
    tcp: bool = True,
    down_file: Path | None = None,
    metrics: tuple[str, int] | None = None,
    out: TextIO = sys.stdout,
) -> GeoDns:
    """Serve until SIGTERM/SIGINT; return the core (its counters) when stopped."""
    core = GeoDns(policy_from_settings(load_geo_dns(policy_file, appliances)))
    if down_file is not None:
        core.set_down(read_down_file(down_file))
    server = await DnsServer.open(core.answer, host, port, tcp=tcp)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def reload() -> None:
        try:
            core.policy = policy_from_settings(load_geo_dns(policy_file, appliances))
            if down_file is not None:
                core.set_down(read_down_file(down_file))
        except (SettingsError, ValueError, OSError) as exc:
            print(f"RELOAD FAILED (running policy kept): {exc}", file=out, flush=True)
            return
        print(f"RELOADED down={sorted(str(a) for a in core.down)}", file=out, flush=True)

    loop.add_signal_handler(signal.SIGHUP, reload)
    exporter = None
    where = ""
    if metrics is not None:
        try:
            exporter, _ = start_http_server(
                metrics[1], metrics[0], registry=geo_dns_registry(core, server)
            )
        except OSError:
            await server.close()
            raise
        where = f" metrics=http://{metrics[0]}:{exporter.server_port}/metrics"
    bound_host, bound_port = server.address
    sites = ",".join(site.name for site in core.policy.sites)
    print(f"READY {bound_host}:{bound_port} name={core.policy.name} sites={sites}{where}",
          file=out, flush=True)  # fmt: skip
    try:
        await stop.wait()
    finally:
        if exporter is not None:
            exporter.shutdown()
            exporter.server_close()
        await server.close()
        stats = {"queries": core.stats_table(), "handler_errors": server.errors}
        print("STATS " + json.dumps(stats, sort_keys=True), file=out, flush=True)
    return core
