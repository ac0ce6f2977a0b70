"""Replication latency: from a write in the online service to every appliance's replica.

Run: ``.venv/bin/python benchmarks/replication.py [--replicas 5] [--changes 200]``

One process, one event loop (uvloop when installed): the online API (``create_online_api`` on a
``TenantStore`` file) served by uvicorn in-loop on 127.0.0.1, and N ``Replicator`` s, each with
its own ``httpx.AsyncClient`` (its own connection) and its own ``LocalStore`` file (WAL), long
polling ``/v1/changes``. The benchmark makes ``--changes`` user updates one at a time: it
writes to the store, then waits until every replica has committed that version (each replica's
listener notes the time of its commit), then idles ``--gap`` seconds so the polls are parked
again before the next write. The latency of a change is the time from just before the store
write to the last replica's commit, so it includes the store's SQLite commit, waking the held
requests, JSON over HTTP, and the replica's SQLite commit.

Goal: p95 <= 1 s (the original Cloud Connector Edition replicated from the cloud to its
appliances on a schedule: up to 24 hours).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from hybridvoice.cms.changes import Change
from hybridvoice.cms.replica import LocalStore
from hybridvoice.cms.replicator import Replicator
from hybridvoice.net.http import serve_asgi
from hybridvoice.online.api import create_online_api
from hybridvoice.online.models import User
from hybridvoice.online.store import TenantStore

GOAL_S = 1.0
ORIGINAL_S = 24 * 3600.0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(replicas: int, changes: int, wait: float, gap: float, workdir: Path) -> list[float]:
    store = TenantStore(workdir / "tenant.db")
    store.add_domain("contoso.com")
    server = await serve_asgi(create_online_api(store), "127.0.0.1", 0)
    _, token = store.access.tokens.create("bench-appliances", "appliance")
    applied: dict[int, list[float]] = {}  # version -> commit times, one per replica

    def listener(batch: list[Change]) -> None:
        now = time.perf_counter()
        for change in batch:
            applied.setdefault(change.version, []).append(now)

    clients = [httpx.AsyncClient() for _ in range(replicas)]
    workers = []
    for i, client in enumerate(clients):
        local = LocalStore(workdir / f"replica{i}.db")
        local.subscribe(listener)
        workers.append(Replicator(local, server.url, client=client, wait=wait, token=token))
    for worker in workers:
        worker.start()
    latencies: list[float] = []
    try:
        for worker in workers:
            if not await worker.synced(store.version, 30):
                raise RuntimeError(f"{worker!r} did not sync: {worker.last_error}")
        await asyncio.sleep(gap)
        for n in range(changes):
            user = User(sip_uri=f"sip:user{n % 50}@contoso.com", display_name=f"User {n}")
            start = time.perf_counter()
            store.set_user(user)
            version = store.version
            while len(applied.get(version, ())) < replicas:
                await asyncio.sleep(0.0005)
                if time.perf_counter() - start > 30:
                    raise RuntimeError(f"change {version} not replicated within 30 s")
            latencies.append(max(applied[version]) - start)
            await asyncio.sleep(gap)
        errors = sum(w.errors for w in workers)
        snapshots = sum(w.snapshots for w in workers)
        if errors or snapshots:
            print(f"note: {errors} poll errors, {snapshots} snapshot reloads during the run")
    finally:
        for worker in workers:
            await worker.stop()
        for client in clients:
            await client.aclose()
        await server.stop()
        store.close()
    return latencies


def report(latencies: list[float], replicas: int) -> bool:
    p50, p95 = statistics.median(latencies), _pct(latencies, 0.95)
    worst = max(latencies)
    print()
    print(f"{'changes':>8} {'replicas':>9} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} "
          f"{'vs CCE (24 h)':>14}")  # fmt: skip
    print(f"{len(latencies):>8} {replicas:>9} {p50 * 1e3:>8.2f} {p95 * 1e3:>8.2f} "
          f"{worst * 1e3:>8.2f} {ORIGINAL_S / worst:>13.0f}x")  # fmt: skip
    met = p95 <= GOAL_S and worst <= GOAL_S
    print(f"goal: every replica within {GOAL_S:g} s of the write (p95 and max): "
          f"{'MET' if met else 'NOT MET'}")  # fmt: skip
    return met


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--replicas", type=int, default=5, help="appliances replicating")
    p.add_argument("--changes", type=int, default=200, help="writes, one at a time")
    p.add_argument("--wait", type=float, default=25.0, help="long-poll wait (s)")
    p.add_argument("--gap", type=float, default=0.02, help="idle time between writes (s)")
    a = p.parse_args(argv)
    try:
        import uvloop  # noqa: PLC0415

        uvloop.install()
    except ImportError:
        pass
    with tempfile.TemporaryDirectory(prefix="hv-bench-repl-") as tmp:
        latencies = asyncio.run(run(a.replicas, a.changes, a.wait, a.gap, Path(tmp)))
    return 0 if report(latencies, a.replicas) else 1


if __name__ == "__main__":
    sys.exit(main())
