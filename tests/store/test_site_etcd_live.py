"""Issue 12's "Site CMS on etcd", checked end to end: a 3-member etcd cluster (started here,
stopped by PID), the online service in this process, three ``appliance serve`` processes of
one site joined with ``appliance join``.

- a wrong join token is refused and nothing is written;
- a gateway change made through one appliance's API reaches all three through their watches
  (20 changes: the latency is printed, p50/p99, for docs/fleet.md; the test asserts arrival);
- one etcd member killed: changes are still written and arrive everywhere;
- all members killed: a change is refused with a clear error (503), calls still succeed from
  the replicas, a tenant change made in the cloud meanwhile reaches every appliance; members
  back: a change written in etcd then arrives at every appliance, and the cloud's change made
  meanwhile is in the site store (the appliances' pushes were kept and tried again).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from appliance_procs import HV, ApplianceProcess, site_settings
from chain_harness import DOMAIN
from etcd_cluster import running_cluster

from hybridvoice.app import LAB_PASSWORD, LAB_PSTN_NUMBER, Lab, LabGateway
from hybridvoice.cms.site_records import encode, record_key
from hybridvoice.cms.site_secret import new_join_token
from hybridvoice.mgmt.testcall import place_test_call
from hybridvoice.net.transport import Destination
from hybridvoice.online.models import DialPlanRule
from hybridvoice.store.etcd_kv import EtcdStore
from hybridvoice.store.keys import site_prefix

pytestmark = [pytest.mark.interop, pytest.mark.live, pytest.mark.xdist_group("etcd")]


async def _hv(*args: str, token: str = "") -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *HV, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "250", "HYBRIDVOICE_TOKEN": token},
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def _until(check: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


async def _sessions(client: httpx.AsyncClient, p: ApplianceProcess, admin: str, gw: str) -> Any:
    reply = await client.get(f"{p.api}/v1/gateways/{gw}",
                             headers={"Authorization": f"Bearer {admin}"})  # fmt: skip
    return reply.json().get("max_sessions") if reply.status_code == 200 else None


def test_site_on_etcd_three_appliances(tmp_path: Path) -> None:
    settings = site_settings(3)
    site = settings[0].common.site_name
    gw = settings[0].gateways[0].name

    async def main() -> None:
        (tmp_path / "etcd").mkdir()
        with running_cluster(tmp_path / "etcd") as cluster:
            etcd = [a for e in cluster.endpoints for a in ("--etcd", e)]
            lab = Lab(settings[0], tmp_path / "online", lab_gateway=True)
            await lab.start_online()
            assert lab.online is not None and lab.admin_token is not None
            admin, tokens = lab.admin_token, lab.online.store.access.tokens
            g = settings[0].gateways[0]
            gateway = await LabGateway.start(g.protocol, "127.0.0.1", g.port)
            procs = [ApplianceProcess(s, tmp_path / f"a{i}") for i, s in enumerate(settings)]
            try:
                await _run(cluster, etcd, lab, admin, tokens, procs)
            finally:
                for p in procs:
                    await p.stop()
                await gateway.stop()
                await lab.stop()

    async def _run(cluster: Any, etcd: list[str], lab: Lab, admin: str, tokens: Any,
                   procs: list[ApplianceProcess]) -> None:  # fmt: skip
        # the site: made by the first appliance, joined by the others
        code, made = await _hv("appliance", "join", "--new-site", *etcd,
                               "--config", str(procs[0].write_config()),
                               "--state-dir", str(procs[0].state_dir))  # fmt: skip
        assert code == 0, made
        token = next(line for line in made.splitlines() if line.startswith(f"{site}:"))
        wrong = tmp_path / "wrong"
        code, refused = await _hv("appliance", "join", *etcd, "--token", new_join_token(site),
                                  "--config", str(procs[1].write_config()),
                                  "--state-dir", str(wrong))  # fmt: skip
        assert code == 1 and "join refused" in refused and "Nothing was written" in refused
        assert not wrong.exists()
        for p in procs[1:]:
            code, joined = await _hv("appliance", "join", *etcd, "--token", token,
                                     "--config", str(p.write_config()),
                                     "--state-dir", str(p.state_dir))  # fmt: skip
            assert code == 0, joined
            assert (p.state_dir / "pki" / "certs" / "appliance.pem").exists()
        args = {p.name: ("--online-token", tokens.create(p.name, "appliance")[1],
                         "--admin-token", admin) for p in procs}  # fmt: skip
        for p in procs:
            await p.start(*args[p.name])
        for p in procs:
            await p.ready()
        store = lab.online.store if lab.online else None
        assert store is not None

        async def registered() -> bool:
            return len(store.routable_appliances(site)) == 3

        await _until(registered, "3 appliances registered online")
        async with httpx.AsyncClient(timeout=30) as client:

            async def change(through: ApplianceProcess, value: int) -> float:
                started = time.monotonic()
                reply = await client.patch(
                    f"{through.api}/v1/gateways/{gw}", json={"MaxConcurrentSessions": value},
                    headers={"Authorization": f"Bearer {admin}"},
                )  # fmt: skip
                assert reply.status_code == 200, reply.text

                async def everywhere() -> bool:
                    got = await asyncio.gather(*(_sessions(client, p, admin, gw) for p in procs))
                    return all(v == value for v in got)

                await _until(everywhere, f"MaxConcurrentSessions {value} on every appliance")
                return time.monotonic() - started

            took = [await change(procs[i % 3], 100 + i) for i in range(20)]
            took.sort()
            p50, p99 = statistics.median(took), took[-1]
            print(f"\nsite settings change -> 3 appliances: p50 {p50 * 1000:.0f} ms, "
                  f"p99 (max of 20) {p99 * 1000:.0f} ms")  # fmt: skip

            async def call() -> None:
                proxy = Destination("UDP", settings[0].online.sip_addresses[0],
                                    settings[0].online.sip_port)  # fmt: skip
                result = await place_test_call(
                    user="alice", domain=DOMAIN, password=LAB_PASSWORD, number=LAB_PSTN_NUMBER,
                    proxy=proxy, duration=0.4, timeout=30.0,
                )  # fmt: skip
                assert result.ok, (result.error, result.ladder)

            await call()
            # one member down: written and read as before
            cluster.kill(0)
            await change(procs[1], 199)
            # the command an admin types, against another appliance
            code, typed = await _hv("gateway", "set", gw, "--max-sessions", "200",
                                    "--appliance", procs[2].api, token=admin)  # fmt: skip
            assert code == 0, typed

            async def typed_everywhere() -> bool:
                got = await asyncio.gather(*(_sessions(client, p, admin, gw) for p in procs))
                return all(v == 200 for v in got)

            await _until(typed_everywhere, "the typed change on every appliance")
            # every member down: a change is refused, calls go on from the replicas
            cluster.kill(1)
            cluster.kill(2)
            reply = await client.patch(
                f"{procs[2].api}/v1/gateways/{gw}", json={"MaxConcurrentSessions": 300},
                headers={"Authorization": f"Bearer {admin}"},
            )  # fmt: skip
            assert reply.status_code == 503, reply.text
            assert "site store" in reply.text and "nothing was changed" in reply.text
            await call()
            # a tenant change made in the cloud meanwhile reaches every appliance now (its
            # replicator) and the site store once etcd is back (the pushed/ records)
            store.set_dialplan_rule(DialPlanRule(name="Meanwhile", pattern=r"(\d{4})",
                                                 translation="+1555$1", priority=9))  # fmt: skip
            meanwhile = store.version

            async def replicated() -> bool:
                got = await asyncio.gather(*(client.get(f"{p.api}/v1/status", headers={
                    "Authorization": f"Bearer {admin}"}) for p in procs))  # fmt: skip
                return all(r.json()["replica"]["version"] >= meanwhile for r in got)

            await _until(replicated, "the cloud's change on every appliance, etcd down")
            # an appliance restarted while etcd is down runs on its replica's gateways
            assert await procs[0].stop() == 0
            await procs[0].start(*args[procs[0].name])
            await procs[0].ready()
            assert await _sessions(client, procs[0], admin, gw) == 200
            await _until(registered, "the restarted appliance registered again")
            await call()
            # back: a change written in etcd (by the cloud side, another admin) arrives
            for i in range(3):
                cluster.start(i)
            await asyncio.to_thread(cluster.wait_healthy)
            direct = EtcdStore(cluster.endpoints)
            try:
                key = record_key(site, "gateway", gw)
                found = await direct.get(key)
                assert found is not None
                keys = {**json.loads(found.value), "MaxConcurrentSessions": 400}
                await direct.put(key, encode(keys))
            finally:
                await direct.close()

            async def arrived() -> bool:
                got = await asyncio.gather(*(_sessions(client, p, admin, gw) for p in procs))
                return all(v == 400 for v in got)

            await _until(arrived, "the change written after etcd came back", timeout=120)
            await call()

            async def pushed_meanwhile() -> bool:
                direct = EtcdStore(cluster.endpoints)
                try:
                    found = await direct.get(record_key(site, "pushed", "dialplan:Meanwhile"))
                finally:
                    await direct.close()
                return found is not None and json.loads(found.value)["version"] >= meanwhile

            await _until(pushed_meanwhile, "the cloud's change made meanwhile in the site store")
            # appliance remove: drained, out of the site store and the cloud
            code, removed = await _hv("appliance", "remove", "appliance3", "--appliance",
                                      procs[2].api, "--url", settings[0].online.service_url,
                                      token=admin)  # fmt: skip
            assert code == 0, removed
            direct = EtcdStore(cluster.endpoints)
            try:
                members = await direct.range(site_prefix(site, "appliance"))
                pushed = await direct.range(site_prefix(site, "pushed"))
            finally:
                await direct.close()
            assert sorted(kv.key.rsplit("/", 1)[1] for kv in members.kvs) == [
                "appliance1", "appliance2"]  # fmt: skip
            assert {a.name for a in store.appliances()} == {"appliance1", "appliance2"}
            # the tenant settings the appliances took from the cloud, kept in the site store
            names = {kv.key.rsplit("/", 1)[1] for kv in pushed.kvs}
            assert "network_config:global" in names, names
        for p in procs:
            assert await p.stop() == 0, p.log()

    asyncio.run(main())
