"""The change feed of two online instances on one store, followed by the appliance's unchanged
replicator (hybridvoice.cms.replicator) with both instances' URLs: a snapshot first, then the
changes written on either instance (versions are revisions), then, with instance A's API gone,
the replicator moves to B and goes on from its version without a new snapshot; the
appliance's token, made on A, is valid on B (hybridvoice.online.tokens_kv). Both backends."""

from __future__ import annotations

import asyncio
import random

import httpx
from store_backends import Backend
from test_tenant_store_kv import eventually, two_instances

from hybridvoice.cms.replica import LocalStore
from hybridvoice.cms.replicator import Backoff, Replicator
from hybridvoice.net.http import serve_asgi
from hybridvoice.online.api import create_online_api
from hybridvoice.online.api_store import add_store_errors
from hybridvoice.online.models import Site, User
from hybridvoice.online.store_kv import KvTenantStore
from hybridvoice.online.tokens_kv import share_tokens

TOKEN = "hv_0000a001_" + "A" * 43
ALICE = "sip:alice@contoso.com"


def fed(store: KvTenantStore, name: str) -> bool:
    found = [c for c in store.changes_since(0) if c.key == ALICE]
    return bool(found) and found[-1].value is not None and found[-1].value["display_name"] == name


def test_the_replicator_follows_either_instance(kv: Backend) -> None:
    async def body() -> None:
        async with two_instances(kv, kv.prefix.rstrip("/")) as (a, b):
            share_tokens(a)
            share_tokens(b)
            a.add_domain("contoso.com")
            a.new_site(Site(name="Amsterdam", edge_fqdn="edge.contoso.com"))
            a.access.tokens.adopt(TOKEN, "ams-1", "appliance")
            await eventually(lambda: b.access.tokens.verify(TOKEN) is not None)
            server_a = await serve_asgi(create_online_api(a), "127.0.0.1", 0)
            server_b = await serve_asgi(create_online_api(b), "127.0.0.1", 0)
            replica = LocalStore()
            replicator = Replicator(
                replica, [server_a.url, server_b.url], wait=1.0,
                backoff=Backoff(0.02, 0.1, random.Random(7)), token=TOKEN,
            )  # fmt: skip
            replicator.start()
            try:
                assert await replicator.synced(a.version, 30)
                assert replicator.snapshots == 1 and replicator.base_url == server_a.url
                assert replica.get("site", "Amsterdam") is not None
                b.set_user(User(sip_uri=ALICE, display_name="Alice").with_password("pw", "x"))
                # a write is in the feeds once the watches bring it (milliseconds)
                await eventually(lambda: fed(a, "Alice") and fed(b, "Alice"))
                assert await replicator.synced(b.version, 30)  # B's write, through A's feed
                alice = replica.get("user", ALICE)
                assert alice is not None and alice["display_name"] == "Alice"
                assert "ha1_md5" not in alice
                await server_a.stop()  # instance A's API goes away
                a.set_user(User(sip_uri=ALICE, display_name="Alice B"))
                await eventually(lambda: fed(b, "Alice B"))
                assert await replicator.synced(b.version, 30)
                assert replicator.base_url == server_b.url
                alice = replica.get("user", ALICE)
                assert alice is not None and alice["display_name"] == "Alice B"
                assert replicator.snapshots == 1  # went on from its version on B
                assert replica.version == b.version
            finally:
                await replicator.stop()
                await server_b.stop()
                await server_a.stop()

    async def main() -> None:
        await asyncio.wait_for(body(), 240)

    asyncio.run(main())


def test_a_write_without_the_store_is_503_naming_why(kv: Backend) -> None:
    async def body() -> None:
        async with two_instances(kv, kv.prefix.rstrip("/")) as (a, _):
            a.add_domain("contoso.com")
            app = create_online_api(a)
            add_store_errors(app)
            a.bridge.close()  # the store is gone (as etcd without quorum)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://hv") as client:
                a.access.tokens.adopt(TOKEN.replace("0000a001", "0000a002"), "admin", "admin")
                headers = {"Authorization": "Bearer " + TOKEN.replace("0000a001", "0000a002")}
                reply = await client.put(
                    f"/v1/users/{ALICE}", json={"display_name": "A"}, headers=headers
                )
                assert reply.status_code == 503, reply.text
                assert "store bridge is closed" in reply.json()["error"]
                assert reply.headers["retry-after"] == "5"
                reply = await client.get("/v1/domains", headers=headers)  # reads: the caches
                assert reply.status_code == 200 and reply.json()["domains"] == ["contoso.com"]

    asyncio.run(asyncio.wait_for(body(), 240))
