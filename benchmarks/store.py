"""The store's hot paths, on the SQLite backend (the embedded default) and optionally on etcd.

Run: ``.venv/bin/python benchmarks/store.py [--ops 20000] [--watchers 3]
[--etcd 127.0.0.1:2379,...]``

One process, one event loop. Sequential operations, one at a time, as the online store makes
them: ``put`` (a new revision and a history row, one SQLite transaction each), ``get``,
``put_if`` (compare-and-swap), a prefix ``range`` of 1000 keys, and the latency from a ``put``
to its event reaching each of ``--watchers`` watches of the prefix (p50/p99). The SQLite store
is a WAL file in a temporary directory (synchronous=NORMAL). With ``--etcd``, the same against
that cluster (fewer operations: each is a network round trip and a raft commit).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from hybridvoice.store.etcd_kv import EtcdStore
from hybridvoice.store.kv import Event, KeyValueStore
from hybridvoice.store.sqlite_kv import SqliteStore


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _rate(what: str, n: int, op: object) -> None:
    start = time.perf_counter()
    for i in range(n):
        await op(i)  # type: ignore[operator]
    took = time.perf_counter() - start
    print(f"  {what:<28} {n / took:>10.0f} ops/s  ({took / n * 1e6:.0f} us each)")


async def bench(store: KeyValueStore, ops: int, watchers: int) -> None:
    p = f"bench/{time.time_ns()}/"
    await _rate("put (new keys)", ops, lambda i: store.put(f"{p}k{i % 1000}", b"x" * 200))
    await _rate("get", ops, lambda i: store.get(f"{p}k{i % 1000}"))
    got = await store.get(f"{p}k0")
    assert got is not None
    rev = [got.mod_revision]

    async def cas(_: int) -> None:
        result = await store.put_if(f"{p}k0", b"y", mod_revision=rev[0])
        assert result.succeeded
        rev[0] = result.revision

    await _rate("put_if (compare-and-swap)", ops, cas)
    start = time.perf_counter()
    reads = max(ops // 1000, 5)
    for _ in range(reads):
        snap = await store.range(p)
        assert len(snap.kvs) == 1000
    print(f"  {'range of 1000 keys':<28} {(time.perf_counter() - start) / reads * 1e3:>10.2f} ms")

    seen: list[list[float]] = [[] for _ in range(watchers)]
    start_rev = await store.revision() + 1

    async def follow(events: AsyncIterator[Event], out: list[float], n: int) -> None:
        count = 0
        async for _ in events:
            out.append(time.perf_counter())
            count += 1
            if count == n:
                return

    changes = min(ops // 10, 1000)
    tasks = [
        asyncio.create_task(follow(store.watch(p, start_revision=start_rev), seen[w], changes + 1))
        for w in range(watchers)
    ]
    await store.put(f"{p}ready", b"")  # timing starts once every watch has seen this one
    while not all(seen):
        await asyncio.sleep(0.01)
    for times in seen:
        times.clear()
    sent: list[float] = []
    for i in range(changes):
        sent.append(time.perf_counter())
        await store.put(f"{p}w{i}", b"change")
        await asyncio.sleep(0.002)  # let the watchers take it before the next
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    lat = [max(seen[w][i] for w in range(watchers)) - sent[i] for i in range(changes)]
    print(
        f"  {'put -> every watch':<28} p50 {_pct(lat, 0.5) * 1e3:.2f} ms, "
        f"p99 {_pct(lat, 0.99) * 1e3:.2f} ms, mean {statistics.fmean(lat) * 1e3:.2f} ms "
        f"({changes} changes, {watchers} watches)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=20000)
    parser.add_argument("--watchers", type=int, default=3)
    parser.add_argument("--etcd", help="comma-separated member addresses, host:port")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"SQLite (WAL file), {args.ops} operations each:")
        sqlite = SqliteStore(Path(tmp) / "store.db")
        try:
            await bench(sqlite, args.ops, args.watchers)
        finally:
            await sqlite.close()
    if args.etcd:
        ops = max(args.ops // 20, 1000)  # at least the 1000 keys the range reads
        print(f"etcd ({args.etcd}), {ops} operations each:")
        etcd = EtcdStore(args.etcd.split(","))
        try:
            await bench(etcd, ops, args.watchers)
        finally:
            await etcd.close()


if __name__ == "__main__":
    asyncio.run(main())
