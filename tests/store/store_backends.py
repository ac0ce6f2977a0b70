"""The store suite's backends: SQLite (a fake lease clock) and a real 3-member etcd cluster
started once per module (each test under its own key prefix); the fixtures are in conftest.py.
Imported by name, never as ``conftest`` (with several conftest.py files in one run, that name
is whichever was imported last)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from etcd_cluster import EtcdCluster

from hybridvoice.store.etcd_kv import EtcdStore
from hybridvoice.store.kv import KeyValueStore
from hybridvoice.store.sqlite_kv import SqliteStore

__all__ = ["Backend"]

_prefixes = itertools.count()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Backend:
    """One backend for one test: ``run`` opens a store in a fresh loop and closes it after."""

    def __init__(self, name: str, tmp: Path, cluster: EtcdCluster | None) -> None:
        self.name = name
        self.tmp = tmp
        self.cluster = cluster
        self.clock = FakeClock()
        self.prefix = f"t{next(_prefixes)}-{time.time_ns()}/"

    def open(self) -> KeyValueStore:
        if self.cluster is not None:
            return EtcdStore(self.cluster.endpoints)
        return SqliteStore(self.tmp / "store.db", clock=self.clock)

    def run(self, body: Callable[[KeyValueStore], Awaitable[None]]) -> None:
        async def main() -> None:
            store = self.open()
            try:
                await asyncio.wait_for(body(store), 240)
            finally:
                await store.close()

        asyncio.run(main())

    async def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass for leases: the fake clock jumps, etcd's real one is waited."""
        if self.cluster is None:
            self.clock.now += seconds
        else:
            await asyncio.sleep(seconds)

    async def eventually(self, check: Callable[[], Awaitable[bool]], limit: float = 60.0) -> None:
        """``check`` becomes true: at once on SQLite, within ``limit`` seconds on etcd (its
        lessor looks at deadlines every half second, its leader may be slow)."""
        give_up = time.monotonic() + limit
        while not await check():
            assert self.cluster is not None and time.monotonic() < give_up, "never happened"
            await asyncio.sleep(0.25)
