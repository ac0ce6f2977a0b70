"""A fleet on free loopback ports for the live fleet tests: the description (as a parsed
``FLEET.toml``), and :class:`hybridvoice.fleet.up.Fleet` run from the test process (the
online service in it, every appliance its own ``hybridvoice appliance serve`` process,
stopped by PID when the test ends, whatever happened)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ports import free_port, free_port_block

from hybridvoice.cms.fleet_plan import plan_fleet
from hybridvoice.cms.settings_fleet import PORT_STRIDE, parse_fleet
from hybridvoice.fleet.up import Fleet

DOMAIN = "contoso.example"
PASSWORD = "hybridvoice"


def fleet_raw(
    sites: list[dict[str, Any]],
    *,
    media_ports: int = 80,
    heartbeat_timeout: float = 4.0,
    appliance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A fleet description of ``sites`` ([[Site]] tables) with every port a free one."""
    count = sum(int(s.get("Appliances", 1)) for s in sites)
    return {
        "Fleet": {
            "SIPDomains": DOMAIN, "BasePort": free_port_block(PORT_STRIDE * count),
            "MediaPortStart": free_port_block(media_ports * count),
            "MediaPortsPerAppliance": media_ports, "UserPassword": PASSWORD,
            "HeartbeatTimeoutSeconds": heartbeat_timeout,
        },
        "Online": {"ServiceURL": f"http://127.0.0.1:{free_port()}", "SIPPort": free_port(),
                   "HeartbeatSeconds": 1},
        "Appliance": appliance or {},
        "Site": sites,
    }  # fmt: skip


def sipp_gateway(name: str, port: int, host: str = "127.0.0.1") -> dict[str, Any]:
    """A UDP gateway played by SIPp: no OPTIONS pings (SIPp counts each as unexpected)."""
    return {"Name": name, "IP": host, "Port": port, "Protocol": "UDP", "SendSipOptions": False}


@contextlib.asynccontextmanager
async def running_fleet(tmp_path: Path, raw: dict[str, Any]) -> AsyncIterator[Fleet]:
    fleet = Fleet(plan_fleet(parse_fleet(raw)), tmp_path / "fleet", grace=40.0)
    await fleet.start(timeout=120)
    try:
        yield fleet
    finally:
        await fleet.stop()


def proxy_port(fleet: Fleet) -> int:
    return fleet.plan.online_settings.online.sip_port
