"""Replicator and ApplianceLink against the real online API served by uvicorn on 127.0.0.1:
changes land in the replica, an unreachable cloud leaves the replica as it is, a restarted cloud
is caught up with, 410 loads a snapshot, and appliances register, heartbeat and go offline."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from hybridvoice.cms.changes import Change
from hybridvoice.cms.replica import LocalStore
from hybridvoice.cms.replicator import ApplianceLink, Backoff, Replicator
from hybridvoice.net.http import AsgiServer, serve_asgi
from hybridvoice.online.api import create_online_api, run_offline_sweep
from hybridvoice.online.models import Site, User
from hybridvoice.online.store import TenantStore

HOST = "127.0.0.1"
ALICE = "sip:alice@contoso.com"
APPLIANCE = {
    "name": "ams-1", "site": "Amsterdam", "mediation_fqdn": "med1.contoso.com",
    "edge_fqdn": "edge.contoso.com", "edge_sip_host": "192.0.2.10", "version": "1.0",
}  # fmt: skip


def fast() -> Backoff:
    return Backoff(0.02, 0.1, random.Random(7))


TOKEN = "hv_0000a001_" + "A" * 43  # the appliance's bearer token (scope appliance)


def cloud() -> TenantStore:
    store = TenantStore()
    store.access.tokens.adopt(TOKEN, "ams-1", "appliance")
    store.add_domain("contoso.com")
    store.new_site(Site(name="Amsterdam", edge_fqdn="edge.contoso.com"))
    return store


async def until(condition: Callable[[], bool], limit: float = 20.0) -> None:
    """Poll ``condition`` every 10 ms; fail the test after ``limit`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not condition():
        if loop.time() > deadline:
            pytest.fail("condition not reached")
        await asyncio.sleep(0.01)


async def serve(store: TenantStore, port: int = 0, **kwargs: Any) -> AsgiServer:
    return await serve_asgi(create_online_api(store, **kwargs), HOST, port)


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    backoff = Backoff(1.0, 8.0, random.Random(1))
    delays = [backoff.next() for _ in range(7)]
    for delay, ceiling in zip(delays, [1, 2, 4, 8, 8, 8, 8], strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(delays)) == len(delays)  # jittered
    backoff.reset()
    assert backoff.next() <= 1.0
    with pytest.raises(ValueError):
        Backoff(0, 1)


def test_changes_land_and_survive_an_outage() -> None:
    store = cloud()
    replica = LocalStore()

    async def main() -> None:
        server = await serve(store)
        port = server.port
        replicator = Replicator(replica, server.url, wait=1.0, backoff=fast(), token=TOKEN)
        replicator.start()
        try:
            assert await replicator.synced(store.version, 20)
            assert replica.get("site", "Amsterdam") is not None  # an empty replica: a snapshot
            assert replicator.snapshots == 1
            store.set_user(User(sip_uri=ALICE, display_name="Alice").with_password("pw", "x"))
            assert await replicator.synced(store.version, 20)
            alice = replica.get("user", ALICE)
            assert alice is not None and alice["display_name"] == "Alice"
            assert "ha1_md5" not in alice  # secrets stay in the cloud
            assert replicator.connected and replicator.errors == 0

            await server.stop()  # the cloud goes away
            await until(lambda: replicator.errors >= 2 and not replicator.connected)
            assert replicator.lag > 0
            assert replicator.last_error is not None
            store.set_user(User(sip_uri=ALICE, display_name="Alice Cloud"))  # written meanwhile
            alice = replica.get("user", ALICE)
            assert alice is not None and alice["display_name"] == "Alice"  # kept, not dropped
            assert not await replicator.synced(store.version, 0.2)

            server = await serve(store, port)  # back on the same address
            assert await replicator.synced(store.version, 20)
            alice = replica.get("user", ALICE)
            assert alice is not None and alice["display_name"] == "Alice Cloud"
            await until(lambda: replicator.connected)
            assert replicator.snapshots == 1  # the first load only: it resumed from its version
        finally:
            await replicator.stop()
            await server.stop()

    asyncio.run(main())


def test_a_replica_ahead_of_a_restored_cloud_reloads_a_snapshot(tmp_path: Any) -> None:
    store = cloud()
    replica = LocalStore(tmp_path / "replica.db")
    replica.apply([Change(90, "user", "sip:ghost@contoso.com", {"display_name": "Ghost"})])

    async def main() -> None:
        server = await serve(store)
        replicator = Replicator(replica, server.url, wait=1.0, backoff=fast(), token=TOKEN)
        replicator.start()
        try:
            await until(lambda: replicator.snapshots == 1)  # not the empty-replica load
            assert await replicator.synced(store.version, 20)
            store.set_user(User(sip_uri=ALICE))  # and it follows the feed from there
            assert await replicator.synced(store.version, 20)
        finally:
            await replicator.stop()
            await server.stop()

    asyncio.run(main())
    assert replica.version == store.version
    assert replica.get("user", "sip:ghost@contoso.com") is None
    assert set(replica.all("user")) == {ALICE}
    assert set(replica.all("domain")) == {"contoso.com"}


def test_an_unusable_answer_is_an_error_not_a_crash() -> None:
    async def broken(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b'{"version": "x"}'})

    replica = LocalStore()

    async def main() -> None:
        server = await serve_asgi(broken, HOST, 0)
        async with httpx.AsyncClient() as client:  # a client of the host's: left open
            replicator = Replicator(
                replica, server.url + "/", client=client, backoff=fast(), token=TOKEN
            )
            replicator.start()
            try:
                await until(lambda: replicator.errors >= 2)
                assert replicator.running
                assert "version" in (replicator.last_error or "")
            finally:
                await replicator.stop()
                await server.stop()
            assert not client.is_closed

    asyncio.run(main())
    assert replica.version == 0


def test_appliance_registers_heartbeats_and_goes_offline_when_silent() -> None:
    store = cloud()

    async def main() -> None:
        server = await serve(store, heartbeat_timeout=0.5)
        sweep = asyncio.create_task(run_offline_sweep(store, 0.5))  # serve_asgi: no lifespan
        status = "online"
        link = ApplianceLink(
            server.url, APPLIANCE, interval=0.05, status=lambda: status, token=TOKEN
        )
        link.start()
        try:
            await until(lambda: link.heartbeats >= 3)
            assert link.registered and link.registrations == 1
            appliance = store.get_appliance("ams-1")
            assert appliance is not None and appliance.status == "online"

            status = "maintenance"
            await until(lambda: _status(store) == "maintenance")

            store.remove_appliance("ams-1")  # the cloud forgot it: it registers again
            await until(lambda: link.registrations == 2 and _status(store) is not None)

            await link.stop()  # silent from now on
            await until(lambda: _status(store) == "offline")
        finally:
            await link.stop()
            sweep.cancel()
            await server.stop()

    asyncio.run(main())


def test_a_status_change_reaches_the_cloud_at_once_not_at_the_next_heartbeat() -> None:
    """Maintenance entered or left is told at once (``beat_now``): with a 60 s heartbeat the
    cloud would otherwise keep routing new calls to a draining appliance for up to a minute."""
    store = cloud()

    async def main() -> None:
        server = await serve(store)
        status = "online"
        link = ApplianceLink(server.url, APPLIANCE, interval=60, status=lambda: status, token=TOKEN)
        link.start()
        try:
            await until(lambda: link.heartbeats == 1)
            status = "maintenance"
            link.beat_now()
            await until(lambda: _status(store) == "maintenance", limit=10)
            status = "online"
            link.beat_now()
            await until(lambda: _status(store) == "online", limit=10)
            assert link.heartbeats == 3
        finally:
            await link.stop()
            await server.stop()

    asyncio.run(main())


def test_appliance_link_rides_out_an_unreachable_cloud() -> None:
    store = cloud()

    async def main() -> None:
        server = await serve(store)
        port, url = server.port, server.url
        await server.stop()
        link = ApplianceLink(url, APPLIANCE, interval=0.05, status=lambda: "online", token=TOKEN)
        link.start()
        try:
            await until(lambda: link.errors >= 2)
            assert link.running and not link.registered
            server = await serve(store, port)
            await until(lambda: link.heartbeats >= 1)
            assert store.get_appliance("ams-1") is not None
        finally:
            await link.stop()
            await server.stop()

    asyncio.run(main())


def _status(store: TenantStore) -> str | None:
    appliance = store.get_appliance("ams-1")
    return None if appliance is None else appliance.status
