"""``SiteLink`` writes: tried again while the store cannot commit (an etcd election after a
member was lost answered 503 at once before), refused with a message naming the members and
what to do once its patience is spent; ``site.json`` errors name the file and the key."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from hybridvoice.cms.replica import LocalStore
from hybridvoice.cms.site_records import SITE_KINDS, SiteChange, SiteReplica
from hybridvoice.mgmt.site_link import SiteConfig, SiteLink, SiteUnavailableError
from hybridvoice.store.kv import StoreUnavailableError
from hybridvoice.store.sqlite_kv import SqliteStore


class Flaky(SqliteStore):
    """A store that cannot commit the first ``failures`` writes (no leader yet)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def put(self, key: str, value: bytes, *, lease: int = 0) -> int:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailableError("etcd: no member answered: etcdserver: no leader")
        return await super().put(key, value, lease=lease)


def _link(store: SqliteStore, patience: float) -> SiteLink:
    config = SiteConfig("Lab", ("127.0.0.1:2379",))
    replica = SiteReplica("Lab", LocalStore(kinds=SITE_KINDS, change=SiteChange))
    return SiteLink(config, store, replica, patience=patience)


def test_a_write_rides_out_an_election() -> None:
    store = Flaky(failures=2)
    link = _link(store, patience=30.0)
    revision = asyncio.run(link.put("gateway", "gw1", {"Port": 5060}))
    assert revision > 1 and store.failures == 0 and link.writes == 1


def test_a_write_without_quorum_is_refused_naming_the_members() -> None:
    link = _link(Flaky(failures=1000), patience=1.0)
    with pytest.raises(SiteUnavailableError) as refused:
        asyncio.run(link.put("gateway", "gw1", {"Port": 5060}))
    text = str(refused.value)
    assert "127.0.0.1:2379" in text and "gateway gw1" in text and "no leader" in text
    assert "nothing was changed" in text and link.writes == 0


@pytest.mark.parametrize(
    ("content", "why"),
    [("{", "cannot read"), ('{"etcd": ["a:1"]}', "'site'"), ('{"site": "S", "etcd": []}', "'etcd'"),
     ('{"site": "S", "etcd": [1]}', "'etcd'")],
)  # fmt: skip
def test_site_file_errors_name_the_file_and_key(tmp_path: Path, content: str, why: str) -> None:
    (tmp_path / "site.json").write_text(content)
    with pytest.raises(ValueError, match=r"site\.json") as err:
        SiteConfig.load(tmp_path)
    assert why in str(err.value)


def test_site_file_round_trip(tmp_path: Path) -> None:
    assert SiteConfig.load(tmp_path) is None
    SiteConfig("Lab", ("h1:2379", "h2:2379")).save(tmp_path)
    assert SiteConfig.load(tmp_path) == SiteConfig("Lab", ("h1:2379", "h2:2379"))
    assert json.loads((tmp_path / "site.json").read_text())["site"] == "Lab"
