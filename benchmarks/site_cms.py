"""Site CMS replication latency: from a gateway record written to the site's etcd to the last
of N appliances' site replicas having committed it.

Run (an etcd cluster of your own, as docs/fleet.md "Running etcd for a lab" starts it)::

    .venv/bin/python benchmarks/site_cms.py --etcd 127.0.0.1:2379,127.0.0.1:2479,127.0.0.1:2579 \\
        [--appliances 3,16,50] [--changes 20]

Each appliance is its own process (this script with ``--follower``) running what ``appliance
serve`` runs for its site: an etcd client, a ``LocalStore`` file (WAL) as the site replica,
``SiteReplica`` driven by ``store.follow.follow``. Each prints the CLOCK_MONOTONIC time (one
clock for every process of the host) at which its replica committed a revision. The writer
puts one gateway record at a time and waits for every follower before the next; the latency of
a change is from just before the put to the last follower's commit. What it leaves out: the
roles taking the gateway (microseconds) and, in ``tests/store/test_site_etcd_live.py``'s end to
end figure, the admin's HTTP request and the polling of three APIs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from hybridvoice.cms.replica import LocalStore
from hybridvoice.cms.site_records import SITE_KINDS, SiteChange, SiteReplica, encode, record_key
from hybridvoice.store.etcd_kv import EtcdStore
from hybridvoice.store.follow import follow

GOAL_S = 1.0


async def follower(etcd: list[str], site: str, path: Path) -> None:
    store = EtcdStore(etcd)
    local = LocalStore(path, kinds=SITE_KINDS, change=SiteChange)

    def committed(changes: list[object]) -> None:
        print(f"APPLIED {local.version} {time.monotonic():.6f}", flush=True)

    local.subscribe(committed)  # type: ignore[arg-type]
    mirror = SiteReplica(site, local)
    task = asyncio.create_task(follow(store, mirror))
    while not mirror.loaded:
        await asyncio.sleep(0.01)
    print("READY", flush=True)
    try:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until EOF
    finally:
        task.cancel()
        await store.close()
        local.close()


async def _lines(proc: asyncio.subprocess.Process, out: asyncio.Queue[tuple[int, float]]) -> None:
    assert proc.stdout is not None
    async for raw in proc.stdout:
        parts = raw.decode().split()
        if parts and parts[0] == "APPLIED":
            await out.put((int(parts[1]), float(parts[2])))


async def run(etcd: list[str], count: int, changes: int, workdir: Path) -> list[float]:
    site = f"bench-{uuid.uuid4().hex[:8]}"
    store = EtcdStore(etcd)
    await store.put(record_key(site, "gateway", "gw1"), encode({"Port": 5060}))
    procs = []
    queues: list[asyncio.Queue[tuple[int, float]]] = []
    readers = []
    try:
        for i in range(count):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--follower", "--etcd", ",".join(etcd), "--site", site,
                "--replica", str(workdir / f"{site}-{i}.db"),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert proc.stdout is not None
            while (line := await asyncio.wait_for(proc.stdout.readline(), 120)) != b"READY\n":
                assert line, "a follower exited before it was ready"
            procs.append(proc)
            queue: asyncio.Queue[tuple[int, float]] = asyncio.Queue()
            queues.append(queue)
            readers.append(asyncio.create_task(_lines(proc, queue)))
        took = []
        for n in range(changes):
            await asyncio.sleep(0.05)  # the watches are idle again
            started = time.monotonic()
            record = {"Port": 5060, "MaxConcurrentSessions": n + 1}
            revision = await store.put(record_key(site, "gateway", "gw1"), encode(record))
            last = 0.0
            for queue in queues:
                while True:
                    applied, at = await asyncio.wait_for(queue.get(), 60)
                    if applied >= revision:
                        last = max(last, at)
                        break
            took.append(last - started)
        return took
    finally:
        for proc in procs:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        for reader in readers:
            reader.cancel()
        for kv in (await store.range(f"hv/s/{site}/")).kvs:
            await store.delete(kv.key)
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--etcd", required=True, help="members, host:port,host:port,...")
    parser.add_argument("--appliances", default="3,16,50")
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--follower", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--site", help=argparse.SUPPRESS)
    parser.add_argument("--replica", help=argparse.SUPPRESS)
    args = parser.parse_args()
    etcd = args.etcd.split(",")
    if args.follower:
        asyncio.run(follower(etcd, args.site, Path(args.replica)))
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="hv-site-bench-") as tmp:
        for count in (int(n) for n in args.appliances.split(",")):
            took = sorted(asyncio.run(run(etcd, count, args.changes, Path(tmp))))
            p50 = statistics.median(took)
            p99 = took[min(len(took) - 1, round(0.99 * (len(took) - 1)))]
            rows.append({"appliances": count, "changes": len(took), "p50_ms": round(p50 * 1e3, 1),
                         "p99_ms": round(p99 * 1e3, 1), "max_ms": round(took[-1] * 1e3, 1),
                         "goal_ms": GOAL_S * 1e3})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
