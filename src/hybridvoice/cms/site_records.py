"""The site CMS in the store (sans-IO): its record kinds, and the appliance's local replica of
``site_prefix(site)`` kept by a watch (docs/fleet.md, "The site CMS on etcd").

Every record of a site lives at ``hv/s/<site>/<kind>/<name>`` (:mod:`hybridvoice.store.keys`)
with a JSON object as its value. :class:`SiteReplica` is the :class:`~hybridvoice.store.mirror.
Mirror` that :func:`hybridvoice.store.follow.follow` drives, with a
:class:`~hybridvoice.cms.replica.LocalStore` as the copy: a snapshot replaces its rows
(``load_snapshot`` at the snapshot's revision), each watched event is applied in its own
transaction with the event's revision as the version, and the revision applied survives a
restart (the watch resumes from it, so an appliance restarted while etcd is down routes calls
on what it last knew and catches up when etcd answers again).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from hybridvoice.store.keys import parse_key, site_key, site_prefix
from hybridvoice.store.kv import Event, EventKind, Range, StoreError
from hybridvoice.store.mirror import Mirror

from .changes import Change
from .replica import LocalStore, ReplicaError

__all__ = ["SITE_KINDS", "SiteChange", "SiteRecordError", "SiteReplica", "decode", "encode",
           "pushed_name", "pushed_record", "pushed_snapshot", "record_key"]  # fmt: skip

SITE_KINDS: Final = frozenset(
    {
        "settings",  # "site": the site-wide settings document (TOML text) a join starts from
        "appliance",  # the appliance's name: roles, addresses, version, drain state
        "gateway",  # the gateway's name: its settings keys ([[Gateways]] of the settings file)
        "route",  # reserved: routes and trunk settings of the site
        "trunk",
        "ca",  # the site CA's material, encrypted (cms.site_secret); "join": the salt and check
        "pushed",  # settings pushed from the cloud
    }
)


class SiteRecordError(ValueError):
    """A record of the site store that is not a JSON object: names the key and the reason."""


@dataclass(frozen=True, slots=True)
class SiteChange(Change):
    """A change of a site record: its version is the store revision of the write."""

    def __post_init__(self) -> None:
        if self.kind not in SITE_KINDS:
            raise ValueError(f"unknown site record kind {self.kind!r}")
        if self.version < 1:
            raise ValueError(f"revisions start at 1, got {self.version}")


def record_key(site: str, kind: str, name: str) -> str:
    if kind not in SITE_KINDS:
        raise StoreError(f"site record kind {kind!r}: one of {', '.join(sorted(SITE_KINDS))}")
    return site_key(site, kind, name)


def encode(value: Mapping[str, Any]) -> bytes:
    return json.dumps(dict(value), separators=(",", ":"), sort_keys=True).encode()


def decode(key: str, raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise SiteRecordError(f"site record {key}: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise SiteRecordError(f"site record {key}: a JSON object expected, not "
                              f"{type(value).__name__}")  # fmt: skip
    return value


def pushed_name(change: Change) -> str:
    """The ``pushed/`` record name of a tenant setting: ``<kind>:<key>``."""
    return f"{change.kind}:{change.key}"


def pushed_record(change: Change) -> dict[str, Any]:
    """A tenant setting as pushed from the cloud: its feed version and value (None: deleted)."""
    return {"version": change.version,
            "value": None if change.value is None else dict(change.value)}  # fmt: skip


def pushed_snapshot(rows: Mapping[str, Mapping[str, Any]]) -> tuple[int, list[Change]]:
    """The tenant settings the site store holds (``pushed/`` records by name) as a snapshot
    for a tenant replica that has none: (version, live rows). Records that do not parse are
    left out (a newer version's kinds)."""
    version, changes = 0, []
    for name, record in rows.items():
        kind, colon, key = name.partition(":")
        number, value = record.get("version"), record.get("value")
        if not colon or not isinstance(number, int) or number < 1:
            continue
        version = max(version, number)
        if isinstance(value, dict):
            try:
                changes.append(Change(number, kind, key, value))
            except ValueError:
                continue
    return version, changes


class SiteReplica(Mirror):
    """The site's records in the appliance's :class:`LocalStore`, fed by a watch.

    A record this version does not know (another kind, not JSON) is skipped with its key in
    :attr:`skipped`, never a reason to stop following."""

    __slots__ = ("site", "skipped", "store")

    def __init__(self, site: str, store: LocalStore) -> None:
        super().__init__(site_prefix(site))
        self.site = site
        self.store = store
        self.skipped: list[str] = []
        # the revision applied before a restart: watch from it (no snapshot needed)
        self.revision = store.version
        self.loaded = store.version > 0

    def _change(self, key: str, raw: bytes | None, revision: int) -> SiteChange | None:
        try:
            ref = parse_key(key)
            value = None if raw is None else decode(key, raw)
            return SiteChange(max(revision, 1), ref.kind, ref.name, value)
        except (StoreError, SiteRecordError, ValueError) as exc:
            self._skip(f"{key}: {exc}")
            return None

    def _skip(self, why: str) -> None:
        self.skipped = [*self.skipped[-19:], why]  # the last 20: what status shows

    def load(self, snapshot: Range) -> None:
        if self.loaded or self.revision:
            self.reloads += 1
        rows = [c for kv in snapshot.kvs
                if (c := self._change(kv.key, kv.value, kv.mod_revision)) is not None]  # fmt: skip
        self.store.load_snapshot(snapshot.revision, rows)
        self.revision = snapshot.revision
        self.loaded = True

    def apply(self, event: Event) -> bool:
        if event.revision < self.revision:
            return False
        raw = event.value if event.kind is EventKind.PUT else None
        change = self._change(event.key, raw, event.revision)
        if change is not None:
            try:
                self.store.apply([change], same_version=True)
            except ReplicaError as exc:
                self._skip(f"{event.key}: {exc}")
        self.revision = event.revision
        return change is not None
