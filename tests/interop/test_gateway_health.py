"""Gateway health against real SIPp gateways (RFC 3261 §11 OPTIONS, §18.4 transport errors).

Two SIPp ``uas`` processes on loopback play the site's gateways (``-aa`` makes SIPp answer
OPTIONS with 200). The mediation role's health monitor pings both every 0.2 s. One SIPp is
killed by its PID: it must be marked down within the detection window (misses x interval plus
a timeout, with slack for a loaded machine) while the other stays up the whole time; started
again on the same port, it is marked up again. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal

import pytest
from interop_programs import Program, free_port, need_binary

from hybridvoice.cms.settings import Gateway
from hybridvoice.mediation.health import HealthMonitor
from hybridvoice.mediation.trunks import Health, HealthChange, TrunkTable
from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.loop import loop_factory

pytestmark = pytest.mark.interop

INTERVAL = 0.2
#: how long a ping waits for its answer: never the sub-second interval, which a live SIPp
#: slowed down by a loaded machine missed three times in a row (Gateway2 "went down")
TIMEOUT = 2.0
MISSES = 3
#: Misses x (interval + a probe's timeout) + an interval: when the monitor must have noticed
#: (a silent UDP gateway; a TCP one refuses the connection at once).
DETECTION = MISSES * (INTERVAL + TIMEOUT) + INTERVAL
SLACK = 5.0  # for a loaded CI machine; the bound, not the expected time
START_WAIT = 60.0  # SIPp start-up: generous, the wait ends when both answer
SIPP_FLAGS = {"UDP": "u1", "TCP": "t1"}


def start_sipp(sipp: str, kind: str, port: int, workdir: Path, name: str) -> Program:
    return Program(
        [
            sipp, "-sn", "uas", "-aa", "-i", "127.0.0.1", "-p", str(port),
            "-t", SIPP_FLAGS[kind], "-nostdin", "-timeout", "120s", "-timeout_error",
        ],
        workdir / f"{name}.log",
    )  # fmt: skip


async def wait_for(condition: object, seconds: float, what: str) -> float:
    """Poll ``condition()`` until true; the time it took. Fails after ``seconds``."""
    assert callable(condition)
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not condition():
        if loop.time() - start > seconds:
            raise AssertionError(f"{what}: not within {seconds:.1f} s")
        await asyncio.sleep(0.02)
    return loop.time() - start


@pytest.mark.parametrize("kind", ["TCP", "UDP"])
def test_killed_gateway_is_marked_down_and_up_again(
    kind: Literal["TCP", "UDP"], tmp_path: Path
) -> None:
    sipp = need_binary("sipp", "sip-tester")
    ports = [free_port(), free_port()]
    while ports[1] == ports[0]:
        ports[1] = free_port()
    programs = {
        "Gateway1": start_sipp(sipp, kind, ports[0], tmp_path, "gw1"),
        "Gateway2": start_sipp(sipp, kind, ports[1], tmp_path, "gw2"),
    }

    async def main() -> None:
        endpoint = Endpoint()
        await endpoint.listen(kind, "127.0.0.1", 0)
        trunks = TrunkTable(
            [
                Gateway(name="Gateway1", ip="127.0.0.1", port=ports[0], protocol=kind),
                Gateway(name="Gateway2", ip="127.0.0.1", port=ports[1], protocol=kind),
            ],
            unhealthy_after=MISSES,
        )
        changes: list[HealthChange] = []
        monitor = HealthMonitor(
            endpoint, trunks, interval=INTERVAL, timeout=TIMEOUT, on_change=changes.append
        )
        gw1, gw2 = trunks["Gateway1"], trunks["Gateway2"]
        try:
            monitor.start()
            await wait_for(
                lambda: gw1.health is Health.UP and gw2.health is Health.UP,
                START_WAIT,
                "both SIPp gateways answering OPTIONS",
            )
            assert gw1.last_options_status == 200 and gw2.last_options_status == 200

            programs["Gateway1"].stop()  # SIGTERM by PID, SIGKILL after a grace period
            took = await wait_for(
                lambda: gw1.health is Health.DOWN, DETECTION + SLACK, "Gateway1 marked down"
            )
            print(f"{kind}: down after {took:.2f} s (window {DETECTION:.2f} s)")
            assert gw2.health is Health.UP

            programs["Gateway1"] = start_sipp(sipp, kind, ports[0], tmp_path, "gw1-again")
            await wait_for(lambda: gw1.health is Health.UP, START_WAIT, "Gateway1 up again")
            assert gw2.health is Health.UP
            assert [(c.gateway, c.health) for c in changes if c.gateway == "Gateway2"] == [
                ("Gateway2", Health.UP)
            ]  # never went down
            assert [c.health for c in changes if c.gateway == "Gateway1"] == [
                Health.UP,
                Health.DOWN,
                Health.UP,
            ]
        finally:
            await monitor.stop()
            await endpoint.close()

    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(asyncio.wait_for(main(), 2 * START_WAIT + DETECTION + SLACK + 30))
    finally:
        for program in programs.values():
            program.stop()
