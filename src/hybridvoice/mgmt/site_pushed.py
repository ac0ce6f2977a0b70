"""Settings pushed from the cloud, kept in the site store too (``pushed/<kind>:<key>``).

Every appliance of a site replicates the tenant settings from the online service
(:mod:`hybridvoice.cms.replicator`). Each also writes what its tenant replica takes into the
site store, as ``pushed/`` records carrying the feed version (compare-and-swap: the first
appliance to push a version wins, the others find it there; an older version never replaces a
newer one). A new appliance whose tenant replica is empty (just joined, the cloud not reached
yet) loads them as its first snapshot: it routes calls on the site's last known tenant settings
before its own replicator has reached the cloud, which then continues from that version.

A push the site store cannot take (etcd without quorum, or down) is kept, the newest change
per record, and tried again with back-off (1 s doubling to 30 s) until it is written: the
cloud's changes made while the site's etcd was away reach the site store when it is back,
not only when the same record changes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from hybridvoice.cms.changes import Change
from hybridvoice.cms.replica import LocalStore
from hybridvoice.cms.site_records import pushed_name, pushed_record, pushed_snapshot
from hybridvoice.store.kv import StoreError

from .site_link import SiteLink, SiteUnavailableError

__all__ = ["PushedSettings"]

_log = logging.getLogger(__name__)


class PushedSettings:
    """Pushes the tenant replica's changes into the site store; seeds an empty replica."""

    __slots__ = ("_pending", "_task", "_unsubscribe", "_wake", "pushed", "retry_max", "seeded",
                 "site", "tenant")  # fmt: skip

    def __init__(self, site: SiteLink, tenant: LocalStore, retry_max: float = 30.0) -> None:
        self.site, self.tenant = site, tenant
        #: record name -> the newest change not written yet (kept across failed pushes)
        self._pending: dict[str, Change] = {}
        self._wake = asyncio.Event()
        #: the longest wait between two tries while the site store refuses
        self.retry_max = retry_max
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe = tenant.subscribe(self._taken)
        self.pushed = 0
        #: the feed version a snapshot from the site store gave the tenant replica (0: none)
        self.seeded = 0

    def start(self) -> None:
        """Push what the tenant replica holds now (then every change it takes)."""
        if self.tenant.version:
            self._taken(
                [
                    Change(self.tenant.version, kind, key, value)
                    for kind in sorted(self.tenant.kinds)
                    for key, value in self.tenant.all(kind).items()
                ]
            )
        self._task = asyncio.create_task(self._push(), name="site-pushed")

    @property
    def waiting(self) -> int:
        """Records not written to the site store yet."""
        return len(self._pending)

    def _taken(self, changes: list[Change]) -> None:
        for change in changes:
            name = pushed_name(change)
            held = self._pending.get(name)
            if held is None or held.version <= change.version:
                self._pending[name] = change
        if changes:
            self._wake.set()

    async def _push(self) -> None:
        delay = 1.0
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                name, change = next(iter(self._pending.items()))
                try:
                    if await self.site.put_newer("pushed", name, pushed_record(change)):
                        self.pushed += 1
                except (SiteUnavailableError, StoreError) as exc:  # kept: tried again
                    _log.info("pushed setting %s not written (%d waiting, again in %.0f s): "
                              "%s", name, len(self._pending), delay, exc)  # fmt: skip
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.retry_max)
                    continue
                delay = 1.0
                if self._pending.get(name) is change:  # not replaced meanwhile
                    del self._pending[name]

    def seed(self, site_replica: LocalStore) -> None:
        """An empty tenant replica takes the site store's ``pushed/`` records as its first
        snapshot (called when they arrive through the site watch)."""
        if self.tenant.version:
            return
        version, rows = pushed_snapshot(site_replica.all("pushed"))
        if version:
            self.tenant.load_snapshot(version, rows)
            self.seeded = version
            _log.info("tenant settings from the site store (version %d) until the cloud "
                      "answers", version)  # fmt: skip

    async def stop(self) -> None:
        self._unsubscribe()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def pushed_kinds(changes: Sequence[Change]) -> bool:
    """Whether site changes include ``pushed/`` records."""
    return any(c.kind == "pushed" for c in changes)
