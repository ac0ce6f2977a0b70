"""The tenant store on the store interface (:mod:`hybridvoice.store`): several online instances
of one tenant on one etcd cluster (docs/fleet.md, "How the online store moves").

:class:`KvTenantStore` is the :class:`~.store.TenantStore` (same methods, same in-memory caches,
reads never touch the backend) with its records under ``tenant_prefix(tenant)``
(:mod:`hybridvoice.store.keys`):

- **Writes** are compare-and-swap per record: the revision of the record the cache holds is
  the ``mod_revision`` compared. When another instance wrote the record meanwhile, the record
  is read again into the cache and the whole method runs again on the fresh value (its checks
  too), up to :data:`CAS_ATTEMPTS` times; so two instances editing one user never lose an
  update. A method writing several records (an appliance's first registration creates its
  site) writes them one after the other.
- **The caches of every instance** are fed by a watch of the tenant's prefix
  (:func:`~hybridvoice.store.follow.follow` and a :class:`~hybridvoice.store.mirror.Mirror`),
  applied on the service's loop; a writer also updates its own cache at once (read your
  writes). A change older than what the cache holds for that record is not applied.
- **The change feed** is the store's revision history as the watch delivers it: versions are
  revisions (store-wide: the tenant's feed skips other revisions; appliances compare versions,
  never count them). The last :data:`FEED_WINDOW` changes are kept in memory for
  ``GET /v1/changes``; a version older than that window, or than the snapshot the instance
  started from, is ``compacted_through``: the API answers 410 and the appliance loads the
  snapshot (``GET /v1/snapshot``: the cached records at the revision of the last change).
- **Appliance liveness** is a lease: each heartbeat keeps ``alive/<appliance>`` alive (TTL =
  the heartbeat timeout); :meth:`KvTenantStore.mark_offline` marks offline only appliances
  whose key is gone, so an instance never marks offline an appliance that heartbeats to
  another instance, and every instance sees the lease end.
- **Registrations** (``reg/...``) and **tokens** (``token/...``) are watched here and handed to
  their listeners (:mod:`.registrar_shared`, :mod:`.tokens_kv`).

The audit log and the site roots stay in the instance's own SQLite file (``path``): an
append-only log is what compaction would eat, and each record names its instance.
"""

from __future__ import annotations

import functools
import logging
import math
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from hybridvoice.cms.changes import KINDS, Change
from hybridvoice.store.follow import follow
from hybridvoice.store.keys import parse_key, tenant_key, tenant_prefix
from hybridvoice.store.kv import (
    Event,
    EventKind,
    KeyValue,
    KeyValueStore,
    LeaseNotFoundError,
    Range,
    StoreUnavailableError,
    TxnResult,
)
from hybridvoice.store.kv import StoreError as KvStoreError
from hybridvoice.store.mirror import Mirror

from .kv_bridge import KvBridge
from .models import Appliance, User, replicated
from .store import _MODELS, TenantStore
from .store_feed import StoreError, _Op
from .store_numbers import NumberClaims

__all__ = ["CAS_ATTEMPTS", "FEED_WINDOW", "KvTenantStore", "StoreConflictError"]

#: a write method runs at most this often when other instances keep writing its records
CAS_ATTEMPTS: Final = 8
#: changes kept for ``GET /v1/changes``; an appliance further behind loads the snapshot
FEED_WINDOW: Final = 10_000

_log = logging.getLogger(__name__)

_F = TypeVar("_F", bound=Callable[..., Any])


class StoreConflictError(StoreError):
    """A record kept changing under a write (:data:`CAS_ATTEMPTS` compare-and-swaps failed)."""


class _StaleError(Exception):
    """A compare-and-swap failed: the record was re-read, run the method again."""


class _TenantMirror(Mirror):
    """The tenant's prefix; a snapshot loaded after a compacted watch is handed on."""

    __slots__ = ("on_snapshot",)

    def __init__(self, prefix: str, on_snapshot: Callable[[Range], None]) -> None:
        super().__init__(prefix)
        self.on_snapshot = on_snapshot

    def load(self, snapshot: Range) -> None:
        reload = self.loaded or self.revision > 0
        super().load(snapshot)
        if reload:
            self.on_snapshot(snapshot)


class KvTenantStore(TenantStore):
    """The tenant store on ``bridge.kv`` (see the module docstring); ``path`` is the
    instance's own SQLite file for the audit log and the site roots."""

    def __init__(
        self,
        bridge: KvBridge,
        path: str | Path = ":memory:",
        *,
        tenant: str = "default",
        alive_ttl: float = 5.0,
    ) -> None:
        self.bridge = bridge
        self._prefix = tenant_prefix(tenant)
        #: (kind, name) -> (mod_revision, model) of every record the cache holds
        self._records: dict[tuple[str, str], tuple[int, BaseModel]] = {}
        #: (kind, name) -> the revision of the last change applied (deletes too)
        self._applied: dict[tuple[str, str], int] = {}
        self._feed: deque[Change] = deque(maxlen=FEED_WINDOW)
        self.compacted_through = 0
        #: per kind outside the feed (``reg``, ``token``): who hears of its changes
        self.listeners: dict[str, list[Callable[[Event], None]]] = {}
        #: appliances whose liveness key exists, and this instance's leases for them
        self.alive: set[str] = set()
        self._alive_leases: dict[str, int] = {}
        self._alive_ttl = max(1, math.ceil(alive_ttl))
        self._numbers = NumberClaims(bridge, tenant)
        super().__init__(path, tenant=tenant)
        snapshot = bridge.call(lambda: bridge.kv.range(self._prefix))
        self._load_snapshot(snapshot)
        mirror = _TenantMirror(self._prefix, self._reloaded)
        mirror.load(snapshot)
        self._mirror = mirror

        bridge.spawn(lambda: follow(bridge.kv, mirror, changed=self._watched))

    # --- what the watch brings -------------------------------------------------------------------

    def _watched(self, event: Event) -> None:
        """In the bridge's thread: applied on the service's loop."""
        self.bridge.home(lambda: self.apply_event(event))

    def _reloaded(self, snapshot: Range) -> None:
        self.bridge.home(lambda: self._load_snapshot(snapshot))

    def apply_event(self, event: Event) -> None:
        """One watched change (on the service's loop)."""
        try:
            ref = parse_key(event.key)
        except KvStoreError:
            return
        kind, name = ref.kind, ref.name
        if kind not in KINDS:
            if kind == "alive":
                if event.kind is EventKind.PUT:
                    self.alive.add(name)
                else:
                    self.alive.discard(name)
            for listener in self.listeners.get(kind, ()):
                try:
                    listener(event)
                except Exception:
                    _log.exception("store listener of %s failed on %s", kind, event.key)
            return
        model = None if event.kind is EventKind.DELETE else self._decode(kind, name, event.value)
        if event.kind is EventKind.PUT and model is None:
            return
        with self._lock:
            self._take(kind, name, model, event.revision)
            change = Change(
                event.revision, kind, name, None if model is None else replicated(model)
            )
            if not self._fed(change):
                self._feed.append(change)
            self._version = max(self._version, event.revision)
            subscribers = list(self._subscribers)
            waiters = self._waiters.take()
        waiters.wake()
        for callback in subscribers:
            try:
                callback(change)
            except Exception:
                _log.exception("change subscriber %r failed on %s", callback, change)

    def _fed(self, change: Change) -> bool:
        """The change is in the feed already (a resumed watch repeats a revision)."""
        for old in reversed(self._feed):
            if old.version < change.version:
                return False
            if (old.version, old.kind, old.key) == (change.version, change.kind, change.key):
                return True
        return False

    def _load_snapshot(self, snapshot: Range) -> None:
        """Every record of a snapshot into the caches (records gone from it are dropped); the
        feed starts again at its revision."""
        with self._lock:
            seen: set[tuple[str, str]] = set()
            for kv in snapshot.kvs:
                self._snapshot_row(kv, seen)
            for kind, name in [k for k in self._records if k not in seen]:
                self._take(kind, name, None, snapshot.revision)
            self._feed.clear()
            self._version = max(self._version, snapshot.revision)
            self.compacted_through = self._version
            waiters = self._waiters.take()
        waiters.wake()

    def _snapshot_row(self, kv: KeyValue, seen: set[tuple[str, str]]) -> None:
        try:
            ref = parse_key(kv.key)
        except KvStoreError:
            return
        if ref.kind == "alive":
            self.alive.add(ref.name)
        if ref.kind not in KINDS:
            for listener in self.listeners.get(ref.kind, ()):
                listener(Event(EventKind.PUT, kv.key, kv.value, kv.mod_revision))
            return
        model = self._decode(ref.kind, ref.name, kv.value)
        if model is not None:
            seen.add((ref.kind, ref.name))
            self._take(ref.kind, ref.name, model, kv.mod_revision)

    def _take(self, kind: str, name: str, model: BaseModel | None, revision: int) -> bool:
        """Put one record into the caches unless they hold a later change of it."""
        key = (kind, name)
        if self._applied.get(key, 0) > revision:
            return False
        self._applied[key] = revision
        if model is None:
            self._records.pop(key, None)
        else:
            self._records[key] = (revision, model)
        self._cache(kind, name, model)
        return True

    def _decode(self, kind: str, name: str, value: bytes) -> BaseModel | None:
        model_type = _MODELS.get(kind)
        try:
            if model_type is None:
                return _Empty.model_validate_json(value or b"{}")
            return model_type.model_validate_json(value)
        except ValidationError as exc:
            _log.error(
                "stored %s %r is invalid (%d error(s)), left out: %s",
                kind, name, exc.error_count(), exc.errors()[:1],
            )  # fmt: skip
            return None

    # --- writes: compare-and-swap per record -----------------------------------------------------

    def _write(self, ops: Iterable[_Op]) -> list[Change]:
        bridge, kv = self.bridge, self.bridge.kv
        changes = []
        with self._lock:
            for kind, name, model in ops:
                key = tenant_key(self.tenant, kind, name)
                record = self._records.get((kind, name))
                expected = 0 if record is None else record[0]
                if model is None and record is None:
                    continue
                data = None if model is None else model.model_dump_json().encode()
                result = bridge.call(functools.partial(_swap, kv, key, data, expected))
                if not result.succeeded:
                    self._refresh(kind, name, key)
                    raise _StaleError(key)
                self._take(kind, name, model, result.revision)
                value = None if model is None else replicated(model)
                changes.append(Change(result.revision, kind, name, value))
        return changes

    def _refresh(self, kind: str, name: str, key: str) -> None:
        """Read one record again after a failed compare-and-swap."""
        kv = self.bridge.kv
        found = self.bridge.call(lambda: kv.get(key))
        if found is None:
            revision = self.bridge.call(kv.revision)
            self._take(kind, name, None, revision)
        else:
            model = self._decode(kind, name, found.value)
            if model is not None:
                self._take(kind, name, model, found.mod_revision)

    # --- the feed --------------------------------------------------------------------------------

    def changes_since(self, version: int, limit: int = 1000) -> list[Change]:
        with self._lock:
            out = []
            for change in self._feed:
                if change.version > version:
                    out.append(change)
                    if len(out) >= limit:
                        break
            return out

    def snapshot(self) -> tuple[int, list[Change]]:
        with self._lock:
            rows = sorted(
                (Change(rev, kind, name, replicated(model)) for (kind, name), (rev, model)
                 in self._records.items()),
                key=lambda c: c.version,
            )  # fmt: skip
            return self._version, rows

    # --- users: their numbers are claimed first (:mod:`.store_numbers`) -----------------------

    def set_user(self, user: User) -> User:
        old = self._users.get(user.sip_uri)
        number, before = user.e164, None if old is None else old.e164
        claimed = (
            number is not None and number != before and self._numbers.claim(number, user.sip_uri)
        )
        try:
            written = super().set_user(user)
        except BaseException:
            if claimed and number is not None:
                self._numbers.release(number, user.sip_uri)
            raise
        if before is not None and before != number:
            self._numbers.release(before, user.sip_uri)
        return written

    def remove_user(self, sip_uri: str) -> None:
        user = self.get_user(sip_uri)
        super().remove_user(sip_uri)
        if user is not None and user.e164 is not None:
            self._numbers.release(user.e164, user.sip_uri)

    # --- appliance liveness ----------------------------------------------------------------------

    def register_appliance(self, appliance: Appliance, now: float) -> Appliance:
        registered = super().register_appliance(appliance, now)
        self._keep_alive(registered.name)
        return registered

    def heartbeat(
        self, name: str, status: str, now: float, version: str | None = None
    ) -> Appliance:
        try:
            beat = super().heartbeat(name, status, now, version)
        except KvStoreError as exc:  # soft state: keep it here until the store is back
            _log.warning("heartbeat of %s kept in memory only: %s", name, exc)
            old = self._appliances[name]
            update = {"status": status, "last_heartbeat": max(now, old.last_heartbeat)}
            if version is not None:
                update["version"] = version
            beat = self._appliances[name] = old.model_copy(update=update)
            return beat
        self._keep_alive(name)
        return beat

    def remove_appliance(self, name: str) -> None:
        super().remove_appliance(name)
        key = tenant_key(self.tenant, "alive", name)
        self._alive_leases.pop(name, None)
        kv = self.bridge.kv
        self.bridge.submit(lambda: kv.delete(key))

    def mark_offline(self, now: float, timeout: float) -> list[str]:
        """Offline: the appliances whose liveness key is gone (no instance had a heartbeat
        for the lease's TTL) and that this instance has not heard from for `timeout`. While
        the store is unavailable nothing is marked (the sweep tries again next time)."""
        try:
            return self._mark_offline(now, timeout)
        except KvStoreError as exc:
            _log.warning("offline sweep skipped: %s", exc)
            return []

    def _mark_offline(self, now: float, timeout: float) -> list[str]:
        with self._lock:
            stale = [
                a.name
                for a in self._appliances.values()
                if a.status != "offline"
                and a.name not in self.alive
                and now - a.last_heartbeat > timeout
            ]
        gone = []
        for name in stale:
            appliance = self._appliances.get(name)
            if appliance is not None and appliance.status != "offline":
                offline = appliance.model_copy(update={"status": "offline"})
                self._write([("appliance", name, offline)])
                gone.append(name)
        return gone

    def _keep_alive(self, name: str) -> None:
        """The appliance's liveness key, under a lease this heartbeat keeps alive."""
        kv, ttl, leases = self.bridge.kv, self._alive_ttl, self._alive_leases
        key = tenant_key(self.tenant, "alive", name)

        async def beat() -> None:
            lease = leases.get(name)
            if lease is not None:
                try:
                    await kv.keep_alive(lease)
                    if name in self.alive:
                        return
                except LeaseNotFoundError:
                    lease = None
            if lease is None:
                lease = await kv.grant(ttl)
                leases[name] = lease
            await kv.put(key, b"{}", lease=lease)

        future = self.bridge.submit(beat)
        future.add_done_callback(_log_failure)

    # --- listeners of other kinds ---------------------------------------------------------------

    def listen(self, kind: str, listener: Callable[[Event], None]) -> None:
        """Hear of every change of ``kind`` (a kind outside the feed: ``reg``, ``token``),
        starting with a put of each record it has now (repeats are possible: a listener
        compares revisions)."""
        self.listeners.setdefault(kind, []).append(listener)
        kv, prefix = self.bridge.kv, tenant_prefix(self.tenant, kind)
        for row in self.bridge.call(lambda: kv.range(prefix)).kvs:
            listener(Event(EventKind.PUT, row.key, row.value, row.mod_revision))


async def _swap(kv: KeyValueStore, key: str, data: bytes | None, expected: int) -> TxnResult:
    """One compare-and-swap: a put (``data``) or a delete (None)."""
    if data is None:
        return await kv.delete_if(key, mod_revision=expected)
    return await kv.put_if(key, data, mod_revision=expected)


def _log_failure(future: Any) -> None:
    exc = None if future.cancelled() else future.exception()
    if isinstance(exc, StoreUnavailableError):
        _log.warning("store: %s", exc)
    elif exc is not None:
        _log.error("store write failed: %s", exc)


class _Empty(BaseModel):
    """A domain's value: empty."""


def _retried(method: _F) -> _F:
    def run(self: KvTenantStore, *args: Any, **kwargs: Any) -> Any:
        for _ in range(CAS_ATTEMPTS):
            try:
                return method(self, *args, **kwargs)
            except _StaleError:
                continue
        raise StoreConflictError(
            f"{method.__name__}: the record changed on another instance {CAS_ATTEMPTS} times "
            "while this one wrote it; try again"
        )

    run.__name__ = method.__name__
    run.__doc__ = method.__doc__
    return run  # type: ignore[return-value]


#: the tenant store's writing methods: each runs again on a failed compare-and-swap
_WRITERS: Final = (
    "add_domain", "remove_domain", "set_user", "remove_user", "new_site", "set_site",
    "remove_site", "set_hybrid_config", "set_network_config", "set_dialplan_rule",
    "remove_dialplan_rule", "register_appliance", "heartbeat", "remove_appliance",
    "_mark_offline", "set_update_window", "remove_update_window",
)  # fmt: skip
for _name in _WRITERS:
    setattr(KvTenantStore, _name, _retried(getattr(KvTenantStore, _name)))
