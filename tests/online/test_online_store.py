"""TenantStore: CRUD per kind, the change feed, durability, waiting, subscribers, snapshots,
appliance registration and heartbeats, and the refusals that keep the data consistent."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridvoice.cms.changes import Change
from hybridvoice.online.models import (
    Appliance,
    DialPlanRule,
    HybridConfig,
    NetworkConfig,
    Site,
    User,
)
from hybridvoice.online.store import HEARTBEAT_PUBLISH_INTERVAL, StoreError, TenantStore

REALM = "contoso.com"


def _appliance(name: str = "ams-1", site: str = "Amsterdam", **extra: object) -> Appliance:
    fields: dict[str, object] = {
        "name": name,
        "site": site,
        "mediation_fqdn": f"{name}.med.contoso.local",
        "edge_fqdn": "ap.contoso.com",
        "edge_sip_host": "192.0.2.10",
        "version": "1.0",
    }
    fields.update(extra)
    return Appliance.model_validate(fields)


def _alice(**extra: object) -> User:
    fields: dict[str, object] = {
        "sip_uri": "sip:alice@contoso.com",
        "display_name": "Alice",
        "enterprise_voice_enabled": True,
        "line_uri": "tel:+46812345678",
    }
    fields.update(extra)
    return User.model_validate(fields)


@pytest.fixture
def store() -> TenantStore:
    s = TenantStore()
    s.add_domain("Contoso.com")
    return s


def test_empty_store() -> None:
    s = TenantStore()
    assert s.version == 0
    assert s.changes_since(0) == []
    assert s.snapshot() == (0, [])
    assert s.hybrid_config() == HybridConfig()
    assert s.network_config() == NetworkConfig()
    assert not s.users() and not s.sites() and not s.appliances() and not s.dialplan()


def test_domains(store: TenantStore) -> None:
    assert store.domains() == ["contoso.com"]
    store.add_domain("contoso.com")  # no change for an existing domain
    assert store.version == 1
    assert store.changes_since(0) == [Change(1, "domain", "contoso.com", {})]
    with pytest.raises(StoreError, match="not a valid DNS name"):
        store.add_domain("bad domain")
    store.set_user(_alice())
    with pytest.raises(StoreError, match="remove them first"):
        store.remove_domain("contoso.com")
    store.remove_user("sip:alice@contoso.com")
    store.remove_domain("contoso.com")
    assert store.domains() == []
    assert store.changes_since(store.version - 1) == [
        Change(store.version, "domain", "contoso.com", None)
    ]


def test_users_crud_and_number_lookup(store: TenantStore) -> None:
    alice = store.set_user(_alice().with_password("pw", REALM))
    assert store.get_user("sip:alice@CONTOSO.com") == alice
    assert store.get_user("not a uri") is None
    assert store.user_by_number("+46812345678") == alice
    assert store.user_by_number("tel:+46 8 1234 5678") == alice
    assert store.user_by_number("+4600") is None
    change = store.changes_since(store.version - 1)[0]
    assert change.kind == "user" and change.key == "sip:alice@contoso.com"
    assert change.value is not None and "ha1_md5" not in change.value
    assert change.value["line_uri"] == "tel:+46812345678"
    # an update without secrets keeps the stored HA1s; an unchanged user is not a change
    renamed = store.set_user(User.model_validate({**dict(change.value), "display_name": "Al"}))
    assert renamed.ha1_md5 == alice.ha1_md5 and renamed.display_name == "Al"
    version = store.version
    store.set_user(renamed)
    assert store.version == version
    # the number moves with the user
    store.set_user(renamed.model_copy(update={"line_uri": "tel:+46899"}))
    assert store.user_by_number("+46812345678") is None
    assert store.user_by_number("+46899") is not None
    with pytest.raises(StoreError, match=r"already belongs to sip:alice@contoso\.com"):
        store.set_user(User(sip_uri="sip:bob@contoso.com", line_uri="tel:+46899"))
    with pytest.raises(StoreError, match="add it first with add_domain"):
        store.set_user(User(sip_uri="sip:eve@fabrikam.com"))
    with pytest.raises(StoreError, match="does not exist"):
        store.set_user(User(sip_uri="sip:bob@contoso.com", hybrid_pstn_site="Nowhere"))
    store.remove_user("sip:alice@contoso.com")
    assert store.get_user("sip:alice@contoso.com") is None
    assert store.user_by_number("+46899") is None
    assert store.changes_since(store.version - 1)[0].value is None
    store.remove_user("sip:alice@contoso.com")  # absent: nothing happens


def test_sites(store: TenantStore) -> None:
    site = store.new_site(Site(name="Amsterdam", edge_fqdn="ap.contoso.com", country_code="31"))
    assert store.get_site("Amsterdam") == site
    with pytest.raises(StoreError, match="set_site"):
        store.new_site(site)
    store.set_site(site.model_copy(update={"description": "AMS"}))
    assert [s.description for s in store.sites()] == ["AMS"]
    store.set_user(_alice(hybrid_pstn_site="Amsterdam"))
    with pytest.raises(StoreError, match="move them to another site first"):
        store.remove_site("Amsterdam")
    store.set_user(_alice())
    store.remove_site("Amsterdam")
    assert store.get_site("Amsterdam") is None


def test_tenant_configuration(store: TenantStore) -> None:
    cfg = HybridConfig(
        hybrid_config_service_internal_url="https://hv.contoso.com/hybridconfig/x.svc",
        peer_destination="pool.contoso.com",
    )
    assert store.set_hybrid_config(cfg) == store.hybrid_config() == cfg
    net = NetworkConfig(media_bypass_enabled=True, internal_subnets=("10.0.0.0/8",))
    store.set_network_config(net)
    assert store.network_config() == net
    kinds = [(c.kind, c.key) for c in store.changes_since(1)]
    assert kinds == [("hybrid_config", "global"), ("network_config", "global")]
    version = store.version
    store.set_network_config(net)
    assert store.version == version


def test_dialplan(store: TenantStore) -> None:
    store.set_dialplan_rule(DialPlanRule(name="b", pattern=".*", translation="+1", priority=5))
    store.set_dialplan_rule(DialPlanRule(name="a", pattern="0(.*)", translation="+46$1"))
    store.set_dialplan_rule(DialPlanRule(name="c", pattern="1", translation="+1", priority=0))
    assert [r.name for r in store.dialplan()] == ["a", "c", "b"]
    store.remove_dialplan_rule("a")
    assert [r.name for r in store.dialplan()] == ["c", "b"]
    assert store.changes_since(store.version - 1)[0] == Change(store.version, "dialplan", "a", None)


def test_first_appliance_creates_site(store: TenantStore) -> None:
    version = store.version
    app = store.register_appliance(_appliance(), now=1000.0)
    assert app.registered_at == app.last_heartbeat == 1000.0
    assert store.get_site("Amsterdam") == Site(name="Amsterdam", edge_fqdn="ap.contoso.com")
    changes = store.changes_since(version)
    assert [(c.version, c.kind, c.key) for c in changes] == [
        (version + 1, "site", "Amsterdam"),
        (version + 2, "appliance", "ams-1"),
    ]
    store.register_appliance(_appliance("ams-2"), now=1001.0)
    assert [a.name for a in store.appliances("Amsterdam")] == ["ams-1", "ams-2"]
    assert store.appliances("Seattle") == []
    with pytest.raises(StoreError, match="shares the site's edge pool FQDN"):
        store.register_appliance(_appliance("ams-3", edge_fqdn="other.contoso.com"), now=1.0)
    with pytest.raises(StoreError, match="unregister it"):
        store.register_appliance(_appliance("ams-1", site="Seattle"), now=1.0)
    with pytest.raises(StoreError, match="unregister them first"):
        store.remove_site("Amsterdam")
    store.remove_appliance("ams-1")
    store.remove_appliance("ams-2")
    assert store.get_appliance("ams-1") is None
    store.remove_site("Amsterdam")


def test_heartbeats_are_throttled(store: TenantStore) -> None:
    store.register_appliance(_appliance(), now=1000.0)
    version = store.version
    beat = store.heartbeat("ams-1", "online", now=1010.0)
    assert beat.last_heartbeat == 1010.0
    assert store.get_appliance("ams-1") == beat  # the cache is current ...
    assert store.version == version  # ... but nothing was written
    store.heartbeat("ams-1", "online", now=1000.0 + HEARTBEAT_PUBLISH_INTERVAL)
    assert store.version == version + 1
    store.heartbeat("ams-1", "online", now=1031.0, version="1.1")  # a new version: written
    assert store.version == version + 2
    store.heartbeat("ams-1", "maintenance", now=1032.0)  # a new status: written
    last = store.changes_since(store.version - 1)[0]
    assert last.value is not None and last.value["status"] == "maintenance"
    assert last.value["version"] == "1.1"
    assert store.routable_appliances("Amsterdam") == []
    with pytest.raises(StoreError, match="not registered"):
        store.heartbeat("nope", "online", now=1.0)
    with pytest.raises(StoreError, match="must be one of"):
        store.heartbeat("ams-1", "sleeping", now=1.0)


def test_mark_offline(store: TenantStore) -> None:
    store.register_appliance(_appliance("ams-1"), now=1000.0)
    store.register_appliance(_appliance("ams-2"), now=1000.0)
    store.heartbeat("ams-2", "online", now=1170.0)
    assert store.mark_offline(now=1200.0, timeout=180.0) == ["ams-1"]
    assert store.get_appliance("ams-1").status == "offline"  # type: ignore[union-attr]
    assert [a.name for a in store.routable_appliances("Amsterdam")] == ["ams-2"]
    version = store.version
    assert store.mark_offline(now=1200.0, timeout=180.0) == []  # not repeated
    assert store.version == version
    store.heartbeat("ams-1", "online", now=1201.0)
    assert [a.name for a in store.routable_appliances("Amsterdam")] == ["ams-1", "ams-2"]


def test_durable_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "tenant.db"
    s = TenantStore(path, tenant="contoso")
    s.add_domain("contoso.com")
    s.new_site(Site(name="Amsterdam", edge_fqdn="ap.contoso.com"))
    s.set_user(_alice(hybrid_pstn_site="Amsterdam").with_password("pw", REALM))
    s.register_appliance(_appliance(), now=5.0)
    s.heartbeat("ams-1", "online", now=10.0)  # cache-only heartbeat
    s.set_dialplan_rule(DialPlanRule(name="a", pattern="0(.*)", translation="+46$1"))
    s.set_network_config(NetworkConfig(media_bypass_enabled=True))
    version, snapshot = s.version, s.snapshot()
    users, feed = s.users(), s.changes_since(0)
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.add_domain("x.com")
    again = TenantStore(path, tenant="contoso")
    assert again.version == version
    assert again.users() == users and users[0].ha1_md5 is not None
    assert again.user_by_number("+46812345678") == users[0]
    assert again.snapshot() == snapshot
    assert again.changes_since(0) == feed
    assert again.network_config().media_bypass_enabled
    assert again.get_appliance("ams-1").last_heartbeat == 5.0  # type: ignore[union-attr]
    again.add_domain("fabrikam.com")
    assert again.version == version + 1
    again.close()
    with pytest.raises(StoreError, match="tenant='contoso'"):
        TenantStore(path, tenant="fabrikam")


def test_changes_since_limit_and_snapshot(store: TenantStore) -> None:
    for i in range(5):
        store.add_domain(f"d{i}.com")
    assert [c.version for c in store.changes_since(2, limit=2)] == [3, 4]
    assert store.changes_since(store.version) == []
    store.remove_domain("d0.com")
    store.set_user(_alice().with_password("pw", REALM))
    version, rows = store.snapshot()
    assert version == store.version
    assert {(c.kind, c.key) for c in rows} == {
        ("domain", d) for d in ("contoso.com", "d1.com", "d2.com", "d3.com", "d4.com")
    } | {("user", "sip:alice@contoso.com")}
    assert all(c.value is not None for c in rows)
    user_row = next(c for c in rows if c.kind == "user")
    assert user_row.value is not None and "ha1_sha256" not in user_row.value
    assert [c.version for c in rows] == sorted(c.version for c in rows)


def test_subscribe(store: TenantStore) -> None:
    seen: list[Change] = []

    def broken(change: Change) -> None:
        raise RuntimeError("subscriber bug")

    store.subscribe(broken)  # its failure neither stops the write nor other subscribers
    unsubscribe = store.subscribe(seen.append)
    store.register_appliance(_appliance(), now=1.0)
    assert [c.kind for c in seen] == ["site", "appliance"]
    unsubscribe()
    store.add_domain("fabrikam.com")
    assert len(seen) == 2
    assert store.get_appliance("ams-1") is not None


def test_wait_for_change(store: TenantStore) -> None:
    async def main() -> None:
        assert await store.wait_for_change(0, timeout=0.0)  # already past
        assert not await store.wait_for_change(store.version, timeout=0.01)
        version = store.version
        waiter = asyncio.create_task(store.wait_for_change(version, timeout=10.0))
        await asyncio.sleep(0)
        assert not waiter.done()
        store.add_domain("fabrikam.com")
        assert await waiter
        # a write from another thread wakes the waiter through its loop
        version = store.version
        waiter = asyncio.create_task(store.wait_for_change(version, timeout=10.0))
        await asyncio.sleep(0)
        thread = threading.Thread(target=store.add_domain, args=("example.net",))
        thread.start()
        assert await waiter
        thread.join()
        assert len(store._waiters) == 0

    asyncio.run(main())


def test_unopenable_path_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="check that the directory exists"):
        TenantStore(tmp_path / "missing" / "tenant.db")


# --- the feed and the snapshot describe the same state ------------------------------------------

_ops = st.lists(
    st.tuples(
        st.sampled_from(["set", "remove", "rule", "unrule"]),
        st.sampled_from(["alice", "bob", "carol"]),
        st.none() | st.sampled_from(["+46811", "+46822", "+46833"]),
        st.integers(0, 3),
    ),
    max_size=25,
)


def _apply(state: dict[tuple[str, str], object], change: Change) -> None:
    if change.value is None:
        state.pop((change.kind, change.key), None)
    else:
        state[(change.kind, change.key)] = dict(change.value)


@settings(max_examples=60, deadline=None)
@given(_ops)
def test_feed_and_snapshot_agree(ops: list[tuple[str, str, str | None, int]]) -> None:
    s = TenantStore()
    s.add_domain("contoso.com")
    for op, name, number, priority in ops:
        uri = f"sip:{name}@contoso.com"
        if op == "set":
            owner = None if number is None else s.user_by_number(number)
            if owner is not None and owner.sip_uri != uri:
                with pytest.raises(StoreError):
                    s.set_user(User(sip_uri=uri, line_uri=f"tel:{number}"))
                continue
            line = None if number is None else f"tel:{number}"
            s.set_user(User(sip_uri=uri, line_uri=line).with_password(name, REALM))
        elif op == "remove":
            s.remove_user(uri)
        elif op == "rule":
            s.set_dialplan_rule(
                DialPlanRule(name=name, pattern=".*", translation="+1", priority=priority)
            )
        else:
            s.remove_dialplan_rule(name)
    from_feed: dict[tuple[str, str], object] = {}
    for change in s.changes_since(0, limit=10_000):
        _apply(from_feed, change)
    version, rows = s.snapshot()
    from_snapshot: dict[tuple[str, str], object] = {}
    for change in rows:
        _apply(from_snapshot, change)
    assert version == s.version
    assert from_feed == from_snapshot
    assert {k for k in from_feed if k[0] == "user"} == {("user", u.sip_uri) for u in s.users()}
    for user in s.users():
        assert User.model_validate(from_feed[("user", user.sip_uri)]) == user.without_password()
        if user.e164 is not None:
            assert s.user_by_number(user.e164) == user
    assert {r.name for r in s.dialplan()} == {k[1] for k in from_feed if k[0] == "dialplan"}
