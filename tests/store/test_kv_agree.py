"""Differential check: one random sequence of operations on a fresh SQLite store and a fresh
3-member etcd cluster gives the same answers, revisions included, the same history and the
same answer to a watch from before a compaction."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from etcd_cluster import EtcdCluster, running_cluster

from hybridvoice.store.etcd_kv import EtcdStore
from hybridvoice.store.kv import CompactedError, KeyValueStore, LeaseNotFoundError
from hybridvoice.store.sqlite_kv import SqliteStore

pytestmark = [pytest.mark.interop, pytest.mark.xdist_group("etcd")]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    with running_cluster(tmp_path) as cluster:
        yield cluster


async def script(store: KeyValueStore, seed: int, n: int) -> list[object]:
    rng = random.Random(seed)
    out: list[object] = []
    leases: list[int] = []  # by index: the ids differ between backends
    keys = [f"a/{c}" for c in "pqrs"] + ["b/x", "a", "a/", "a/p/q"]
    for i in range(n):
        key = rng.choice(keys)
        op = rng.randrange(9)
        current = await store.get(key)
        mod = current.mod_revision if current else 0
        if op == 0:
            leases.append(await store.grant(600))
            out.append(("grant", len(leases)))
        elif op == 1 and leases:
            which = rng.randrange(len(leases))
            try:
                await store.revoke(leases[which])
                out.append(("revoke", which))
            except LeaseNotFoundError:
                out.append(("revoke", which, "gone"))
        elif op == 2 and leases:
            which = rng.randrange(len(leases))
            try:
                out.append(("put-lease", await store.put(key, b"L%d" % i, lease=leases[which])))
            except LeaseNotFoundError:
                out.append(("put-lease", which, "gone"))
        elif op == 3:
            out.append(("delete", await store.delete(key)))
        elif op == 4:
            stale = rng.random() < 0.4
            result = await store.put_if(key, b"C%d" % i, mod_revision=mod + stale)
            out.append(("put_if", result.succeeded, result.revision))
        elif op == 5:
            result = await store.delete_if(key, mod_revision=mod + (rng.random() < 0.4))
            out.append(("delete_if", result.succeeded, result.revision))
        elif op == 6:
            got = await store.range(rng.choice(["a/", "a", "b/", ""]), limit=rng.choice([0, 2]))
            out.append(("range", got.revision, [(k.key, k.value, k.mod_revision) for k in got.kvs]))
        else:
            out.append(("put", await store.put(key, b"v%d" % i)))
        got = await store.get(key)
        out.append(
            None
            if got is None
            else (got.key, got.value, got.create_revision, got.mod_revision, got.version)
        )
    last = await store.put("end", b"")
    history = []
    async for event in store.watch("", start_revision=1):
        history.append((event.kind, event.key, event.value, event.revision))
        if event.revision == last:
            break
    out.append(history)
    await store.compact(last - 10)
    try:
        async for event in store.watch("a/", start_revision=last - 11):
            out.append(("not compacted", event))
            break
    except CompactedError as exc:
        out.append(("compacted", exc.requested, exc.compact_revision))
    return out


async def _run(store: KeyValueStore, seed: int, n: int) -> list[object]:
    try:
        return await script(store, seed, n)
    finally:
        await store.close()


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_sqlite_and_etcd_agree(cluster: EtcdCluster, tmp_path: Path, seed: int) -> None:
    sqlite = asyncio.run(_run(SqliteStore(tmp_path / f"kv{seed}.db"), seed, 200))
    etcd = asyncio.run(_run(EtcdStore(cluster.endpoints), seed, 200))
    assert isinstance(sqlite[-1], tuple) and sqlite[-1][0] == "compacted"
    assert len(sqlite) == len(etcd)
    for n, (a, b) in enumerate(zip(sqlite, etcd, strict=True)):
        assert a == b, f"operation {n // 2}: {a} != {b}; before: {sqlite[max(0, n - 12) : n]}"
