"""A 3-member etcd cluster started by the test, members killed by PID: one down, the store
reads, writes and watches on; two down, requests fail with a clear error (no quorum) and work
again when a member comes back; all down, a mirror answers from its copy and catches up."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from etcd_cluster import EtcdCluster, running_cluster

from hybridvoice.store.etcd_kv import EtcdStore
from hybridvoice.store.follow import follow
from hybridvoice.store.kv import Event, EventKind, StoreError, StoreUnavailableError
from hybridvoice.store.mirror import Mirror

pytestmark = [pytest.mark.interop, pytest.mark.xdist_group("etcd")]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    with running_cluster(tmp_path) as cluster:
        yield cluster


async def until_written(store: EtcdStore, key: str, value: bytes, limit: float = 120.0) -> int:
    give_up = time.monotonic() + limit
    while True:
        try:
            return await store.put(key, value)
        except StoreUnavailableError:
            if time.monotonic() > give_up:
                raise
            await asyncio.sleep(0.5)


def test_one_member_down_reads_writes_and_watches_go_on(cluster: EtcdCluster) -> None:
    async def main() -> None:
        store = EtcdStore(cluster.endpoints)
        try:
            start = await store.put("site/a", b"before")
            watch = store.watch("site/", start_revision=start)
            (first,) = [e async for e in _take(watch, 1)]
            assert first.key == "site/a"
            cluster.kill(0)  # the member this store (and its watch) talks to
            await until_written(store, "site/b", b"after")  # the survivors may elect first
            got = await store.get("site/a")
            assert got is not None and got.value == b"before"
            for n in range(10):
                await store.put(f"site/n{n}", b"%d" % n)
            cas = await store.put_if("site/a", b"moved", mod_revision=got.mod_revision)
            assert cas.succeeded
            rest = [e async for e in _take(watch, 12)]
            assert [e.key for e in rest] == ["site/b"] + [f"site/n{n}" for n in range(10)] + [
                "site/a"
            ]
            assert all(e.kind is EventKind.PUT for e in rest)
            await watch.aclose()  # type: ignore[attr-defined]
        finally:
            await store.close()

    asyncio.run(asyncio.wait_for(main(), 240))


def test_two_members_down_is_a_clear_error_until_one_returns(cluster: EtcdCluster) -> None:
    async def main() -> None:
        store = EtcdStore(cluster.endpoints, timeout=5.0)
        try:
            await store.put("site/kept", b"v")
            cluster.kill(0)
            cluster.kill(1)
            with pytest.raises(StoreUnavailableError) as caught:
                # the survivor may still think it leads for an election timeout: until it
                # steps down a write times out, afterwards it is refused ("no leader")
                for _ in range(30):
                    await store.put("site/x", b"no quorum")
                    await asyncio.sleep(1)
            text = str(caught.value)
            assert "quorum" in text and cluster.endpoints[2] in text
            with pytest.raises(StoreUnavailableError, match="no quorum"):
                for _ in range(30):  # once it knows, reads are refused too (linearizable)
                    await store.get("site/kept")
                    await asyncio.sleep(1)
            cluster.start(1)
            await until_written(store, "site/back", b"quorum again")
            got = await store.get("site/kept")
            assert got is not None and got.value == b"v"
        finally:
            await store.close()

    asyncio.run(asyncio.wait_for(main(), 300))


def test_endpoints_are_checked_naming_the_bad_one() -> None:
    with pytest.raises(StoreError, match=r"'127\.0\.0\.1'"):
        EtcdStore(["127.0.0.1:2379", "127.0.0.1"])
    with pytest.raises(StoreError, match="https://"):
        EtcdStore(["https://127.0.0.1:2379"])
    with pytest.raises(StoreError, match="list of member addresses"):
        EtcdStore("127.0.0.1:2379")


async def _take(watch: AsyncIterator[Event], n: int) -> AsyncIterator[Event]:
    """The next ``n`` events of ``watch``, leaving it open."""
    count = 0
    async for event in watch:
        yield event
        count += 1
        if count == n:
            return


def test_a_mirror_serves_while_the_whole_cluster_is_down_and_catches_up(
    cluster: EtcdCluster,
) -> None:
    async def main() -> None:
        store = EtcdStore(cluster.endpoints, timeout=5.0)
        mirror = Mirror("site/")
        task = asyncio.create_task(follow(store, mirror, retry=0.5, cap=2.0))
        try:
            await store.put("site/gw1", b"10.0.0.1")
            await _until(lambda: mirror.rows.get("site/gw1") == b"10.0.0.1")
            for i in range(3):
                cluster.kill(i)
            await asyncio.sleep(3)  # the follower finds no member and keeps retrying
            assert mirror.rows == {"site/gw1": b"10.0.0.1"}  # still answering from its copy
            assert not task.done()
            cluster.start()
            await until_written(store, "site/gw2", b"10.0.0.2")
            await store.delete("site/gw1")
            await _until(lambda: mirror.rows == {"site/gw2": b"10.0.0.2"})
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await store.close()

    asyncio.run(asyncio.wait_for(main(), 300))


async def _until(check: Callable[[], bool], limit: float = 120.0) -> None:
    give_up = time.monotonic() + limit
    while not check():
        assert time.monotonic() < give_up, "never happened"
        await asyncio.sleep(0.1)


def test_a_watch_on_a_member_that_loses_quorum_ends_with_a_clear_error(
    cluster: EtcdCluster,
) -> None:
    """Without etcd's "require leader" flag a watch on a member cut off from the majority
    stays open and silent: the appliance would never know its settings stopped flowing."""

    async def main() -> None:
        store = EtcdStore(cluster.endpoints)
        try:
            start = await store.put("site/a", b"1")
            watch = store.watch("site/", start_revision=start)
            assert (await anext(watch)).key == "site/a"  # on member 0, the first listed
            cluster.kill(1)
            cluster.kill(2)
            with pytest.raises(StoreUnavailableError, match="no member answered"):
                await asyncio.wait_for(anext(watch), 120)
        finally:
            await store.close()

    asyncio.run(asyncio.wait_for(main(), 240))
