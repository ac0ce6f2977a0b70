"""The online service's tenant store: SQLite rows, in-memory caches and the change feed.

One SQLite file (WAL) per tenant holds every row (``rows``: kind, key, JSON value with secrets,
the version that last wrote it) and the change feed (``changes``: version, kind, key, the
replicated JSON value or NULL for a deletion); see :mod:`hybridvoice.cms.changes` for the
vocabulary. Every write is one transaction that updates the rows and appends its changes with
the next versions, so the feed and the rows never disagree and reopening the file gives the
same data and version.

Reads never touch SQLite: each kind is cached in memory (and users by number, for reverse
number lookup in O(1)). The API is synchronous and meant for the event loop thread; calls from
other threads are serialised by a lock, and waiters of :meth:`TenantStore.wait_for_change` are
woken through their own loop.

Heartbeats: :meth:`TenantStore.heartbeat` always updates the cached appliance, but only writes
(and emits an ``appliance`` change) when the status or version changes or when the last written
heartbeat is :data:`HEARTBEAT_PUBLISH_INTERVAL` (30 s) old or more, so steady heartbeats do not
flood the feed. A restart therefore sees heartbeats at most 30 s old.

The same file keeps the API's bearer tokens (hashed) and audit log (:attr:`TenantStore.access`,
:mod:`hybridvoice.cms.guard`), in tables of their own that never reach the change feed.

Durability: ``synchronous=NORMAL`` in WAL mode: a process crash loses nothing committed; a
power loss may lose the last few commits.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

from pydantic import BaseModel, ValidationError

from hybridvoice.cms.changes import Change
from hybridvoice.cms.guard import Access
from hybridvoice.sip.value_cache import ValueCache

from .changes_wait import ChangeWaiters
from .models import (
    Appliance,
    DialPlanRule,
    HybridConfig,
    NetworkConfig,
    Site,
    User,
    canonical_aor,
    canonical_fqdn,
)
from .site_roots import SiteRoots
from .store_appliances import HEARTBEAT_PUBLISH_INTERVAL, ApplianceRegistry
from .store_feed import _SCHEMA, ChangeFeed, StoreError
from .store_windows import UpdateWindowRegistry
from .update_windows import TenantUpdateWindow

__all__ = ["HEARTBEAT_PUBLISH_INTERVAL", "StoreError", "TenantStore"]

#: entries per kind of the store's own value cache
STORE_CACHE_ENTRIES: Final = 1024

_log = logging.getLogger(__name__)

_GLOBAL: Final = "global"


M = TypeVar("M", bound=BaseModel)


class TenantStore(ApplianceRegistry, UpdateWindowRegistry, ChangeFeed):
    """A tenant's users, sites, configuration, appliances and dial plan, with a change feed."""

    def __init__(self, path: str | Path = ":memory:", *, tenant: str = "default") -> None:
        self.tenant = tenant
        self._lock = threading.RLock()
        try:
            db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot open the tenant store {path}: {exc}: check that the directory exists, "
                "is writable, and that the file is a hybridvoice tenant store"
            ) from exc
        self._db: sqlite3.Connection | None = db
        row = db.execute("SELECT value FROM meta WHERE name = 'tenant'").fetchone()
        if row is None:
            db.execute("INSERT INTO meta VALUES ('tenant', ?)", (tenant,))
        elif row[0] != tenant:
            db.close()
            self._db = None
            raise StoreError(
                f"{path} holds tenant {row[0]!r}, not {tenant!r}: open it with tenant={row[0]!r} "
                "or use another file"
            )
        self.access = Access(db, self._lock)
        """The API's tokens and audit log: tables of this file, outside the change feed."""
        self.site_roots = SiteRoots(db, self._lock)
        """The roots of the sites an admin added (``hybridvoice online trust-site``)."""
        self._version = 0
        self._domains: dict[str, None] = {}
        self._users: dict[str, User] = {}
        self._by_number: dict[str, str] = {}
        self._sites: dict[str, Site] = {}
        self._appliances: dict[str, Appliance] = {}
        self._written_heartbeat: dict[str, float] = {}
        self._dialplan: dict[str, DialPlanRule] = {}
        self._dialplan_sorted: list[DialPlanRule] | None = None  # dialplan() order, cached
        self._update_windows: dict[str, TenantUpdateWindow] = {}
        self._hybrid = HybridConfig()
        self._network = NetworkConfig()
        self._subscribers: list[Callable[[Change], None]] = []
        self._waiters = ChangeWaiters()
        #: its memo of parsed addresses of record (lookups by URI text)
        self._values = ValueCache(STORE_CACHE_ENTRIES)
        self._load(db)

    # --- domains ---------------------------------------------------------------------------------

    def add_domain(self, name: str) -> None:
        domain = _domain(name)
        with self._lock:
            if domain not in self._domains:
                self._write([("domain", domain, _EMPTY)])

    def remove_domain(self, name: str) -> None:
        """Remove a SIP domain; StoreError while users of that domain exist."""
        domain = _domain(name)
        with self._lock:
            if domain not in self._domains:
                return
            users = [u.sip_uri for u in self._users.values() if u.domain == domain]
            if users:
                raise StoreError(
                    f"domain {domain} still has {len(users)} user(s) ({', '.join(users[:3])}): "
                    "remove them first"
                )
            self._write([("domain", domain, None)])

    def domains(self) -> list[str]:
        return list(self._domains)

    # --- users -----------------------------------------------------------------------------------

    def set_user(self, user: User) -> User:
        """Create or replace a user. A user given without HA1s keeps the stored ones, so an
        update built from a replicated value (which carries no secrets) keeps the password."""
        with self._lock:
            if user.domain not in self._domains:
                raise StoreError(
                    f"{user.sip_uri}: {user.domain} is not one of the tenant's domains "
                    f"({', '.join(self._domains) or 'none'}): add it first with add_domain"
                )
            site = user.hybrid_pstn_site
            if site is not None and site not in self._sites:
                raise StoreError(
                    f"{user.sip_uri}: hybrid PSTN site {site!r} does not exist: create it "
                    "(new_site) or register an appliance of that site first"
                )
            number = user.e164
            owner = None if number is None else self._by_number.get(number)
            if owner is not None and owner != user.sip_uri:
                raise StoreError(
                    f"{user.sip_uri}: line URI {user.line_uri} already belongs to {owner}: "
                    "free it there first"
                )
            old = self._users.get(user.sip_uri)
            if old is not None and not user.has_password and old.has_password:
                user = user.model_copy(
                    update={
                        "ha1_md5": old.ha1_md5,
                        "ha1_sha256": old.ha1_sha256,
                        "ha1_realm": old.ha1_realm,
                    }
                )
            if old != user:
                self._write([("user", user.sip_uri, user)])
            return user

    def get_user(self, sip_uri: str) -> User | None:
        try:
            return self._users.get(canonical_aor(sip_uri, self._values))
        except ValueError:
            return None

    def users(self) -> list[User]:
        return list(self._users.values())

    def remove_user(self, sip_uri: str) -> None:
        user = self.get_user(sip_uri)
        if user is not None:
            self._write([("user", user.sip_uri, None)])

    def user_by_number(self, e164: str) -> User | None:
        """The user whose line URI is ``tel:`` + `e164` (``+46812345678``; a ``tel:`` prefix
        and visual separators are tolerated)."""
        number = e164.removeprefix("tel:").translate(_SEPARATORS)
        key = self._by_number.get(number)
        return None if key is None else self._users.get(key)

    # --- sites -----------------------------------------------------------------------------------

    def new_site(self, site: Site) -> Site:
        with self._lock:
            if site.name in self._sites:
                raise StoreError(f"site {site.name!r} exists: change it with set_site instead")
            return self.set_site(site)

    def set_site(self, site: Site) -> Site:
        with self._lock:
            self.check_site_windows(site)
            if self._sites.get(site.name) != site:
                self._write([("site", site.name, site)])
            return site

    def get_site(self, name: str) -> Site | None:
        return self._sites.get(name)

    def sites(self) -> list[Site]:
        return list(self._sites.values())

    def remove_site(self, name: str) -> None:
        with self._lock:
            if name not in self._sites:
                return
            appliances = [a.name for a in self._appliances.values() if a.site == name]
            if appliances:
                raise StoreError(
                    f"site {name!r} still has appliances registered ({', '.join(appliances)}): "
                    "unregister them first (remove_appliance)"
                )
            users = [u.sip_uri for u in self._users.values() if u.hybrid_pstn_site == name]
            if users:
                raise StoreError(
                    f"site {name!r} is the hybrid PSTN site of {len(users)} user(s) "
                    f"({', '.join(users[:3])}): move them to another site first"
                )
            self._write([("site", name, None)])

    # --- tenant configuration --------------------------------------------------------------------

    def hybrid_config(self) -> HybridConfig:
        return self._hybrid

    def set_hybrid_config(self, cfg: HybridConfig) -> HybridConfig:
        with self._lock:
            if cfg != self._hybrid:
                self._write([("hybrid_config", _GLOBAL, cfg)])
            return cfg

    def network_config(self) -> NetworkConfig:
        return self._network

    def set_network_config(self, cfg: NetworkConfig) -> NetworkConfig:
        with self._lock:
            if cfg != self._network:
                self._write([("network_config", _GLOBAL, cfg)])
            return cfg

    # --- dial plan -------------------------------------------------------------------------------

    def dialplan(self) -> list[DialPlanRule]:
        """The rules in the order they are tried: priority, then name."""
        if self._dialplan_sorted is None:
            self._dialplan_sorted = sorted(
                self._dialplan.values(), key=lambda r: (r.priority, r.name)
            )
        return list(self._dialplan_sorted)

    def set_dialplan_rule(self, rule: DialPlanRule) -> DialPlanRule:
        with self._lock:
            if self._dialplan.get(rule.name) != rule:
                self._write([("dialplan", rule.name, rule)])
            return rule

    def remove_dialplan_rule(self, name: str) -> None:
        if name in self._dialplan:
            self._write([("dialplan", name, None)])

    # --- internals -------------------------------------------------------------------------------

    def _cache(self, kind: str, key: str, model: BaseModel | None) -> None:
        if kind == "domain":
            if model is None:
                self._domains.pop(key, None)
            else:
                self._domains[key] = None
        elif kind == "user":
            old = self._users.pop(key, None)
            if old is not None and old.e164 is not None:
                self._by_number.pop(old.e164, None)
            if isinstance(model, User):
                self._users[key] = model
                if model.e164 is not None:
                    self._by_number[model.e164] = key
        elif kind == "site":
            _put(self._sites, key, model, Site)
        elif kind == "appliance":
            _put(self._appliances, key, model, Appliance)
            if isinstance(model, Appliance):
                self._written_heartbeat[key] = model.last_heartbeat
            else:
                self._written_heartbeat.pop(key, None)
        elif kind == "dialplan":
            _put(self._dialplan, key, model, DialPlanRule)
            self._dialplan_sorted = None
        elif kind == "hybrid_config":
            self._hybrid = model if isinstance(model, HybridConfig) else HybridConfig()
        elif kind == "network_config":
            self._network = model if isinstance(model, NetworkConfig) else NetworkConfig()
        elif kind == "update_window":
            _put(self._update_windows, key, model, TenantUpdateWindow)

    def _load(self, db: sqlite3.Connection) -> None:
        row = db.execute("SELECT MAX(version) FROM changes").fetchone()
        self._version = row[0] or 0
        for kind, key, text in db.execute("SELECT kind, key, value FROM rows ORDER BY version"):
            model_type = _MODELS.get(kind)
            try:
                model = _Domain() if model_type is None else model_type.model_validate_json(text)
            except ValidationError as exc:
                raise StoreError(
                    f"stored {kind} {key!r} is invalid ({exc.error_count()} error(s)): "
                    "restore the file from a backup or remove the row"
                ) from exc
            self._cache(kind, key, model)


class _Domain(BaseModel):
    """A domain row's value: empty."""


_EMPTY: Final = _Domain()
_MODELS: Final[dict[str, type[BaseModel]]] = {
    "user": User,
    "site": Site,
    "appliance": Appliance,
    "dialplan": DialPlanRule,
    "hybrid_config": HybridConfig,
    "network_config": NetworkConfig,
    "update_window": TenantUpdateWindow,
}
_SEPARATORS: Final = str.maketrans("", "", "-.() ")


def _put(cache: dict[str, M], key: str, model: BaseModel | None, model_type: type[M]) -> None:
    if isinstance(model, model_type):
        cache[key] = model
    else:
        cache.pop(key, None)


def _domain(name: str) -> str:
    try:
        return canonical_fqdn(name, "SIP domain")
    except ValueError as exc:
        raise StoreError(str(exc)) from exc
