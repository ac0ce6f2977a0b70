"""An appliance's local replica of the tenant settings (the original's CMS replica).

The online service publishes every write to the tenant's settings as a :class:`Change` with the
next version of the change feed (:mod:`hybridvoice.cms.changes`). :class:`LocalStore` keeps the
rows ``(kind, key) -> JSON object`` those changes describe, and the last version it applied, in
SQLite (a file in WAL mode, or ``":memory:"``), so an appliance restarted while the cloud is
unreachable keeps routing calls on what it last knew. Reads come from an in-memory copy loaded
at open: the call path never waits on the disk.

- :meth:`LocalStore.apply` applies a batch in one transaction. It is idempotent: a change at or
  below the replica's version is skipped (a retried poll may deliver it twice). A gap in the
  versions is accepted, since the feed may compact rows written over several times.
- :meth:`LocalStore.load_snapshot` replaces everything with a full copy (the feed answered
  that the replica's version is too old, or ahead of the cloud's).
- :meth:`LocalStore.subscribe` tells the roles what changed, after the commit, so they can
  switch settings on the fly (the original needed clients to sign out and in again).

Writes are synchronous SQLite transactions on the caller's thread, small enough for the event
loop. ``synchronous=NORMAL`` in WAL mode: a power cut may lose the last transactions but never
mixes versions and rows, and the replicator simply fetches them again.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any

from hybridvoice.cms.changes import KINDS, Change

__all__ = ["LocalStore", "ReplicaError", "ReplicaListener"]

_log = logging.getLogger(__name__)

ReplicaListener = Callable[[list[Change]], None]
"""Called after each commit with the changes it applied (deletions have ``value=None``)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    kind  TEXT NOT NULL,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"""


class ReplicaError(ValueError):
    """The replica cannot take this change or snapshot (not JSON, bad version, closed)."""


def _encode(change: Change) -> str:
    try:
        return json.dumps(dict(change.value or {}), separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ReplicaError(
            f"change {change.version} ({change.kind} {change.key!r}): {exc}"
        ) from exc


class LocalStore:
    """The tenant settings as last replicated from the online service."""

    __slots__ = ("_cache", "_change", "_clock", "_db", "_kinds", "_listeners", "_version", "path",
                 "updated_at")  # fmt: skip

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        clock: Callable[[], float] = time.monotonic,
        kinds: Iterable[str] = KINDS,
        change: type[Change] = Change,
    ):
        """``kinds``: the row kinds it holds (the tenant feed's; a site replica: the site
        CMS's), ``change``: the class of the deletions :meth:`load_snapshot` reports."""
        self.path = str(path)
        self._clock = clock
        self._kinds = frozenset(kinds)
        self._change = change
        self._db: sqlite3.Connection | None = sqlite3.connect(self.path, isolation_level=None)
        db = self._db
        if self.path != ":memory:":
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        row = db.execute("SELECT value FROM meta WHERE name = 'version'").fetchone()
        self._version: int = int(row[0]) if row else 0
        self._cache: dict[str, dict[str, Mapping[str, Any]]] = {k: {} for k in self._kinds}
        for kind, key, value in db.execute("SELECT kind, key, value FROM rows"):
            if kind in self._cache:  # a kind this version no longer knows stays on disk, unread
                self._cache[kind][key] = MappingProxyType(json.loads(value))
        self._listeners: list[ReplicaListener] = []
        self.updated_at: float | None = None
        """Monotonic time of the last apply or snapshot that wrote something (None: none yet)."""

    # -- reads -------------------------------------------------------------------------------

    @property
    def kinds(self) -> frozenset[str]:
        """The row kinds this replica holds."""
        return self._kinds

    @property
    def version(self) -> int:
        """The version of the last change applied (0: nothing yet)."""
        return self._version

    def get(self, kind: str, key: str) -> Mapping[str, Any] | None:
        """The row's value (a read-only view), or None when there is no such row."""
        return self._rows(kind).get(key)

    def all(self, kind: str) -> dict[str, Mapping[str, Any]]:
        """Every row of ``kind``, key -> value (a new dict of read-only views)."""
        return dict(self._rows(kind))

    def _rows(self, kind: str) -> dict[str, Mapping[str, Any]]:
        try:
            return self._cache[kind]
        except KeyError:
            raise ReplicaError(
                f"unknown kind {kind!r}; known: {', '.join(sorted(self._kinds))}"
            ) from None

    # -- writes ------------------------------------------------------------------------------

    def apply(self, changes: Iterable[Change], *, same_version: bool = False) -> int:
        """Apply ``changes`` in version order, in one transaction; return the new version.

        Changes at or below the current version are skipped (``same_version``: below only,
        for a store's watch resumed at the revision last applied, whose events may have been
        cut in the middle: applying one again changes nothing); gaps are accepted.
        """
        fresh: list[Change] = []
        version = self._version
        for change in sorted(changes, key=lambda c: c.version):
            if change.kind not in self._kinds:
                raise ReplicaError(f"change {change.version}: unknown kind {change.kind!r}; "
                                   f"known: {', '.join(sorted(self._kinds))}")  # fmt: skip
            if change.version > version or (same_version and change.version == version):
                fresh.append(change)
                version = change.version
        if not fresh:
            return self._version
        encoded = [None if c.value is None else _encode(c) for c in fresh]
        db = self._conn()
        with _transaction(db):
            for change, text in zip(fresh, encoded, strict=True):
                if text is None:
                    db.execute(
                        "DELETE FROM rows WHERE kind = ? AND key = ?", (change.kind, change.key)
                    )
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO rows (kind, key, value) VALUES (?, ?, ?)",
                        (change.kind, change.key, text),
                    )
            _set_version(db, version)
        for change, text in zip(fresh, encoded, strict=True):
            rows = self._cache[change.kind]
            if text is None:
                rows.pop(change.key, None)
            else:
                rows[change.key] = MappingProxyType(json.loads(text))
        self._committed(version, fresh)
        return version

    def load_snapshot(self, version: int, changes: Iterable[Change]) -> int:
        """Replace every row with ``changes`` (one per live row) and set the version.

        Listeners get the difference to what the replica held: changed and new rows, and a
        deletion for each row the snapshot no longer has.
        """
        if version < 0:
            raise ReplicaError(f"snapshot version must be >= 0, got {version}")
        rows: dict[tuple[str, str], tuple[Change, str]] = {}
        for change in changes:
            if change.value is None:
                continue  # a snapshot lists live rows; a deletion in it means "absent"
            if change.version > version:
                raise ReplicaError(
                    f"snapshot at version {version} holds change {change.version} from the future"
                )
            rows[(change.kind, change.key)] = (change, _encode(change))
        cache: dict[str, dict[str, Mapping[str, Any]]] = {k: {} for k in self._kinds}
        for (kind, key), (_, text) in rows.items():
            if kind not in cache:
                raise ReplicaError(f"snapshot row {kind} {key!r}: unknown kind {kind!r}")
            cache[kind][key] = MappingProxyType(json.loads(text))
        diff = [
            self._change(max(version, 1), kind, key, None)
            for kind, old in self._cache.items()
            for key in old
            if key not in cache[kind]
        ]
        diff.extend(
            change
            for (kind, key), (change, _) in rows.items()
            if self._cache[kind].get(key) != cache[kind][key]
        )
        db = self._conn()
        with _transaction(db):
            db.execute("DELETE FROM rows")
            db.executemany(
                "INSERT INTO rows (kind, key, value) VALUES (?, ?, ?)",
                [(kind, key, text) for (kind, key), (_, text) in rows.items()],
            )
            _set_version(db, version)
        self._cache = cache
        self._committed(version, diff)
        return version

    def _committed(self, version: int, changes: list[Change]) -> None:
        self._version = version
        self.updated_at = self._clock()
        if not changes:
            return
        for listener in list(self._listeners):
            try:
                listener(changes)
            except Exception:  # one broken listener must not stop the others or replication
                _log.exception("replica listener %r failed", listener)

    def subscribe(self, callback: ReplicaListener) -> Callable[[], None]:
        """Call ``callback`` after every commit that changed something; returns unsubscribe."""
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe

    # -- lifecycle ---------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise ReplicaError(f"replica {self.path} is closed")
        return self._db

    def close(self) -> None:
        """Close the database; reads of the in-memory copy keep working, writes raise."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> LocalStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        rows = sum(len(r) for r in self._cache.values())
        return f"LocalStore({self.path!r}, version={self._version}, rows={rows})"


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` .. ``COMMIT``, or ``ROLLBACK`` on any error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _set_version(db: sqlite3.Connection, version: int) -> None:
    db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('version', ?)", (version,))
