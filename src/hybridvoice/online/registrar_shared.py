"""Registrations shared by the online instances of one tenant: each binding a key with a lease
(docs/fleet.md, "How the online store moves"; RFC 3261 §10.3 for what a binding is).

Every binding of the registrar (:class:`~.registrar.Binding`) is written as
``hv/t/<tenant>/reg/<aor>%2F<contact id>`` (the contact id: a digest of the contact's URI)
under a lease of its own, TTL = the binding's expiry + :data:`GRACE` seconds, so a binding
ends by itself in the store even when the instance that wrote it is gone. A REGISTER that
refreshes a binding keeps its lease alive (or takes a new one when the expiry changed); an
un-REGISTER revokes it. Every instance watches the tenant's ``reg`` keys and merges the
others' bindings into its registrar, so a user registered through one instance is reached
through any.

:class:`SharedBindings` is the core (what to write for a changed address of record, what a
watched key means; ``now`` is the registrar's monotonic clock, ``wall`` the epoch clock the
stored expiry is written in, since monotonic clocks differ between hosts).
:class:`BindingWriter` carries the writes out on the store (its coroutines run on the tenant
store's :class:`~.kv_bridge.KvBridge`); :func:`share_registrations` wires both to a registrar
and a :class:`~.store_kv.KvTenantStore`.

A binding learnt from another instance keeps the source address it registered from only for
UDP: a TCP or TLS connection belongs to the instance that accepted it, so requests go to the
contact instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from hybridvoice.sip.errors import ParseError
from hybridvoice.sip.headers import parse_address
from hybridvoice.store.keys import parse_key, tenant_key
from hybridvoice.store.kv import Event, EventKind, KeyValueStore, LeaseNotFoundError, StoreError

from .registrar import Binding, Registrar
from .store_kv import KvTenantStore

__all__ = ["GRACE", "BindingWrite", "BindingWriter", "SharedBindings", "share_registrations"]

#: seconds a binding's key outlives its expiry (a refresh arriving a little late)
GRACE: Final = 10

_log = logging.getLogger(__name__)


def contact_id(binding: Binding) -> str:
    """The contact's part of a binding's key: the same contact URI, the same key."""
    return hashlib.sha256(str(binding.contact.uri).encode()).hexdigest()[:20]


@dataclass(frozen=True, slots=True)
class BindingWrite:
    """Put ``value`` under a lease of ``ttl`` seconds, or (``value`` None) remove the key."""

    key: str
    value: bytes | None
    ttl: int = 0


class SharedBindings:
    """The core: REGISTER outcomes to writes, watched keys to bindings (sans-IO)."""

    __slots__ = ("_seen", "grace", "instance", "tenant", "wall")

    def __init__(
        self,
        tenant: str,
        instance: str,
        *,
        grace: int = GRACE,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.tenant = tenant
        self.instance = instance
        self.grace = grace
        self.wall = wall
        self._seen: dict[str, int] = {}  # key -> revision of the last change applied

    def key(self, binding: Binding) -> str:
        return tenant_key(self.tenant, "reg", f"{binding.aor}/{contact_id(binding)}")

    def changed(
        self, aor: str, before: list[Binding], after: list[Binding], now: float
    ) -> list[BindingWrite]:
        """The writes that make the store hold `after` for `aor` (it held `before`)."""
        writes = []
        kept = {contact_id(b) for b in after}
        for binding in before:
            if contact_id(binding) not in kept:
                writes.append(BindingWrite(self.key(binding), None))
        wall = self.wall()
        for binding in after:
            if binding in before:
                continue
            left = binding.expires_at - now
            value = {
                "aor": aor,
                "contact": str(binding.contact),
                "expires": round(wall + left, 3),
                "call_id": binding.call_id,
                "cseq": binding.cseq,
                "q": binding.q,
                "source": None if binding.source is None else list(binding.source),
                "instance": self.instance,
            }
            ttl = max(1, math.ceil(left)) + self.grace
            writes.append(BindingWrite(self.key(binding), json.dumps(value).encode(), ttl))
        return writes

    def received(
        self, event: Event, now: float
    ) -> tuple[str, Callable[[Binding], bool], Binding | None] | None:
        """What a watched ``reg`` change means for the registrar: ``(aor, which bindings it
        replaces, the binding or None)``; None for this instance's own writes, repeats and
        keys that are not bindings."""
        if self._seen.get(event.key, 0) > event.revision:
            return None
        self._seen[event.key] = event.revision
        try:
            aor, _, cid = parse_key(event.key).name.rpartition("/")
        except StoreError:
            return None
        if not aor:
            return None

        def same(binding: Binding) -> bool:
            return contact_id(binding) == cid

        if event.kind is EventKind.DELETE:
            self._seen.pop(event.key, None)
            return aor, same, None
        try:
            data = json.loads(event.value)
            if data.get("instance") == self.instance:
                return None
            source = data.get("source")
            binding = Binding(
                aor=aor,
                contact=parse_address(data["contact"]),
                expires_at=now + float(data["expires"]) - self.wall(),
                call_id=str(data["call_id"]),
                cseq=int(data["cseq"]),
                q=float(data["q"]),
                source=tuple(source) if source and source[0] == "UDP" else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError, ParseError) as exc:
            _log.warning("registration %s is not a binding (%s): ignored", event.key, exc)
            return None
        return aor, same, binding


class BindingWriter:
    """Carries :class:`BindingWrite` out on a store, one lease per binding key. Its coroutines
    run on the bridge's loop: one key's writes one after the other, and of the writes that
    wait for the one in flight only the last is made (a client refreshing faster than the
    store answers costs one write per round trip, not a growing queue)."""

    __slots__ = ("_leases", "_pending", "kv", "writes")

    def __init__(self, kv: KeyValueStore) -> None:
        self.kv = kv
        self._leases: dict[str, tuple[int, int]] = {}  # key -> (lease, ttl)
        self._pending: dict[str, BindingWrite | None] = {}  # key -> the next write (None: busy)
        self.writes = 0  # writes made (fewer than offered when they were coalesced)

    async def offer(self, write: BindingWrite) -> None:
        """Make `write` after the key's write in flight, unless a later one replaces it."""
        key = write.key
        busy = key in self._pending
        self._pending[key] = write
        if busy:
            return
        try:
            while (next_write := self._pending.get(key)) is not None:
                self._pending[key] = None
                try:
                    await self.write(next_write)
                    self.writes += 1
                except StoreError as exc:
                    _log.warning("registration %s not written: %s", key, exc)
        finally:
            del self._pending[key]

    async def write(self, write: BindingWrite) -> None:
        kv, key = self.kv, write.key
        held = self._leases.pop(key, None)
        if write.value is None:
            if held is not None:
                try:
                    await kv.revoke(held[0])
                    return
                except LeaseNotFoundError:
                    pass
            await kv.delete(key)
            return
        lease = None
        if held is not None and held[1] == write.ttl:
            try:
                await kv.keep_alive(held[0])
                lease = held[0]
            except LeaseNotFoundError:
                lease = None
        # a lease of another TTL is left to end: the key moves to the new one, never deleted
        if lease is None:
            lease = await kv.grant(write.ttl)
        self._leases[key] = (lease, write.ttl)
        await kv.put(key, write.value, lease=lease)


def share_registrations(
    registrar: Registrar,
    store: KvTenantStore,
    *,
    instance: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    grace: int = GRACE,
) -> SharedBindings:
    """Write `registrar`'s bindings to `store`'s backend and merge the other instances'."""
    name = instance or f"{os.getpid()}-{secrets.token_hex(4)}"
    shared = SharedBindings(store.tenant, name, grace=grace)
    writer = BindingWriter(store.bridge.kv)
    bridge = store.bridge

    def observe(aor: str, before: list[Binding], after: list[Binding], now: float) -> None:
        for write in shared.changed(aor, before, after, now):
            bridge.submit(lambda w=write: writer.offer(w))  # type: ignore[misc]

    def heard(event: Event) -> None:
        merged = shared.received(event, clock())
        if merged is not None:
            registrar.merge(*merged)

    registrar.observer = observe
    store.listen("reg", heard)
    return shared
