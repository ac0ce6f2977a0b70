"""Tenant update windows on the online store on etcd (and SQLite): two instances of one tenant
see each other's windows, a site naming one, the refusal to remove one in use, and a write
that meets another instance's is retried (it escaped as an internal error before)."""

from __future__ import annotations

import pytest
from store_backends import Backend
from test_tenant_store_kv import eventually, run, tenant_of, two_instances

from hybridvoice.online.models import Site
from hybridvoice.online.store_feed import StoreError
from hybridvoice.online.update_windows import TenantUpdateWindow

NIGHT = TenantUpdateWindow(name="Night", start_time="01:00", duration_minutes=120)


def test_windows_on_two_instances(kv: Backend) -> None:
    async def body() -> None:
        async with two_instances(kv, tenant_of(kv)) as (a, b):
            a.set_update_window(NIGHT)
            await eventually(lambda: b.get_update_window("Night") == NIGHT)
            b.new_site(Site(name="ams", edge_fqdn="edge.example.com",
                            update_time_windows=("Night",)))  # fmt: skip
            await eventually(lambda: a.get_site("ams") is not None)
            with pytest.raises(StoreError, match="assigned to site"):
                a.remove_update_window("Night")
            longer = NIGHT.model_copy(update={"duration_minutes": 240})
            b.set_update_window(longer)
            a.set_update_window(NIGHT.model_copy(update={"start_time": "03:00"}))  # stale cache
            await eventually(lambda: b.get_update_window("Night") == a.get_update_window("Night"))
            assert [c.kind for c in a.changes_since(0)].count("update_window") >= 3

    run(body)
