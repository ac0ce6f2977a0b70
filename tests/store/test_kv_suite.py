"""One suite, both backends (conftest's ``kv``: SQLite and a 3-member etcd cluster): revisions,
compare-and-swap, prefix ranges, leases, watches from a revision, compaction and reload."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from store_backends import Backend

from hybridvoice.store.kv import (
    CompactedError,
    Event,
    EventKind,
    KeyValueStore,
    LeaseNotFoundError,
    StoreError,
)


async def take(events: AsyncIterator[Event], n: int) -> list[Event]:
    out: list[Event] = []
    async for event in events:
        out.append(event)
        if len(out) == n:
            break
    return out


def test_revisions_rise_with_every_write_and_keys_remember_theirs(kv: Backend) -> None:
    p = kv.prefix

    async def body(store: KeyValueStore) -> None:
        start = await store.revision()
        r1 = await store.put(p + "a", b"1")
        r2 = await store.put(p + "b", b"2")
        r3 = await store.put(p + "a", b"3")
        r4 = await store.delete(p + "b")
        assert r4 is not None
        assert start < r1 < r2 < r3 < r4 == await store.revision()
        got = await store.get(p + "a")
        assert got is not None
        assert (got.value, got.create_revision, got.mod_revision, got.version) == (b"3", r1, r3, 2)
        assert await store.get(p + "b") is None
        assert await store.delete(p + "b") is None  # nothing to delete: no new revision
        assert await store.revision() == r4
        again = await store.put(p + "b", b"new")  # a new life: create_revision, version 1
        got = await store.get(p + "b")
        assert got is not None and (got.create_revision, got.version) == (again, 1)

    kv.run(body)


def test_compare_and_swap_on_mod_revision(kv: Backend) -> None:
    key = kv.prefix + "cas"

    async def body(store: KeyValueStore) -> None:
        made = await store.put_if(key, b"v1", mod_revision=0)
        assert made.succeeded
        assert not (await store.put_if(key, b"again", mod_revision=0)).succeeded
        stale = made.revision
        moved = await store.put_if(key, b"v2", mod_revision=stale)
        assert moved.succeeded and moved.revision > stale
        lost = await store.put_if(key, b"v3", mod_revision=stale)
        assert not lost.succeeded and lost.revision >= moved.revision
        got = await store.get(key)
        assert got is not None and got.value == b"v2"
        assert not (await store.delete_if(key, mod_revision=stale)).succeeded
        assert (await store.delete_if(key, mod_revision=moved.revision)).succeeded
        assert await store.get(key) is None

    kv.run(body)


def test_concurrent_compare_and_swap_has_one_winner(kv: Backend) -> None:
    key = kv.prefix + "counter"

    async def body(store: KeyValueStore) -> None:
        base = await store.put(key, b"0")
        results = await asyncio.gather(
            *(store.put_if(key, str(n).encode(), mod_revision=base) for n in range(1, 6))
        )
        assert sum(r.succeeded for r in results) == 1
        winner = next(n for n, r in enumerate(results, 1) if r.succeeded)
        got = await store.get(key)
        assert got is not None and got.value == str(winner).encode()

    kv.run(body)


def test_prefix_range_of_many_keys_in_key_order(kv: Backend) -> None:
    p = kv.prefix

    async def body(store: KeyValueStore) -> None:
        names = [f"{p}users/u{n:04d}" for n in range(600)]
        for name in reversed(names):
            await store.put(name, name.encode())
        await store.put(p + "users", b"not under users/")
        await store.put(p + "users0/x", b"next prefix")
        await store.put(p + "usert/x", b"neighbour")
        got = await store.range(p + "users/")
        assert [kv.key for kv in got.kvs] == names
        assert all(kv.value == kv.key.encode() for kv in got.kvs)
        assert got.revision == await store.revision()
        first = await store.range(p + "users/", limit=10)
        assert [kv.key for kv in first.kvs] == names[:10]
        assert (await store.range(p + "nothing/")).kvs == ()

    kv.run(body)


def test_leases_expire_unless_kept_alive(kv: Backend) -> None:
    p = kv.prefix

    async def body(store: KeyValueStore) -> None:
        lease = await store.grant(8)
        await store.put(p + "reg/alice", b"contact", lease=lease)
        kept = await store.put(p + "reg/keep", b"no lease")
        got = await store.get(p + "reg/alice")
        assert got is not None and got.lease == lease
        await kv.advance(3)
        await store.keep_alive(lease)
        await kv.advance(3)
        assert await store.get(p + "reg/alice") is not None  # 6 s after the grant, 3 since
        watch = store.watch(p + "reg/", start_revision=kept + 1)
        await kv.advance(9)

        async def gone() -> bool:
            return await store.get(p + "reg/alice") is None

        await kv.eventually(gone)
        assert await store.get(p + "reg/keep") is not None
        (event,) = await take(watch, 1)
        assert (event.kind, event.key) == (EventKind.DELETE, p + "reg/alice")
        await watch.aclose()  # type: ignore[attr-defined]
        with pytest.raises(LeaseNotFoundError):
            await store.keep_alive(lease)
        with pytest.raises(LeaseNotFoundError):
            await store.put(p + "reg/bob", b"x", lease=lease)

    kv.run(body)


def test_revoking_a_lease_deletes_its_keys_at_once(kv: Backend) -> None:
    p = kv.prefix

    async def body(store: KeyValueStore) -> None:
        lease = await store.grant(60)
        for n in range(3):
            await store.put(f"{p}reg/{n}", b"x", lease=lease)
        before = await store.revision()
        await store.revoke(lease)
        assert (await store.range(p + "reg/")).kvs == ()
        events = await take(store.watch(p, start_revision=before + 1), 3)
        assert {e.key for e in events} == {f"{p}reg/{n}" for n in range(3)}
        assert all(e.kind is EventKind.DELETE for e in events)
        with pytest.raises(LeaseNotFoundError):
            await store.revoke(lease)

    kv.run(body)


def test_watch_delivers_every_change_in_order_from_a_revision(kv: Backend) -> None:
    p = kv.prefix

    async def body(store: KeyValueStore) -> None:
        start = await store.revision() + 1
        expected: list[tuple[EventKind, str, bytes]] = []
        for n in range(40):
            key = f"{p}w/k{n % 7}"
            if n % 5 == 4:
                if await store.delete(key) is not None:
                    expected.append((EventKind.DELETE, key, b""))
            else:
                await store.put(key, f"v{n}".encode())
                expected.append((EventKind.PUT, key, f"v{n}".encode()))
            await store.put(f"{p}other/{n}", b"not watched")
        watch = store.watch(p + "w/", start_revision=start)
        past = await take(watch, len(expected))
        assert [(e.kind, e.key, e.value) for e in past] == expected
        revisions = [e.revision for e in past]
        assert revisions == sorted(revisions) and len(set(revisions)) == len(revisions)

        async def writer() -> None:  # live changes after the history, while watching
            for n in range(20):
                await store.put(f"{p}w/live{n}", b"%d" % n)

        live, _ = await asyncio.gather(take(watch, 20), writer())
        assert [e.key for e in live] == [f"{p}w/live{n}" for n in range(20)]
        await watch.aclose()  # type: ignore[attr-defined]

    kv.run(body)


def test_compacted_history_sends_the_watcher_to_a_snapshot(kv: Backend) -> None:
    p = kv.prefix

    async def body(store: KeyValueStore) -> None:
        first = await store.put(p + "s/a", b"1")
        await store.put(p + "s/b", b"2")
        await store.delete(p + "s/a")
        last = await store.put(p + "s/c", b"3")
        await store.compact(last)
        with pytest.raises(CompactedError) as caught:
            await take(store.watch(p + "s/", start_revision=first), 1)
        assert caught.value.compact_revision == last
        assert "reload a snapshot" in str(caught.value)
        # the replica's way back: a snapshot, then a watch from just after it
        snap = await store.range(p + "s/")
        replica = {kv.key: kv.value for kv in snap.kvs}
        assert replica == {p + "s/b": b"2", p + "s/c": b"3"}
        watch = store.watch(p + "s/", start_revision=snap.revision + 1)
        await store.put(p + "s/d", b"4")
        await store.delete(p + "s/b")
        for event in await take(watch, 2):
            if event.kind is EventKind.PUT:
                replica[event.key] = event.value
            else:
                replica.pop(event.key)
        await watch.aclose()  # type: ignore[attr-defined]
        now = await store.range(p + "s/")
        assert replica == {kv.key: kv.value for kv in now.kvs}

    kv.run(body)


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda s: s.put("", b"x"), "key ''"),
        (lambda s: s.put("a\x00b", b"x"), "NUL"),
        (lambda s: s.put("k/x", "text"), "must be bytes"),
        (lambda s: s.get("k/" + "x" * 2000), "longer than"),
        (lambda s: s.grant(0), "lease ttl 0"),
        (lambda s: s.put("k/big", b"x" * (1024 * 1024 + 1)), "over the 1048576 allowed"),
        (lambda s: s.put_if("k/big", b"x" * (2 << 20), mod_revision=0), "k/big"),
        (lambda s: s.put_if("k/x", b"v", mod_revision="5"), "mod_revision '5'"),
        (lambda s: s.delete_if("k/x", mod_revision=-1), "mod_revision -1"),
        (lambda s: s.put("k/x", b"v", lease=-3), "lease -3"),
        (lambda s: s.keep_alive("7"), "lease '7'"),
        (lambda s: s.range("k/", limit=1.5), "limit 1.5"),
        (lambda s: s.compact(0), "compact revision 0"),
        (lambda s: s.watch("k/", start_revision="1").__anext__(), "start_revision '1'"),
    ],
)
def test_bad_input_is_refused_naming_what_and_why(kv: Backend, call: object, named: str) -> None:
    async def body(store: KeyValueStore) -> None:
        with pytest.raises(StoreError, match=named.replace("'", ".")):
            await call(store)  # type: ignore[operator]

    kv.run(body)


def test_an_ended_lease_id_is_never_handed_out_again(kv: Backend) -> None:
    """SQLite reused the id of the newest lease once it was revoked (INTEGER PRIMARY KEY
    without AUTOINCREMENT): an old registration's keep-alive then kept someone else's alive."""

    async def body(store: KeyValueStore) -> None:
        old = await store.grant(60)
        await store.revoke(old)
        new = await store.grant(60)
        assert new != old
        with pytest.raises(LeaseNotFoundError):
            await store.keep_alive(old)

    kv.run(body)
