"""An appliance's link to its site store (etcd): the watch that feeds its site replica, and
the writes an admin makes through it (docs/fleet.md, "The site CMS on etcd").

``<state dir>/site.json`` names the site and its etcd members (``appliance join`` writes it);
without it the appliance is a one-appliance site and keeps its gateways in its state directory
as before. :class:`SiteLink` runs :func:`hybridvoice.store.follow.follow` over
``site_prefix(site)`` into a :class:`~hybridvoice.cms.site_records.SiteReplica`: catch-up from
the revision applied, a snapshot after compaction, retries with back-off while etcd is
unreachable, the replica answering meanwhile. "Publish" is this watch: a record written by any
appliance reaches every appliance's replica, the writer's own included, the same way.

A write while the store cannot commit (no quorum, all members down) is refused with
:class:`SiteUnavailableError`; calls go on with the settings the replica holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hybridvoice.cms.site_records import SiteReplica, decode, encode, record_key
from hybridvoice.store.follow import follow
from hybridvoice.store.kv import Event, KeyValueStore, StoreError, StoreUnavailableError

__all__ = ["SITE_FILE", "SiteConfig", "SiteLink", "SiteUnavailableError", "open_site_store"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

SITE_FILE = "site.json"
"""In the state directory: the site's name and etcd members (``appliance join`` writes it)."""


class SiteUnavailableError(RuntimeError):
    """The site store cannot take a write now: the admin's change is refused, not queued."""


@dataclass(frozen=True, slots=True)
class SiteConfig:
    site: str
    etcd: tuple[str, ...]

    @classmethod
    def load(cls, state_dir: Path | None) -> SiteConfig | None:
        """``<state_dir>/site.json``, or None without one; ValueError naming the file and
        the key when it is not what ``appliance join`` writes."""
        if state_dir is None or not (path := state_dir / SITE_FILE).exists():
            return None
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read: {exc}") from None
        site, members = data.get("site"), data.get("etcd")
        if not isinstance(site, str) or not site:
            raise ValueError(f"{path}: 'site' must be the site's name")
        if (
            not isinstance(members, list)
            or not members
            or not all(isinstance(m, str) and m for m in members)
        ):
            raise ValueError(f"{path}: 'etcd' must list the members as host:port")
        return cls(site, tuple(members))

    def save(self, state_dir: Path) -> Path:
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / SITE_FILE
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"site": self.site, "etcd": list(self.etcd)}, indent=2))
        os.replace(temporary, path)
        return path


def open_site_store(members: Sequence[str], timeout: float = 5.0) -> KeyValueStore:
    """The etcd client of the site (``pip install 'hybridvoice[etcd]'``); StoreError naming
    the member when an address is not host:port."""
    try:
        from hybridvoice.store.etcd_kv import EtcdStore  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        raise StoreError(f"etcd client missing ({exc}): pip install 'hybridvoice[etcd]'") from None
    return EtcdStore(list(members), timeout=timeout)


class SiteLink:
    """The appliance's watch of its site and its writes to it."""

    __slots__ = ("_changed", "_task", "config", "patience", "replica", "store", "writes")

    def __init__(
        self,
        config: SiteConfig,
        store: KeyValueStore,
        replica: SiteReplica,
        changed: Callable[[Event], None] | None = None,
        patience: float = 10.0,
    ) -> None:
        self.config, self.store, self.replica = config, store, replica
        #: seconds a write is tried again while the store cannot commit (an etcd election
        #: takes a few election timeouts) before the admin's change is refused
        self.patience = patience
        self._changed = changed
        self._task: asyncio.Task[None] | None = None
        self.writes = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow(), name=f"site-watch-{self.config.site}")

    async def _follow(self) -> None:
        await follow(self.store, self.replica, changed=self._changed, retry=0.5, cap=5.0)

    async def put(self, kind: str, name: str, value: Mapping[str, Any]) -> int:
        """Write one record; its revision. While the store cannot commit (an election after a
        member was lost, or no quorum) the write is tried again for :attr:`patience` seconds
        (a put of a whole record is idempotent: sent twice, it holds the same value), then
        :class:`SiteUnavailableError`: the change is refused, nothing is queued."""
        key, data = record_key(self.config.site, kind, name), encode(value)
        revision = await self._patiently(lambda: self.store.put(key, data), f"the change to "
                                         f"{kind} {name}")  # fmt: skip
        self.writes += 1
        return revision

    async def put_newer(self, kind: str, name: str, value: Mapping[str, Any]) -> bool:
        """Write a record carrying a ``version`` unless the store holds that version or a newer
        one (every appliance of the site pushes the same settings: the first wins, the others
        find it there); compare-and-swap, so an older write never replaces a newer one."""
        key, data = record_key(self.config.site, kind, name), encode(value)
        while True:
            found = await self.store.get(key)
            if found is not None:
                with contextlib.suppress(ValueError, TypeError):  # not ours: replaced
                    if int(decode(key, found.value).get("version", 0)) >= int(value["version"]):
                        return False
            held = await self.store.put_if(key, data, mod_revision=found.mod_revision if found
                                           else 0)  # fmt: skip
            if held.succeeded:
                self.writes += 1
                return True

    async def delete(self, kind: str, name: str) -> int | None:
        key = record_key(self.config.site, kind, name)
        return await self._patiently(lambda: self.store.delete(key), f"deleting {kind} {name}")

    async def _patiently(self, write: Callable[[], Awaitable[_T]], what: str) -> _T:
        loop = asyncio.get_running_loop()
        end, delay = loop.time() + self.patience, 0.25
        while True:
            try:
                return await write()
            except StoreUnavailableError as exc:
                if loop.time() + delay > end:
                    raise SiteUnavailableError(
                        f"site store (etcd {', '.join(self.config.etcd)}) cannot take {what} "
                        f"(tried for {self.patience:g} s): {exc}; nothing was changed, calls go "
                        "on with the settings every appliance holds; try again when etcd has "
                        "quorum"
                    ) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def applied(self, revision: int, timeout: float = 10.0) -> bool:
        """Until the replica holds ``revision`` (the watch delivered it); False on timeout."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self.replica.revision < revision:
            if loop.time() >= end:
                return False
            await asyncio.sleep(0.01)
        return True

    def status(self) -> dict[str, Any]:
        return {
            "site": self.config.site,
            "etcd": list(self.config.etcd),
            "revision": self.replica.revision,
            "reloads": self.replica.reloads,
            "skipped": list(self.replica.skipped),
        }

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(StoreError, OSError):
            await self.store.close()
