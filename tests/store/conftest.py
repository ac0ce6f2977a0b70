"""The store suite runs every test on both backends (:mod:`store_backends`): SQLite and a
real 3-member etcd cluster started once per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from etcd_cluster import EtcdCluster, running_cluster
from store_backends import Backend


@pytest.fixture(scope="module")
def etcd_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    with running_cluster(tmp_path_factory.mktemp("etcd")) as cluster:
        yield cluster


#: etcd is a real program with real-time leases and elections: the interop phase
#: (docs/dev/TESTING.md), its tests on one worker so that one cluster per module serves them
_ETCD = pytest.param("etcd", marks=(pytest.mark.interop, pytest.mark.xdist_group("etcd")))


@pytest.fixture(params=["sqlite", _ETCD])
def kv(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    cluster = request.getfixturevalue("etcd_cluster") if request.param == "etcd" else None
    return Backend(request.param, tmp_path, cluster)
