"""The online tenant store on the store interface (hybridvoice.online.store_kv): two instances of
one tenant on one store, on both backends (SQLite: one store shared by both instances; etcd: a
3-member cluster, each instance with its own client). Compare-and-swap retries, caches fed by
the watch, the change feed from revisions, appliance liveness as a lease."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import pytest
from store_backends import Backend

from hybridvoice.online.kv_bridge import KvBridge
from hybridvoice.online.models import Appliance, Site, User
from hybridvoice.online.store_feed import StoreError
from hybridvoice.online.store_kv import KvTenantStore
from hybridvoice.store.keys import tenant_key
from hybridvoice.store.kv import StoreUnavailableError

DOMAIN = "example.com"
ALICE = f"sip:alice@{DOMAIN}"


@contextlib.asynccontextmanager
async def two_instances(kv: Backend, tenant: str) -> AsyncIterator[tuple[KvTenantStore, ...]]:
    """Instances A and B of ``tenant``: on etcd each has its own client and thread; SQLite has
    one store per file, so both share one bridge."""
    bridges = [KvBridge(kv.open)]
    if kv.cluster is not None:
        bridges.append(KvBridge(kv.open))
    stores = []
    try:
        for i in range(2):
            stores.append(KvTenantStore(bridges[i % len(bridges)], tenant=tenant, alive_ttl=4))
        yield tuple(stores)
    finally:
        for store in stores:
            store.close()
        for bridge in bridges:
            bridge.close()


async def eventually(check: Callable[[], bool], limit: float = 30.0) -> None:
    give_up = time.monotonic() + limit
    while not check():
        assert time.monotonic() < give_up, "never happened"
        await asyncio.sleep(0.02)


def run(body: Callable[[], object]) -> None:
    async def main() -> None:
        await asyncio.wait_for(body(), 240)  # type: ignore[arg-type]

    asyncio.run(main())


def tenant_of(kv: Backend) -> str:
    return kv.prefix.rstrip("/")


def test_each_instance_sees_the_others_writes(kv: Backend) -> None:
    async def body() -> None:
        async with two_instances(kv, tenant_of(kv)) as (a, b):
            a.add_domain(DOMAIN)
            a.new_site(Site(name="ams", edge_fqdn="edge.example.com"))
            a.set_user(User(sip_uri=ALICE, line_uri="tel:+15550100", hybrid_pstn_site="ams"))
            await eventually(lambda: b.get_user(ALICE) is not None)
            assert b.domains() == [DOMAIN]
            assert b.user_by_number("+15550100") is not None
            b.remove_user(ALICE)
            await eventually(lambda: a.get_user(ALICE) is None)
            assert a.user_by_number("+15550100") is None

    run(body)


def test_a_stale_write_is_retried_on_the_fresh_record_and_loses_no_update(kv: Backend) -> None:
    """A's cache holds alice without a password; another instance gives her one. A then
    writes alice from its stale view (a replicated value, no HA1s): the compare-and-swap
    fails, A reads the record again and runs set_user again, which keeps the new HA1s."""

    async def body() -> None:
        async with two_instances(kv, tenant_of(kv)) as (a, b):
            a.add_domain(DOMAIN)
            a.set_user(User(sip_uri=ALICE, display_name="Alice"))
            await eventually(lambda: b.get_user(ALICE) is not None)
            with_password = User(sip_uri=ALICE, display_name="Alice").with_password("s3", DOMAIN)
            key = tenant_key(a.tenant, "user", ALICE)
            bridge = a.bridge
            bridge.call(lambda: bridge.kv.put(key, with_password.model_dump_json().encode()))
            written = a.set_user(User(sip_uri=ALICE, display_name="Alice Smith"))
            assert written.has_password and written.display_name == "Alice Smith"
            stored = bridge.call(lambda: bridge.kv.get(key))
            assert stored is not None
            assert User.model_validate_json(stored.value).has_password
            await eventually(lambda: (u := b.get_user(ALICE)) is not None and u.has_password)
            assert b.get_user(ALICE) == written

    run(body)


def test_the_feed_is_the_revision_history(kv: Backend) -> None:
    async def body() -> None:
        async with two_instances(kv, tenant_of(kv)) as (a, b):
            start = b.version
            assert b.compacted_through == start  # older versions: load the snapshot
            a.add_domain(DOMAIN)
            a.set_user(User(sip_uri=ALICE, display_name="Alice").with_password("x", DOMAIN))
            assert await b.wait_for_change(start, 30)
            await eventually(lambda: len(b.changes_since(start)) == 2)
            changes = b.changes_since(start)
            assert [(c.kind, c.key) for c in changes] == [("domain", DOMAIN), ("user", ALICE)]
            assert changes[0].version < changes[1].version  # revisions: compared, not counted
            assert changes[1].value is not None and "ha1_md5" not in changes[1].value
            assert b.changes_since(changes[0].version) == changes[1:]
            assert b.changes_since(start, limit=1) == changes[:1]
            version, rows = b.snapshot()
            assert version == changes[1].version
            assert {(c.kind, c.key, c.version) for c in rows} == {
                (c.kind, c.key, c.version) for c in changes
            }
            # registrations and liveness keys move the revision, never the feed
            bridge = a.bridge
            reg = tenant_key(a.tenant, "reg", f"{ALICE}/x")
            bridge.call(lambda: bridge.kv.put(reg, b"{}"))
            a.set_user(User(sip_uri=ALICE, display_name="A"))
            await eventually(lambda: len(b.changes_since(start)) == 3)
            assert [c.kind for c in b.changes_since(start)] == ["domain", "user", "user"]

    run(body)


def test_an_appliance_heartbeating_to_one_instance_is_online_on_both(kv: Backend) -> None:
    """The liveness key is a lease kept alive by heartbeats: B (which never hears a
    heartbeat) leaves the appliance online while A hears them, and marks it offline once
    the lease ends."""

    async def body() -> None:
        async with two_instances(kv, tenant_of(kv)) as (a, b):
            appliance = Appliance(
                name="cce1", site="ams", edge_fqdn="edge.example.com",
                mediation_fqdn="med.example.com", edge_sip_host="127.0.0.1",
            )  # fmt: skip
            a.register_appliance(appliance, time.time())
            await eventually(lambda: "cce1" in b.alive and b.get_appliance("cce1") is not None)
            assert b.mark_offline(time.time() + 60, 5) == []  # the key is there
            assert b.get_appliance("cce1").status == "online"  # type: ignore[union-attr]
            await kv.advance(10)  # the lease (4 s) ends without heartbeats
            if kv.cluster is None:
                bridge = a.bridge
                bridge.call(bridge.kv.revision)
            await eventually(lambda: "cce1" not in b.alive, 60)
            assert b.mark_offline(time.time() + 60, 5) == ["cce1"]
            await eventually(lambda: a.get_appliance("cce1").status == "offline")  # type: ignore[union-attr]

    run(body)


def test_a_snapshot_after_a_compacted_watch_replaces_the_caches_and_restarts_the_feed(
    kv: Backend,
) -> None:
    """What follow() does when the history to resume from is gone: the mirror loads a
    snapshot; the store drops records the snapshot lacks, keeps the others, and answers
    appliances older than the snapshot with 410 (compacted_through) so they load it too."""

    async def body() -> None:
        async with two_instances(kv, tenant_of(kv)) as (a, b):
            a.add_domain(DOMAIN)
            a.set_user(User(sip_uri=ALICE, display_name="Alice"))
            await eventually(lambda: b.get_user(ALICE) is not None and b.changes_since(0) != [])
            # alice removed while B's watch "was away": B only learns it from a snapshot
            key = tenant_key(a.tenant, "user", ALICE)
            bridge = a.bridge
            bridge.call(lambda: bridge.kv.delete(key))
            snapshot = bridge.call(lambda: bridge.kv.range(b._prefix))
            mirror = b._mirror
            mirror.compacted()
            mirror.load(snapshot)  # as follow() does after CompactedError
            await eventually(lambda: b.get_user(ALICE) is None)
            assert b.domains() == [DOMAIN]
            assert b.compacted_through >= snapshot.revision
            assert b.changes_since(0) == [] or min(c.version for c in b.changes_since(0)) > (
                snapshot.revision
            )
            version, rows = b.snapshot()
            assert version >= snapshot.revision and [r.kind for r in rows] == ["domain"]

    run(body)


class _Unavailable:
    """A backend whose every answer is "no quorum", counting the questions."""

    def __init__(self) -> None:
        self.asked = 0

    async def get(self, key: str) -> None:
        self.asked += 1
        raise StoreUnavailableError("etcd: no member answered (test)")


def test_after_an_unavailable_store_calls_fail_at_once_for_a_while() -> None:
    """The caller of call() is the service's loop: while the cluster is away it must not
    wait for it again on every write (SIP is answered from the caches meanwhile)."""

    async def main() -> None:
        now = [100.0]
        backend = _Unavailable()
        bridge = KvBridge(lambda: backend, hold=5.0, clock=lambda: now[0])  # type: ignore[arg-type,return-value]
        try:
            with pytest.raises(StoreUnavailableError, match="no member answered"):
                bridge.call(lambda: backend.get("k"))
            with pytest.raises(StoreUnavailableError, match="not asked again for 5 s"):
                bridge.call(lambda: backend.get("k"))
            assert backend.asked == 1
            now[0] += 6
            with pytest.raises(StoreUnavailableError, match="no member answered"):
                bridge.call(lambda: backend.get("k"))
            assert backend.asked == 2
        finally:
            bridge.close()

    asyncio.run(main())


def test_the_offline_sweep_skips_a_round_while_the_store_is_away(kv: Backend) -> None:
    async def body() -> None:
        async with two_instances(kv, tenant_of(kv)) as (a, _):
            a.register_appliance(
                Appliance(name="cce1", site="ams", edge_fqdn="edge.example.com",
                          mediation_fqdn="med.example.com", edge_sip_host="127.0.0.1"),
                time.time(),
            )  # fmt: skip
            a.alive.discard("cce1")  # as if its lease had ended
            a.bridge.close()
            assert a.mark_offline(time.time() + 60, 5) == []  # no exception: next round
            assert a.get_appliance("cce1").status == "online"  # type: ignore[union-attr]

    run(body)


def test_a_heartbeat_while_the_store_is_away_is_kept_in_memory(kv: Backend) -> None:
    async def body() -> None:
        async with two_instances(kv, tenant_of(kv)) as (a, _):
            a.register_appliance(
                Appliance(name="cce1", site="ams", edge_fqdn="edge.example.com",
                          mediation_fqdn="med.example.com", edge_sip_host="127.0.0.1"),
                1000.0,
            )  # fmt: skip
            a.bridge.close()
            beat = a.heartbeat("cce1", "maintenance", 2000.0, "2.0")  # would write: refused
            assert (beat.status, beat.version, beat.last_heartbeat) == ("maintenance", "2.0", 2000)
            assert a.get_appliance("cce1") == beat

    run(body)


def test_two_instances_cannot_give_one_number_to_two_users(kv: Backend) -> None:
    """B writes bob with alice's number before its watch has brought alice: its cache says
    the number is free, the claim in the store says it is not."""

    async def body() -> None:
        async with two_instances(kv, tenant_of(kv)) as (a, b):
            a.add_domain(DOMAIN)
            await eventually(lambda: b.domains() == [DOMAIN])
            bob = f"sip:bob@{DOMAIN}"
            a.set_user(User(sip_uri=ALICE, line_uri="tel:+15550100"))
            with pytest.raises(StoreError, match=f"tel:\\+15550100 already belongs to {ALICE}"):
                b.set_user(User(sip_uri=bob, line_uri="tel:+15550100"))
            assert b.get_user(bob) is None
            a.set_user(User(sip_uri=ALICE, line_uri="tel:+15550101"))  # alice moves on
            b.set_user(User(sip_uri=bob, line_uri="tel:+15550100"))  # the number is free
            await eventually(lambda: (u := a.user_by_number("+15550100")) is not None
                             and u.sip_uri == bob)  # fmt: skip
            a.remove_user(ALICE)  # releases +15550101
            await eventually(lambda: b.get_user(ALICE) is None)
            b.set_user(User(sip_uri=f"sip:carol@{DOMAIN}", line_uri="tel:+15550101"))

    run(body)
