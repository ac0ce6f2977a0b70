"""The site CMS on a store (SQLite backend here; etcd in tests/store/test_site_etcd_live.py):
the join secret and the CA sealed with it, making and joining a site, and the appliance's site
replica fed by a watch (snapshot, events, compaction, a restart resuming where it was)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest
from chain_harness import settings_on_free_ports

from hybridvoice.cms.replica import LocalStore, ReplicaError
from hybridvoice.cms.site_records import SITE_KINDS, SiteChange, SiteReplica, encode, record_key
from hybridvoice.cms.site_secret import (
    JoinTokenError,
    SiteKey,
    WrongTokenError,
    new_join_token,
    parse_join_token,
)
from hybridvoice.cms.template import render_settings
from hybridvoice.mgmt.appliance_site import gateways_from_replica, with_gateway
from hybridvoice.mgmt.site_join import create_site, join_site
from hybridvoice.pki import PkiStore
from hybridvoice.store.follow import follow
from hybridvoice.store.sqlite_kv import SqliteStore


def test_sealed_records_open_with_the_site_key_only() -> None:
    site, secret = parse_join_token(new_join_token("Amsterdam"))
    assert site == "Amsterdam"
    key = SiteKey.new(secret)
    record = key.join_record()
    sealed = key.seal("ca.pem", b"the CA key")
    again = SiteKey.from_join_record(secret, record)
    assert again.open("ca.pem", sealed) == b"the CA key"
    other = parse_join_token(new_join_token("Amsterdam"))[1]
    with pytest.raises(WrongTokenError, match="join secret"):
        SiteKey.from_join_record(other, record)
    with pytest.raises(WrongTokenError, match="ca/other"):  # a ciphertext moved to another record
        again.open("other", sealed)


@pytest.mark.parametrize(
    ("token", "why"),
    [("no-colon", "expected <site>:<secret>"), (":abc", "expected"), ("S:!!!", "base64url"),
     ("S:YWJj", "3 bytes, 32 expected")],
)  # fmt: skip
def test_malformed_tokens_are_named(token: str, why: str) -> None:
    with pytest.raises(JoinTokenError, match="--token") as err:
        parse_join_token(token)
    assert why in str(err.value)


def test_make_and_join_a_site(tmp_path: Path) -> None:
    settings = settings_on_free_ports()

    async def main() -> None:
        store = SqliteStore(tmp_path / "site.db")
        pki = PkiStore(tmp_path / "founder")
        token = await create_site(store, settings, render_settings(settings), pki)
        with pytest.raises(ValueError, match="exists"):
            await create_site(store, settings, render_settings(settings), pki)
        joined = await join_site(store, token)
        assert joined.ca_pem == pki.ca_path.read_bytes()
        # the store holds ciphertext: no record holds the CA's key
        key_lines = pki.ca_path.read_bytes().split(b"-----END")[0].splitlines()[1:3]
        every = await store.range("hv/")
        assert not any(line in kv.value for kv in every.kvs for line in key_lines)
        site = settings.common.site_name
        with pytest.raises(WrongTokenError, match="join secret"):
            await join_site(store, new_join_token(site))
        with pytest.raises(ValueError, match="no site 'Elsewhere'"):
            await join_site(store, new_join_token("Elsewhere"))
        await store.close()

    asyncio.run(main())


async def _until(check: object, limit: float = 30.0) -> None:
    give_up = time.monotonic() + limit
    while not (callable(check) and check()):
        assert time.monotonic() < give_up, "timed out"
        await asyncio.sleep(0.01)


def test_site_replica_follows_snapshot_events_compaction_and_restart(tmp_path: Path) -> None:
    site = "Lab"

    async def main() -> None:
        store = SqliteStore(tmp_path / "site.db")
        gw = record_key(site, "gateway", "gw1")
        await store.put(gw, encode({"FQDN": "gw1.example", "Port": 5067}))
        replica_db = tmp_path / "replica.db"
        local = LocalStore(replica_db, kinds=SITE_KINDS, change=SiteChange)
        seen: list[str] = []
        local.subscribe(lambda changes: seen.extend(f"{c.kind}/{c.key}" for c in changes))
        mirror = SiteReplica(site, local)
        task = asyncio.create_task(follow(store, mirror))
        await _until(lambda: local.get("gateway", "gw1") is not None)
        await store.put(record_key(site, "gateway", "gw2"), encode({"Port": 5080}))
        await store.put("hv/s/Lab/alive/x", b"not a record kind of the replica")
        await store.put(record_key(site, "gateway", "bad"), b"not json")
        await _until(lambda: local.get("gateway", "gw2") == {"Port": 5080})
        await _until(lambda: len(mirror.skipped) == 2)
        assert "not JSON" in mirror.skipped[1]
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        local.close()
        # restarted: resumes from the revision applied; the history meanwhile is compacted
        await store.delete(record_key(site, "gateway", "gw2"))
        await store.compact(await store.revision())
        again = LocalStore(replica_db, kinds=SITE_KINDS, change=SiteChange)
        assert again.get("gateway", "gw2") == {"Port": 5080}  # what it knew, before any watch
        mirror = SiteReplica(site, again)
        task = asyncio.create_task(follow(store, mirror))
        await _until(lambda: again.get("gateway", "gw2") is None)
        assert mirror.reloads == 1 and again.get("gateway", "gw1") is not None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        again.close()
        await store.close()
        assert "gateway/gw1" in seen and "gateway/gw2" in seen

    asyncio.run(main())


def test_gateway_records_become_settings() -> None:
    settings = settings_on_free_ports()
    name = settings.gateways[0].name
    local = LocalStore(kinds=SITE_KINDS, change=SiteChange)
    assert gateways_from_replica(settings, local) is settings  # no records: the file's
    local.apply([SiteChange(5, "gateway", "gw9", {"FQDN": "gw9.example", "Port": 5090})])
    taken = gateways_from_replica(settings, local)
    assert [g.name for g in taken.gateways] == ["gw9"]
    changed = with_gateway(settings, name, {"FQDN": "new.example", "Port": 6000})
    assert changed.gateway(name).port == 6000
    with pytest.raises(ValueError, match=f"gateway/{name}"):
        with_gateway(settings, name, {"FQDN": "x.example", "Port": 70000})
    with pytest.raises(ReplicaError, match="unknown kind 'user'"):
        local.apply([SiteChange(6, "gateway", "x", {}), *_user_change()])


def _user_change() -> list[SiteChange]:
    change = object.__new__(SiteChange)  # a record of a kind the site replica does not hold
    for field, value in (("version", 7), ("kind", "user"), ("key", "u"), ("value", {})):
        object.__setattr__(change, field, value)
    return [change]
