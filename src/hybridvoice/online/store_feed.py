"""The tenant store's change feed: one SQLite transaction per write, versions, subscribers.

Every write (:meth:`ChangeFeed._write`) updates the rows and appends its changes with the next
versions in one transaction (see :mod:`hybridvoice.online.store` and, for the vocabulary,
:mod:`hybridvoice.cms.changes`); then the caches are updated (:meth:`ChangeFeed._cache`, the
store's), subscribers are told and waiters of :meth:`ChangeFeed.wait_for_change` are woken
through :mod:`.changes_wait`, the adapter that knows the loop.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel

from hybridvoice.cms.changes import Change

from .changes_wait import ChangeWaiters
from .models import User, replicated

__all__ = ["ChangeFeed", "StoreError"]

_log = logging.getLogger("hybridvoice.online.store")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rows (
    kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE TABLE IF NOT EXISTS changes (
    version INTEGER PRIMARY KEY, kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT
);
"""


class StoreError(ValueError):
    """A write the tenant's data does not allow; the message says what to do instead."""


# one row write: (kind, key, stored model or None to delete)
_Op = tuple[str, str, BaseModel | None]


class ChangeFeed:
    """The versioned rows and their change feed; the store adds its caches (:meth:`_cache`)."""

    _lock: threading.RLock
    _db: sqlite3.Connection | None
    _version: int
    _subscribers: list[Callable[[Change], None]]
    _waiters: ChangeWaiters

    if TYPE_CHECKING:  # the class this is mixed into defines it

        def _cache(self, kind: str, key: str, model: BaseModel | None) -> None: ...

    # --- the feed --------------------------------------------------------------------------------

    @property
    def version(self) -> int:
        """The version of the last change, 0 for an empty store."""
        return self._version

    def changes_since(self, version: int, limit: int = 1000) -> list[Change]:
        """Changes with a version above `version`, oldest first, at most `limit`."""
        with self._lock:
            if version >= self._version or limit <= 0:
                return []
            rows = self._conn().execute(
                "SELECT version, kind, key, value FROM changes WHERE version > ? "
                "ORDER BY version LIMIT ?",
                (version, limit),
            )
            return [
                Change(v, k, key, None if j is None else json.loads(j)) for v, k, key, j in rows
            ]

    async def wait_for_change(self, version: int, timeout: float) -> bool:
        """True once :attr:`version` exceeds `version` (at once if it already does), False when
        `timeout` seconds pass first (on the running loop: :mod:`.changes_wait`)."""
        return await self._waiters.wait(lambda: self._version > version, timeout)

    def subscribe(self, callback: Callable[[Change], None]) -> Callable[[], None]:
        """Call `callback` with each change after it is committed; returns the unsubscriber.

        Callbacks run in the writer's thread; one that raises is logged and skipped.
        """
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def snapshot(self) -> tuple[int, list[Change]]:
        """(version, every live row as a Change at the version that last wrote it), for a
        fresh replica that then follows :meth:`changes_since` from that version."""
        with self._lock:
            rows = self._conn().execute(
                "SELECT version, kind, key, value FROM rows ORDER BY version"
            )
            out = [Change(v, k, key, _replicated_value(k, json.loads(j))) for v, k, key, j in rows]
            return self._version, out

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # --- internals -------------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("the tenant store is closed: open a new TenantStore")
        return self._db

    def _write(self, ops: Iterable[_Op]) -> list[Change]:
        """Apply `ops` in one transaction, each with the next version; then update the caches,
        tell subscribers and wake waiters."""
        with self._lock:
            db = self._conn()
            version = self._version
            changes: list[Change] = []
            db.execute("BEGIN IMMEDIATE")
            try:
                for kind, key, model in ops:
                    version += 1
                    if model is None:
                        db.execute("DELETE FROM rows WHERE kind = ? AND key = ?", (kind, key))
                        value = None
                    else:
                        stored = model.model_dump_json()
                        db.execute(
                            "INSERT OR REPLACE INTO rows VALUES (?, ?, ?, ?)",
                            (kind, key, stored, version),
                        )
                        value = replicated(model)
                    db.execute(
                        "INSERT INTO changes VALUES (?, ?, ?, ?)",
                        (version, kind, key, None if value is None else json.dumps(value)),
                    )
                    changes.append(Change(version, kind, key, value))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            for kind, key, model in ops:
                self._cache(kind, key, model)
            self._version = version
            subscribers = list(self._subscribers)
            waiters = self._waiters.take()
        waiters.wake()
        for change in changes:
            for callback in subscribers:
                try:
                    callback(change)
                except Exception:
                    _log.exception("change subscriber %r failed on %s", callback, change)
        return changes


def _replicated_value(kind: str, stored: dict[str, Any]) -> dict[str, Any]:
    if kind == "user":
        return replicated(User.model_validate(stored))
    return stored
