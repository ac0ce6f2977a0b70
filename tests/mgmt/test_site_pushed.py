"""Tenant settings pushed from the cloud, kept in the site store (``pushed/<kind>:<key>``):
every change the tenant replica takes is written with its feed version, an older version never
replaces a newer one, and an empty tenant replica (a new appliance) starts from them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hybridvoice.cms.changes import Change
from hybridvoice.cms.replica import LocalStore
from hybridvoice.cms.site_records import (
    SITE_KINDS,
    SiteChange,
    SiteReplica,
    decode,
    pushed_snapshot,
    record_key,
)
from hybridvoice.mgmt.site_link import SiteConfig, SiteLink
from hybridvoice.mgmt.site_pushed import PushedSettings
from hybridvoice.store.kv import StoreUnavailableError
from hybridvoice.store.sqlite_kv import SqliteStore

NETWORK = {"media_bypass_enabled": True, "internal_subnets": ["10.0.0.0/8"]}


def _link(store: SqliteStore) -> SiteLink:
    replica = SiteReplica("Lab", LocalStore(kinds=SITE_KINDS, change=SiteChange))
    return SiteLink(SiteConfig("Lab", ("127.0.0.1:2379",)), store, replica)


async def _until(check: object, limit: float = 30.0) -> None:
    give_up = time.monotonic() + limit
    while not (callable(check) and await check()):
        assert time.monotonic() < give_up, "timed out"
        await asyncio.sleep(0.01)


def test_pushed_settings_reach_the_site_store_newest_wins() -> None:
    async def main() -> None:
        store = SqliteStore()
        tenant = LocalStore()
        tenant.apply([Change(3, "network_config", "global", NETWORK)])
        pushed = PushedSettings(_link(store), tenant)
        pushed.start()  # what the replica held before: pushed too
        tenant.apply([Change(4, "dialplan", "NANP10", {"pattern": r"(\d{10})"})])
        key = record_key("Lab", "pushed", "dialplan:NANP10")

        async def written() -> bool:
            return await store.get(key) is not None and pushed.pushed == 2

        await _until(written)
        found = await store.get(record_key("Lab", "pushed", "network_config:global"))
        assert found is not None and decode(found.key, found.value)["value"] == NETWORK
        # another appliance, behind: its older version does not replace the newer record
        other = _link(store)
        assert not await other.put_newer("pushed", "dialplan:NANP10", {"version": 2, "value": {}})
        assert await other.put_newer("pushed", "dialplan:NANP10", {"version": 9, "value": None})
        await pushed.stop()
        await store.close()

    asyncio.run(main())


def test_an_empty_tenant_replica_starts_from_the_pushed_settings() -> None:
    site = LocalStore(kinds=SITE_KINDS, change=SiteChange)
    site.apply([
        SiteChange(10, "pushed", "network_config:global", {"version": 7, "value": NETWORK}),
        SiteChange(11, "pushed", "user:sip:gone@example.com", {"version": 8, "value": None}),
        SiteChange(12, "pushed", "nonsense", {"version": 99, "value": {}}),
    ])  # fmt: skip
    assert pushed_snapshot(site.all("pushed"))[0] == 8
    tenant = LocalStore()
    pushed = PushedSettings(_link(SqliteStore()), tenant)
    pushed.seed(site)
    assert tenant.version == 8 and pushed.seeded == 8
    assert tenant.get("network_config", "global") == NETWORK
    tenant.apply([Change(9, "network_config", "global", {})])
    pushed.seed(site)  # a replica that has settings keeps them
    assert tenant.get("network_config", "global") == {}


class _Away(SqliteStore):
    """A site store that refuses every read and write while ``away`` (etcd without quorum)."""

    away = False

    async def get(self, key: str) -> Any:
        if self.away:
            raise StoreUnavailableError("etcd: no member answered (test)")
        return await super().get(key)


def test_changes_taken_while_the_site_store_is_away_are_written_when_it_is_back() -> None:
    """The cloud's changes made while the site's etcd is away reach the site store when it
    comes back, the newest per record, without the record changing again (before: a failed
    push was dropped until the same record changed again)."""

    async def main() -> None:
        store = _Away()
        tenant = LocalStore()
        pushed = PushedSettings(_link(store), tenant, retry_max=0.05)
        pushed.start()
        store.away = True
        tenant.apply([Change(5, "network_config", "global", NETWORK)])
        tenant.apply([Change(6, "dialplan", "NANP10", {"pattern": "1"})])
        tenant.apply([Change(7, "dialplan", "NANP10", {"pattern": "2"})])

        async def waiting() -> bool:
            return pushed.waiting == 2

        await _until(waiting)
        await asyncio.sleep(0.2)  # several failed tries
        assert pushed.pushed == 0 and pushed.waiting == 2
        store.away = False

        async def written() -> bool:
            return pushed.waiting == 0

        await _until(written)
        assert pushed.pushed == 2  # the dial plan rule once, at its newest version
        found = await store.get(record_key("Lab", "pushed", "dialplan:NANP10"))
        assert found is not None
        assert decode(found.key, found.value) == {"version": 7, "value": {"pattern": "2"}}
        assert await store.get(record_key("Lab", "pushed", "network_config:global")) is not None
        await pushed.stop()
        await store.close()

    asyncio.run(main())
