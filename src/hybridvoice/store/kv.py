"""The store interface: keys under a prefix with revisions, compare-and-swap, leases, watches.

The model is etcd's v3 data model (etcd API guarantees, "KV", "Watch", "Lease"), cut to what the
online store and the site CMS need, so that the SQLite backend can give exactly the same answers:

- One store-wide **revision**, a counter that every write (put, delete, lease expiry) raises by
  one. A key remembers the revision that created it and the one that last changed it
  (``create_revision``, ``mod_revision``) and how often it changed since creation (``version``).
- **Compare-and-swap**: :meth:`KeyValueStore.put_if` writes only when the key's ``mod_revision``
  is the expected one (``0``: the key must not exist), :meth:`KeyValueStore.delete_if` likewise.
- **Range reads** of a prefix, in key order, at one revision.
- **Leases**: a key put with a lease disappears when the lease is not kept alive for its TTL
  (registrations). Expiry deletes the keys like a delete does: watchers see it.
- **Watch** from a revision: every change of a prefix, in revision order, from that revision on.
  When the history before the revision has been compacted away, the watch raises
  :class:`CompactedError`: the watcher reloads a snapshot (:meth:`KeyValueStore.range`) and watches
  again from the snapshot's revision + 1.

Keys are text (UTF-8, no NUL), values bytes. This module is sans-IO: types, errors and the key
arithmetic; the backends are the adapters.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "CompactedError",
    "Event",
    "EventKind",
    "KeyValue",
    "KeyValueStore",
    "LeaseNotFoundError",
    "Range",
    "StoreError",
    "StoreUnavailableError",
    "TxnResult",
    "check_key",
    "check_number",
    "check_value",
    "prefix_end",
]

MAX_KEY_BYTES = 1024
MAX_VALUE_BYTES = 1024 * 1024  # etcd refuses requests over 1.5 MiB by default; both refuse this


class StoreError(Exception):
    """A store operation was refused; the message names the key or setting and the reason."""


class StoreUnavailableError(StoreError):
    """The backend cannot be reached or cannot commit (an etcd cluster without quorum)."""


class LeaseNotFoundError(StoreError):
    """The lease expired or was revoked (or never existed)."""

    def __init__(self, lease: int) -> None:
        super().__init__(f"lease {lease:#x} not found: it expired or was revoked")
        self.lease = lease


class CompactedError(StoreError):
    """A watch asked for history that compaction removed: reload a snapshot and watch again."""

    def __init__(self, requested: int, compact_revision: int) -> None:
        super().__init__(
            f"revision {requested} is compacted (history starts at {compact_revision}): "
            "reload a snapshot with range() and watch from its revision + 1"
        )
        self.requested = requested
        self.compact_revision = compact_revision


class EventKind(enum.Enum):
    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Event:
    """One change: ``revision`` is the revision of the write; a delete has an empty value."""

    kind: EventKind
    key: str
    value: bytes
    revision: int


@dataclass(frozen=True, slots=True)
class Range:
    """The keys of a range read and the store's revision it was read at (a snapshot)."""

    kvs: tuple[KeyValue, ...]
    revision: int


@dataclass(frozen=True, slots=True)
class TxnResult:
    """A compare-and-swap: ``succeeded`` when the compare held; ``revision`` is the store's
    revision after it (the write's own revision when it succeeded)."""

    succeeded: bool
    revision: int


@runtime_checkable
class KeyValueStore(Protocol):
    """What a backend offers (SQLite: :class:`~.sqlite_kv.SqliteStore`, etcd:
    :class:`~.etcd_kv.EtcdStore`). Every method may raise :class:`StoreUnavailableError`."""

    async def get(self, key: str) -> KeyValue | None: ...

    async def range(self, prefix: str, *, limit: int = 0) -> Range:
        """The keys starting with ``prefix`` in key order (``limit`` > 0: at most that many)."""
        ...

    async def put(self, key: str, value: bytes, *, lease: int = 0) -> int:
        """Write; returns the write's revision."""
        ...

    async def delete(self, key: str) -> int | None:
        """Delete; returns the delete's revision, ``None`` when there was no such key."""
        ...

    async def put_if(
        self, key: str, value: bytes, *, mod_revision: int, lease: int = 0
    ) -> TxnResult:
        """Write only if the key's ``mod_revision`` matches (``0``: only if it does not exist)."""
        ...

    async def delete_if(self, key: str, *, mod_revision: int) -> TxnResult: ...

    async def grant(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds; returns its id."""
        ...

    async def keep_alive(self, lease: int) -> None:
        """Restart the lease's TTL; :class:`LeaseNotFoundError` when it is gone."""
        ...

    async def revoke(self, lease: int) -> None:
        """End the lease now and delete its keys; :class:`LeaseNotFoundError` when it is gone."""
        ...

    def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[Event]:
        """Every change under ``prefix`` from ``start_revision`` on, in order, until the
        iterator is closed (``aclose``); raises :class:`CompactedError` as described above.
        ``start_revision=0``: from the revision current when the iteration begins (the first
        ``__anext__``); to miss nothing, pass the revision after a read."""
        ...

    async def compact(self, revision: int) -> None:
        """Forget the history before ``revision`` (earlier watches: :class:`CompactedError`)."""
        ...

    async def revision(self) -> int:
        """The store's current revision."""
        ...

    async def close(self) -> None: ...


def check_key(key: str, what: str = "key") -> bytes:
    """The key as bytes; :class:`StoreError` naming the key when it cannot be one."""
    if not isinstance(key, str):
        raise StoreError(f"{what} {key!r}: must be text, not {type(key).__name__}")
    raw = key.encode()
    if not key and what == "key":
        raise StoreError("key '': a key cannot be empty")
    if "\x00" in key:
        raise StoreError(f"{what} {key!r}: NUL is not allowed in a key")
    if len(raw) > MAX_KEY_BYTES:
        raise StoreError(f"{what} {key[:40]!r}...: longer than {MAX_KEY_BYTES} bytes")
    return raw


def check_number(name: str, value: object, minimum: int) -> int:
    """A revision, lease id, TTL or limit: a whole number, at least ``minimum``; otherwise a
    :class:`StoreError` naming it (etcd's client crashed on text, SQLite compared it silently)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise StoreError(f"{name} {value!r}: must be a whole number, not {type(value).__name__}")
    if value < minimum:
        raise StoreError(f"{name} {value!r}: must be {minimum} or more")
    return value


def check_value(key: str, value: object) -> bytes:
    """The value as bytes; :class:`StoreError` naming the key when it cannot be one."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise StoreError(f"key {key!r}: the value must be bytes, not {type(value).__name__}")
    if len(value) > MAX_VALUE_BYTES:
        raise StoreError(
            f"key {key!r}: a value of {len(value)} bytes is over the {MAX_VALUE_BYTES} allowed"
        )
    return bytes(value)


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key starting with ``prefix`` (etcd's range_end for a prefix);
    ``b"\\0"`` (to the end of the keyspace) for the empty prefix or a prefix of all 0xff."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"
