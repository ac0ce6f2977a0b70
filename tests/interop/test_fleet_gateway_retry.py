"""The retrying gateway against appliance processes (issue 12, "High availability"): a site
of two appliances (``hybridvoice appliance serve`` each, from the fleet harness), its
gateway a SIPp running ``scenarios/gw_retry_uac.xml`` (INVITE to appliance 1's mediation
role; on no answer, a new INVITE to appliance 2's), calling bob, a user of the site
registered from a SIPp UAS (``chain_uas.xml``). Appliance 1's process is killed (SIGKILL,
by PID) while the gateway places calls: every call completes, through appliance 2, the
whole chain (gateway -> mediation -> edge -> online proxy -> bob)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from fleet_harness import fleet_raw, running_fleet
from interop_programs import SCENARIOS, Program, free_port, need_binary, sipp_stats
from test_fleet_ha import register, succeeded, wait_exit
from test_gateway_retry import GATEWAY_RETRANS, assert_all_completed, byes_lost, sipp_args
from test_mediation_sipp import stop_uas
from test_sipp import sipp_common

from hybridvoice.net.loop import loop_factory

pytestmark = [pytest.mark.interop, pytest.mark.live]

CALLS = 24
BOB = "+31205550101"


def test_gateway_retries_on_the_other_appliance_when_one_is_killed(tmp_path: Path) -> None:
    sipp = need_binary("sipp", "sip-tester")

    async def main() -> None:
        gw_port, bob_port = free_port(), free_port()
        gateway = {"Name": "ams-gw", "IP": "127.0.0.1", "Port": gw_port, "Protocol": "UDP",
                   "SendSipOptions": False}  # fmt: skip
        site = {"Name": "Amsterdam", "Appliances": 2, "CountryCode": "31",
                "Gateway": [gateway], "User": [{"Name": "bob", "Number": BOB}]}  # fmt: skip
        async with running_fleet(tmp_path, fleet_raw([site])) as fleet:
            await register(sipp, fleet, "bob", bob_port, tmp_path)
            phone = [sipp, "-sf", str(SCENARIOS / "chain_uas.xml"),
                     *sipp_common(bob_port, tmp_path, "bob")]  # fmt: skip
            bob = Program(phone, tmp_path / "bob.out")
            first, second = fleet.plan.appliances
            try:
                args = [
                    sipp, f"127.0.0.1:{first.gateway_side[2]}",
                    "-sf", str(SCENARIOS / "gw_retry_uac.xml"), "-s", BOB,
                    "-set", "m2host", "127.0.0.1", "-set", "m2port", str(second.gateway_side[2]),
                    "-max_invite_retrans", str(GATEWAY_RETRANS), "-m", str(CALLS), "-r", "4",
                    *sipp_args(sipp, gw_port, tmp_path, "gw"),
                ]  # fmt: skip
                gw = Program(args, tmp_path / "gw.out")
                try:
                    deadline = time.monotonic() + 60
                    while succeeded(tmp_path / "gw.csv") < 4:  # appliance 1 takes calls
                        assert gw.returncode is None, gw.output()[-2000:]
                        assert time.monotonic() < deadline, "no call through appliance 1"
                        await asyncio.sleep(0.1)
                    assert fleet.children is not None
                    pid = fleet.children.pid(first.name)
                    assert pid is not None
                    os.kill(pid, signal.SIGKILL)
                    code = await wait_exit(gw, 150)
                finally:
                    gw.stop()
                await stop_uas(bob)
            finally:
                bob.stop()
        assert_all_completed(tmp_path, killed_port=first.gateway_side[2])
        assert code == 0, gw.output()[-2000:]
        answered_by_bob = int(sipp_stats(tmp_path / "bob.csv")["SuccessfulCall(C)"])
        # a call the killed appliance held at the kill never gets its BYE to bob
        assert answered_by_bob >= CALLS - len(byes_lost(tmp_path))

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(asyncio.wait_for(main(), 400))
