"""A mirror of a prefix follows the store (both backends): every change arrives, a compacted
history sends it to a snapshot, and a lost watch resumes without a gap."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

from store_backends import Backend

from hybridvoice.store.follow import follow
from hybridvoice.store.kv import Event, EventKind, KeyValue, KeyValueStore, Range
from hybridvoice.store.mirror import Mirror


async def _random_writes(store: KeyValueStore, prefix: str, n: int, seed: int) -> None:
    rng = random.Random(seed)
    lease = await store.grant(60)
    for i in range(n):
        key = f"{prefix}k{rng.randrange(12)}"
        roll = rng.random()
        if roll < 0.2:
            await store.delete(key)
        elif roll < 0.3:
            await store.put(key, b"leased %d" % i, lease=lease)
        else:
            await store.put(key, b"v%d" % i)
        await store.put(f"{prefix[:-1]}-outside/{i}", b"not mirrored")
    await store.revoke(lease)


async def _caught_up(store: KeyValueStore, mirror: Mirror, limit: float = 60.0) -> None:
    """The mirror holds what a range read of the store holds now (the follower runs in the
    same loop: give it the turns it needs; etcd's events take milliseconds)."""
    snap = await store.range(mirror.prefix)
    want = {item.key: item.value for item in snap.kvs}
    give_up = time.monotonic() + limit
    while mirror.rows != want:
        assert time.monotonic() < give_up, "the mirror never caught up"
        await asyncio.sleep(0.05)


def test_the_mirror_follows_every_change(kv: Backend) -> None:
    prefix = kv.prefix + "cms/"

    async def body(store: KeyValueStore) -> None:
        mirror = Mirror(prefix)
        seen: list[Event] = []
        task = asyncio.create_task(follow(store, mirror, changed=seen.append))
        try:
            await _random_writes(store, prefix, 120, seed=1)
            await _caught_up(store, mirror)
            revisions = [e.revision for e in seen]
            assert revisions == sorted(revisions)
            assert mirror.reloads == 0
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    kv.run(body)


def test_a_mirror_behind_a_compaction_reloads_a_snapshot(kv: Backend) -> None:
    prefix = kv.prefix + "cms/"

    async def body(store: KeyValueStore) -> None:
        mirror = Mirror(prefix)
        task = asyncio.create_task(follow(store, mirror))
        await _random_writes(store, prefix, 30, seed=2)
        await _caught_up(store, mirror)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        behind = mirror.revision
        await _random_writes(store, prefix, 30, seed=3)  # while the mirror is away
        await store.compact(await store.revision())
        task = asyncio.create_task(follow(store, mirror))
        try:
            await _caught_up(store, mirror)
            assert mirror.reloads == 1 and mirror.revision > behind
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    kv.run(body)


def test_mirror_rules_without_a_store() -> None:
    mirror = Mirror("p/")
    assert mirror.resume_at() == 1 and not mirror.loaded
    mirror.load(Range((KeyValue("p/a", b"1", 5, 7, 2),), 9))
    assert mirror.rows == {"p/a": b"1"} and mirror.resume_at() == 9
    assert not mirror.apply(Event(EventKind.PUT, "p/a", b"old", 7))  # in the snapshot already
    # revision 9 again after a lost watch: applying twice changes nothing
    for _ in range(2):
        assert mirror.apply(Event(EventKind.DELETE, "p/a", b"", 9))
    assert mirror.rows == {} and mirror.revision == 9
    mirror.compacted()
    mirror.load(Range((), 20))
    assert mirror.reloads == 1 and mirror.loaded and mirror.resume_at() == 20
