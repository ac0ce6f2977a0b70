"""The SQLite backend of the store interface (:mod:`.kv`): the embedded default for one machine.

Tables: ``kv`` (the live keys), ``history`` (one row per change, in revision order: what watches
read), ``leases`` (id and TTL; deadlines live in memory, :mod:`.leases`) and ``meta`` (the
revision and the compaction point). Every write is one SQLite transaction that updates ``kv``
and appends to ``history``; the revision is kept in memory and restored from ``history`` and
``meta`` on open. Compaction: :meth:`SqliteStore.compact`, and automatically when the history
grows past ``keep_revisions`` (a setting; ``0`` keeps everything).

This is an adapter (named in pyproject's import-linter contract): watches wait on the loop for
the next write. Everything else is synchronous SQLite in the calling task; a write on one
machine takes microseconds (``benchmarks/store.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Final

from .kv import (
    CompactedError,
    Event,
    EventKind,
    KeyValue,
    KeyValueStore,
    LeaseNotFoundError,
    Range,
    StoreError,
    TxnResult,
    check_key,
    check_number,
    check_value,
    prefix_end,
)
from .leases import LeaseClock

__all__ = ["SqliteStore"]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS kv (
    key BLOB PRIMARY KEY, value BLOB NOT NULL, create_rev INTEGER NOT NULL,
    mod_rev INTEGER NOT NULL, version INTEGER NOT NULL, lease INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS kv_lease ON kv (lease) WHERE lease != 0;
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY, put INTEGER NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (id INTEGER PRIMARY KEY AUTOINCREMENT, ttl INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_PUT: Final = (
    "INSERT INTO kv VALUES (?1, ?2, ?3, ?3, 1, ?4) ON CONFLICT (key) DO UPDATE SET "
    "value = excluded.value, mod_rev = excluded.mod_rev, version = version + 1, "
    "lease = excluded.lease"
)
_LOG: Final = "INSERT INTO history VALUES (?, ?, ?, ?)"
# a history row's seq is its revision << _SHIFT | its place in the revision (a lease's expiry
# deletes its keys in one revision): revision order is rowid order, no index to keep
_SHIFT: Final = 20
_BATCH: Final = 500  # history rows a watch reads at a time
_IDLE_WAKE: Final = 1.0  # with leases, a waiting watch looks for expired ones this often (s)


class SqliteStore:
    """The store on one SQLite file (``":memory:"``: nothing kept). ``clock`` is the lease clock
    (seconds, monotonic; tests inject one). ``keep_revisions``: how much history watches can
    resume from before :class:`~.kv.CompactedError` sends them to a snapshot."""

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        clock: Callable[[], float] = time.monotonic,
        keep_revisions: int = 100_000,
    ) -> None:
        if keep_revisions < 0:
            raise StoreError(f"keep_revisions {keep_revisions}: must be 0 (keep all) or more")
        self._clock = clock
        self._keep = keep_revisions
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        if str(path) != ":memory:":
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.executescript(_SCHEMA)
        meta = dict(self._db.execute("SELECT name, value FROM meta").fetchall())
        (last,) = self._db.execute("SELECT max(seq) FROM history").fetchone()
        self._rev: int = max(int(last or 0) >> _SHIFT, int(meta.get("revision", 1)))
        self._compacted: int = int(meta.get("compacted", 0))
        self._leases = LeaseClock()
        now = clock()
        for lease, ttl in self._db.execute("SELECT id, ttl FROM leases"):
            self._leases.grant(int(lease), int(ttl), now)
        self._wakers: set[asyncio.Event] = set()
        self._per_revision = 1 << _SHIFT  # the most changes one revision's history can hold
        self._closed = False

    # -- reads

    async def get(self, key: str) -> KeyValue | None:
        raw = _key(key)
        self._expire()
        row = self._db.execute(
            "SELECT key, value, create_rev, mod_rev, version, lease FROM kv WHERE key = ?", (raw,)
        ).fetchone()
        return None if row is None else _kv(row)

    async def range(self, prefix: str, *, limit: int = 0) -> Range:
        lo = _key(prefix, "prefix")
        self._expire()
        end = prefix_end(lo)
        sql = "SELECT key, value, create_rev, mod_rev, version, lease FROM kv WHERE key >= ?"
        args: tuple[object, ...] = (lo,)
        if end != b"\x00":
            sql += " AND key < ?"
            args += (end,)
        sql += " ORDER BY key"
        if check_number("limit", limit, 0):
            sql += " LIMIT ?"
            args += (limit,)
        return Range(tuple(map(_kv, self._db.execute(sql, args))), self._rev)

    async def revision(self) -> int:
        self._expire()
        return self._rev

    # -- writes

    async def put(self, key: str, value: bytes, *, lease: int = 0) -> int:
        raw = _key(key)
        check_number("lease", lease, 0)
        self._expire()
        self._check_lease(lease)
        return self._put(raw, check_value(key, value), lease)

    async def delete(self, key: str) -> int | None:
        raw = _key(key)
        self._expire()
        return self._delete([raw])

    async def put_if(
        self, key: str, value: bytes, *, mod_revision: int, lease: int = 0
    ) -> TxnResult:
        raw = _key(key)
        data = check_value(key, value)
        check_number("mod_revision", mod_revision, 0)
        check_number("lease", lease, 0)
        self._expire()
        if self._mod_rev(raw) != mod_revision:
            return TxnResult(False, self._rev)
        self._check_lease(lease)
        return TxnResult(True, self._put(raw, data, lease))

    async def delete_if(self, key: str, *, mod_revision: int) -> TxnResult:
        raw = _key(key)
        check_number("mod_revision", mod_revision, 0)
        self._expire()
        if self._mod_rev(raw) != mod_revision:
            return TxnResult(False, self._rev)
        rev = self._delete([raw])
        return TxnResult(True, self._rev if rev is None else rev)

    async def compact(self, revision: int) -> None:
        check_number("compact revision", revision, 1)
        if revision <= self._compacted:
            raise StoreError(f"compact {revision}: already compacted up to {self._compacted}")
        if revision > self._rev:
            raise StoreError(f"compact {revision}: later than the current revision {self._rev}")
        self._compact(revision)

    # -- leases

    async def grant(self, ttl: int) -> int:
        check_number("lease ttl", ttl, 1)
        self._expire()
        with self._db:
            lease = self._db.execute("INSERT INTO leases (ttl) VALUES (?)", (ttl,)).lastrowid
        assert lease is not None
        self._leases.grant(lease, ttl, self._clock())
        return lease

    async def keep_alive(self, lease: int) -> None:
        check_number("lease", lease, 1)
        self._expire()
        if not self._leases.keep_alive(lease, self._clock()):
            raise LeaseNotFoundError(lease)

    async def revoke(self, lease: int) -> None:
        check_number("lease", lease, 1)
        self._expire()
        if lease not in self._leases:
            raise LeaseNotFoundError(lease)
        self._leases.remove(lease)
        self._end_lease(lease)

    # -- watch

    async def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[Event]:
        lo = _key(prefix, "prefix")
        end = prefix_end(lo)
        check_number("start_revision", start_revision, 0)
        nxt = start_revision or self._rev + 1
        seq = (nxt << _SHIFT) - 1  # history rows up to this one are delivered
        waker = asyncio.Event()
        self._wakers.add(waker)
        try:
            while True:
                self._expire()
                if nxt < self._compacted:
                    raise CompactedError(nxt, self._compacted)
                waker.clear()
                rows = self._history(lo, end, seq)
                nxt = rows[-1][0] >> _SHIFT if len(rows) == _BATCH else self._rev + 1
                for row in rows:
                    seq = row[0]
                    yield Event(
                        EventKind.PUT if row[1] else EventKind.DELETE,
                        bytes(row[2]).decode(),
                        bytes(row[3]),
                        seq >> _SHIFT,
                    )
                if rows:
                    continue
                if self._closed:
                    raise StoreError("watch: the store was closed")
                wait = self._leases.next_deadline() - self._clock()
                timeout = None if wait == math.inf else min(max(wait, 0.01), _IDLE_WAKE)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waker.wait(), timeout)
        finally:
            self._wakers.discard(waker)

    async def close(self) -> None:
        self._closed = True
        self._wake()
        self._db.close()

    # -- the work

    def _history(self, lo: bytes, end: bytes, seq: int) -> list[Any]:
        sql = "SELECT seq, put, key, value FROM history WHERE seq > ? AND key >= ? "
        args: tuple[object, ...] = (seq, lo)
        if end != b"\x00":
            sql += "AND key < ? "
            args += (end,)
        return self._db.execute(sql + "ORDER BY seq LIMIT ?", (*args, _BATCH)).fetchall()

    def _mod_rev(self, raw: bytes) -> int:
        row = self._db.execute("SELECT mod_rev FROM kv WHERE key = ?", (raw,)).fetchone()
        return 0 if row is None else int(row[0])

    def _check_lease(self, lease: int) -> None:
        if lease and lease not in self._leases:
            raise LeaseNotFoundError(lease)

    def _put(self, raw: bytes, value: bytes, lease: int) -> int:
        rev = self._rev + 1
        with self._db:
            self._db.execute(_PUT, (raw, value, rev, lease))
            self._db.execute(_LOG, (rev << _SHIFT, 1, raw, value))
        self._wrote(rev)
        return rev

    def _delete(self, keys: list[bytes], lease: int = 0) -> int | None:
        rev = self._rev + 1
        with self._db:
            gone = [
                k for k in keys if self._db.execute("DELETE FROM kv WHERE key = ?", (k,)).rowcount
            ]
            base = rev << _SHIFT
            self._db.executemany(_LOG, [(base + i, 0, k, b"") for i, k in enumerate(gone)])
            if lease:
                self._db.execute("DELETE FROM leases WHERE id = ?", (lease,))
        if not gone:
            return None
        self._wrote(rev)
        return rev

    def _end_lease(self, lease: int) -> None:
        rows = self._db.execute("SELECT key FROM kv WHERE lease = ? ORDER BY key", (lease,))
        keys = [bytes(k) for (k,) in rows]
        step = self._per_revision
        chunks = [keys[at : at + step] for at in range(0, len(keys), step)] or [[]]
        for chunk in chunks[:-1]:
            self._delete(chunk)
        self._delete(chunks[-1], lease)

    def _expire(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")
        for lease in self._leases.expired(self._clock()):
            self._end_lease(lease)

    def _wrote(self, rev: int) -> None:
        self._rev = rev
        if self._keep and rev - self._compacted > self._keep + max(self._keep // 10, 1):
            self._compact(rev - self._keep)
        self._wake()

    def _compact(self, revision: int) -> None:
        with self._db:
            self._db.execute("DELETE FROM history WHERE seq < ?", (revision << _SHIFT,))
            self._db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [("compacted", revision), ("revision", self._rev)],
            )
        self._compacted = revision

    def _wake(self) -> None:
        for waker in self._wakers:
            waker.set()

    def __repr__(self) -> str:
        return f"<SqliteStore revision={self._rev} compacted={self._compacted}>"


def _key(key: str, what: str = "key") -> bytes:
    try:
        return check_key(key, what)
    except UnicodeEncodeError as exc:
        raise StoreError(f"{what} {key!r}: not valid text ({exc.reason})") from None


def _kv(row: Any) -> KeyValue:
    key, value, create_rev, mod_rev, version, lease = row
    return KeyValue(bytes(key).decode(), bytes(value), create_rev, mod_rev, version, lease)


def _conforms(store: SqliteStore) -> KeyValueStore:  # mypy checks SqliteStore against the interface
    return store
