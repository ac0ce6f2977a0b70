"""What only the SQLite backend has: a file kept across restarts (revision, history, leases
with their whole TTL again, as etcd does), compaction as a setting, a closed store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hybridvoice.store.kv import CompactedError, Event, EventKind, StoreError
from hybridvoice.store.sqlite_kv import SqliteStore


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_a_reopened_file_keeps_revision_history_and_leases(tmp_path: Path) -> None:
    path = tmp_path / "kv.db"
    clock = Clock()

    async def before() -> tuple[int, int, int]:
        store = SqliteStore(path, clock=clock)
        first = await store.put("a", b"1")
        lease = await store.grant(30)
        await store.put("reg/x", b"c", lease=lease)
        last = await store.delete("a")
        assert last is not None
        await store.close()
        return first, lease, last

    async def after(first: int, lease: int, last: int) -> None:
        clock.now += 25  # 25 s "down": the lease gets its 30 s again from the reopen
        store = SqliteStore(path, clock=clock)
        assert await store.revision() == last
        assert await store.put("b", b"2") == last + 1
        kinds = [
            (e.kind, e.key)
            async for e in _first(store.watch("", start_revision=first), 4)  # history kept
        ]
        assert kinds == [
            (EventKind.PUT, "a"),
            (EventKind.PUT, "reg/x"),
            (EventKind.DELETE, "a"),
            (EventKind.PUT, "b"),
        ]
        clock.now += 20
        assert await store.get("reg/x") is not None
        clock.now += 11
        assert await store.get("reg/x") is None
        await store.close()

    asyncio.run(after(*asyncio.run(before())))


def test_compaction_as_a_setting_keeps_the_last_revisions(tmp_path: Path) -> None:
    async def main() -> None:
        store = SqliteStore(tmp_path / "kv.db", keep_revisions=100)
        revs = [await store.put(f"k{n % 10}", b"x") for n in range(400)]
        with pytest.raises(CompactedError) as caught:
            await _first(store.watch("", start_revision=revs[0]), 1).__anext__()
        assert revs[-1] - 110 <= caught.value.compact_revision <= revs[-1] - 100
        got = [e.revision async for e in _first(store.watch("", start_revision=revs[-100]), 100)]
        assert got == revs[-100:]
        await store.close()

    asyncio.run(main())


def test_settings_and_compaction_requests_are_checked() -> None:
    with pytest.raises(StoreError, match="keep_revisions -1"):
        SqliteStore(keep_revisions=-1)

    async def main() -> None:
        store = SqliteStore()
        rev = await store.put("k", b"v")
        with pytest.raises(StoreError, match="later than the current revision"):
            await store.compact(rev + 5)
        await store.compact(rev)
        with pytest.raises(StoreError, match="already compacted"):
            await store.compact(rev)
        with pytest.raises(StoreError, match="start_revision -1"):
            await _first(store.watch("", start_revision=-1), 1).__anext__()
        await store.close()

    asyncio.run(main())


def test_closing_ends_waiting_watches_with_an_error(tmp_path: Path) -> None:
    async def main() -> None:
        store = SqliteStore(tmp_path / "kv.db")
        watch = store.watch("x/", start_revision=0)
        waiting = asyncio.ensure_future(watch.__anext__())
        await asyncio.sleep(0.1)
        await store.close()
        with pytest.raises(StoreError, match="closed"):
            await asyncio.wait_for(waiting, 30)
        with pytest.raises(StoreError, match="closed"):
            await store.get("x/a")

    asyncio.run(main())


async def _first(events: AsyncIterator[Event], n: int) -> AsyncIterator[Event]:
    count = 0
    async for event in events:
        yield event
        count += 1
        if count == n:
            return


def test_a_lease_with_more_keys_than_a_revision_holds_ends_in_several(tmp_path: Path) -> None:
    async def main() -> None:
        store = SqliteStore(tmp_path / "kv.db")
        store._per_revision = 2  # 1 << 20 in use; small here to see the split
        lease = await store.grant(10)
        for n in range(5):
            await store.put(f"reg/{n}", b"x", lease=lease)
        before = await store.revision()
        await store.revoke(lease)
        events = [e async for e in _first(store.watch("reg/", start_revision=before + 1), 5)]
        assert [e.key for e in events] == [f"reg/{n}" for n in range(5)]
        assert [e.revision - before for e in events] == [1, 1, 2, 2, 3]
        assert (await store.range("reg/")).kvs == ()
        await store.close()

    asyncio.run(main())
