"""Two sites in one fleet (issue 12, "Many sites"): each site's users break out at their own
site's gateway, and a site's gateways only talk to that site's mediation roles.

The fleet of ``tests/interop/fleet_harness.py``: Amsterdam and Seattle, two appliance
processes each, each site's gateway a lab gateway of its own (Amsterdam's on 127.0.0.3,
Seattle's on 127.0.0.2: a mediation role knows its gateways by address, so the two sites'
gateways need different ones; both are loopback). alice belongs to Amsterdam, bob to
Seattle. ``hybridvoice test-call``'s code (register, call, tone, hang up) places the calls;
each lab gateway counts the calls it answered, so the test sees which gateway took whose
call. Then a SIPp on Seattle's gateway address sends an INVITE to every Amsterdam mediation
role: each refuses it with 403 (not a gateway of its site).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fleet_harness import DOMAIN, PASSWORD, fleet_raw, proxy_port, running_fleet
from interop_programs import SCENARIOS, Program, need_binary, sipp_stats
from ports import free_port
from test_sipp import sipp_common

from hybridvoice.fleet.up import Fleet
from hybridvoice.mgmt.testcall import place_test_call
from hybridvoice.net.loop import loop_factory
from hybridvoice.net.transport import Destination

pytestmark = [pytest.mark.interop, pytest.mark.live]

AMS_HOST, SEA_HOST = "127.0.0.3", "127.0.0.2"


def lab_gateway(name: str, host: str) -> dict[str, object]:
    return {"Name": name, "IP": host, "Port": free_port(host), "Protocol": "UDP", "Lab": True}


async def call(fleet: Fleet, user: str, number: str) -> None:
    result = await place_test_call(
        user=user, domain=DOMAIN, password=PASSWORD, number=number,
        proxy=Destination("UDP", "127.0.0.1", proxy_port(fleet)), duration=0.4, timeout=20.0,
    )  # fmt: skip
    assert result.ok, (user, number, result.status, result.error, result.ladder)


def answered(fleet: Fleet) -> dict[str, int]:
    return {name: g.responder.calls_answered for name, g in fleet.gateways.items()}


def test_each_sites_users_break_out_at_their_own_sites_gateway(tmp_path: Path) -> None:
    sipp = need_binary("sipp", "sip-tester")

    async def main() -> None:
        sites = [
            {"Name": "Amsterdam", "Appliances": 2, "CountryCode": "31",
             "Gateway": [lab_gateway("ams-gw", AMS_HOST)],
             "User": [{"Name": "alice", "Number": "+31205550100"}]},
            {"Name": "Seattle", "Appliances": 2,
             "Gateway": [lab_gateway("sea-gw", SEA_HOST)],
             "User": [{"Name": "bob", "Number": "+12065550101"}]},
        ]  # fmt: skip
        async with running_fleet(tmp_path, fleet_raw(sites)) as fleet:
            assert answered(fleet) == {"ams-gw": 0, "sea-gw": 0}
            await call(fleet, "alice", "+31205550199")
            assert answered(fleet) == {"ams-gw": 1, "sea-gw": 0}
            await call(fleet, "bob", "+12065550199")
            assert answered(fleet) == {"ams-gw": 1, "sea-gw": 1}
            # the caller's site decides, not the number: alice dialling Seattle breaks out
            # in Amsterdam
            await call(fleet, "alice", "+12065550188")
            assert answered(fleet) == {"ams-gw": 2, "sea-gw": 1}
            # Seattle's gateway address is refused by every Amsterdam mediation role
            for n, appliance in enumerate(fleet.plan.of_site("Amsterdam")):
                _, _, udp = appliance.gateway_side
                name = f"stray{n}"
                args = [
                    sipp, f"127.0.0.1:{udp}", "-sf", str(SCENARIOS / "uac_403.xml"),
                    "-s", "+31205550100", "-m", "1",
                    *sipp_common(free_port(SEA_HOST), tmp_path, name),
                ]  # fmt: skip
                args[args.index("-i") + 1] = SEA_HOST
                program = Program(args, tmp_path / f"{name}.out")
                try:
                    for _ in range(600):
                        if program.returncode is not None:
                            break
                        await asyncio.sleep(0.05)
                finally:
                    code = program.stop()
                stats = sipp_stats(tmp_path / f"{name}.csv")
                assert code == 0 and stats["SuccessfulCall(C)"] == "1", program.output()[-2000:]
            assert answered(fleet) == {"ams-gw": 2, "sea-gw": 1}

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(asyncio.wait_for(main(), 300))
