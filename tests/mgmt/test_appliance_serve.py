"""``hybridvoice appliance serve``: two appliances of one site, each its own process, register
with the online service (here in the test process), are listed by ``hybridvoice appliance
list``, each carries a call, and SIGTERM drains and ends each cleanly."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from appliance_procs import HV, ApplianceProcess, site_settings
from chain_harness import DOMAIN

from hybridvoice.app import LAB_PASSWORD, LAB_PSTN_NUMBER, Lab, LabGateway
from hybridvoice.mgmt.testcall import place_test_call
from hybridvoice.net.transport import Destination

pytestmark = [pytest.mark.live, pytest.mark.xdist_group("hybridvoice-up")]


async def _until(check: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def _hv(*args: str, token: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *HV, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "250", "HYBRIDVOICE_TOKEN": token},
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def test_two_appliance_processes_register_call_and_stop(tmp_path: Path) -> None:
    first, second = site_settings(2)

    async def main() -> None:
        lab = Lab(first, tmp_path / "online", lab_gateway=True)
        await lab.start_online()  # the online service alone: no appliance in this process
        assert lab.online is not None and lab.admin_token is not None
        gw = first.gateways[0]
        gateway = await LabGateway.start(gw.protocol, "127.0.0.1", gw.port)
        tokens = lab.online.store.access.tokens
        admin = lab.admin_token
        procs = [ApplianceProcess(s, tmp_path / (s.common.server_name or "x"))
                 for s in (first, second)]  # fmt: skip
        try:
            for p in procs:
                own = tokens.create(p.name, "appliance")[1]
                await p.start("--online-token", own, "--admin-token", admin)
            for p in procs:
                await p.ready()
            store = lab.online.store

            def routable() -> set[str]:
                return {a.name for a in store.routable_appliances(first.common.site_name)}

            await _until(lambda: routable() == {"appliance1", "appliance2"}, "both registered")
            code, listed = await _hv("appliance", "list", "--url", first.online.service_url,
                                     token=admin)  # fmt: skip
            assert code == 0, listed
            assert "appliance1" in listed and "appliance2" in listed
            proxy = Destination("UDP", first.online.sip_addresses[0], first.online.sip_port)
            for through, other in (procs, procs[::-1]):
                # the other one drains: the cloud sends the call to `through`
                await other.request("POST", "/v1/maintenance/enter", admin)
                await _until(lambda t=through: routable() == {t.name}, "maintenance seen")
                result = await place_test_call(
                    user="alice", domain=DOMAIN, password=LAB_PASSWORD, number=LAB_PSTN_NUMBER,
                    proxy=proxy, duration=0.4, timeout=20.0,
                )  # fmt: skip
                assert result.ok, (result.error, result.ladder, through.log())
                calls = await through.request("GET", "/v1/calls", admin)
                assert len(calls) == 1, calls
                await other.request("POST", "/v1/maintenance/exit", admin)
                await _until(lambda: len(routable()) == 2, "maintenance left")
            # remove the second: drained, out of the cloud, and it does not come back
            code, removed = await _hv("appliance", "remove", "appliance2", "--appliance",
                                      procs[1].api, "--url", first.online.service_url,
                                      token=admin)  # fmt: skip
            assert code == 0, removed
            assert "drained" in removed and "unregistered" in removed
            assert {a.name for a in store.appliances()} == {"appliance1"}
            beats = (await procs[1].request("GET", "/v1/status", admin))["online"]
            assert beats["registered"] is False  # its link to the cloud is stopped
            await asyncio.sleep(first.online.heartbeat_seconds * 2)  # its heartbeats stopped
            assert {a.name for a in store.appliances()} == {"appliance1"}
            for p in procs:
                assert await p.stop() == 0, p.log()
                assert "stopped: 0 call(s) finished, 0 cut" in p.log(), p.log()
        finally:
            for p in procs:
                await p.stop()
            await gateway.stop()
            await lab.stop()

    asyncio.run(main())


def test_serve_refuses_a_missing_settings_file(tmp_path: Path) -> None:
    async def main() -> tuple[int, str]:
        return await _hv("appliance", "serve", "--config", str(tmp_path / "none.toml"),
                         token="x")  # fmt: skip

    code, output = asyncio.run(main())
    assert code == 2
    assert "cannot read" in output and "none.toml" in output
