"""Settings pushed from the cloud, kept in the site store too (``pushed/<kind>:<key>``).

Every appliance of a site replicates the tenant settings from the online service
(:mod:`hybridvoice.cms.replicator`). Each also writes what its tenant replica takes into the
site store, as ``pushed/`` records carrying the feed version (compare-and-swap: the first
appliance to push a version wins, the others find it there; an older version never replaces a
newer one). A new appliance whose tenant replica is empty (just joined, the cloud not reached
yet) loads them as its first snapshot: it routes calls on the site's last known tenant settings
before its own replicator has reached the cloud, which then continues from that version.
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

    __slots__ = ("_queue", "_task", "_unsubscribe", "pushed", "seeded", "site", "tenant")

    def __init__(self, site: SiteLink, tenant: LocalStore) -> None:
        self.site, self.tenant = site, tenant
        self._queue: asyncio.Queue[Change] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe = tenant.subscribe(self._taken)
        self.pushed = 0
        #: the feed version a snapshot from the site store gave the tenant replica (0: none)
        self.seeded = 0

    def start(self) -> None:
        """Push what the tenant replica holds now (then every change it takes)."""
        if self.tenant.version:
            for kind in sorted(self.tenant.kinds):
                for key, value in self.tenant.all(kind).items():
                    self._queue.put_nowait(Change(self.tenant.version, kind, key, value))
        self._task = asyncio.create_task(self._push(), name="site-pushed")

    def _taken(self, changes: list[Change]) -> None:
        for change in changes:
            self._queue.put_nowait(change)

    async def _push(self) -> None:
        while True:
            change = await self._queue.get()
            try:
                if await self.site.put_newer("pushed", pushed_name(change),
                                             pushed_record(change)):  # fmt: skip
                    self.pushed += 1
            except (SiteUnavailableError, StoreError) as exc:  # the next change pushes again
                _log.info("pushed setting %s not written: %s", pushed_name(change), exc)

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
