"""The appliance registry of the tenant store: registration, heartbeats, offline marking.

Register-CcAppliance and its heartbeats (``docs/online.md``): :meth:`ApplianceRegistry.heartbeat`
always updates the cached appliance, but only writes (and emits an ``appliance`` change) when
the status or version changes or when the last written heartbeat is
:data:`HEARTBEAT_PUBLISH_INTERVAL` old or more, so steady heartbeats do not flood the feed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from hybridvoice.cms.changes import Change

from .models import Appliance, ApplianceStatus, Site
from .store_feed import StoreError, _Op

__all__ = ["HEARTBEAT_PUBLISH_INTERVAL", "ApplianceRegistry"]

#: a heartbeat that changes nothing else is written at most this often (seconds)
HEARTBEAT_PUBLISH_INTERVAL: Final = 30.0
_STATUSES: Final = ("online", "offline", "maintenance")


class ApplianceRegistry:
    """The appliances of a tenant (mixed into the store)."""

    _lock: threading.RLock
    _appliances: dict[str, Appliance]
    _written_heartbeat: dict[str, float]
    _sites: dict[str, Site]

    if TYPE_CHECKING:  # the feed's (:class:`.store_feed.ChangeFeed`), later in the MRO

        def _write(self, ops: Iterable[_Op]) -> list[Change]: ...

    def register_appliance(self, appliance: Appliance, now: float) -> Appliance:
        """Register (or re-register) an appliance; the first one of a site creates the site
        with the appliance's edge FQDN. `registered_at` and `last_heartbeat` become `now`."""
        with self._lock:
            old = self._appliances.get(appliance.name)
            if old is not None and old.site != appliance.site:
                raise StoreError(
                    f"appliance {appliance.name!r} is registered to site {old.site!r}: "
                    "unregister it (remove_appliance) before registering it to "
                    f"{appliance.site!r}"
                )
            ops: list[_Op] = []
            site = self._sites.get(appliance.site)
            if site is None:
                site = Site(name=appliance.site, edge_fqdn=appliance.edge_fqdn)
                ops.append(("site", site.name, site))
            elif site.edge_fqdn != appliance.edge_fqdn:
                raise StoreError(
                    f"appliance {appliance.name!r} has edge FQDN {appliance.edge_fqdn} but site "
                    f"{site.name!r} uses {site.edge_fqdn}: every appliance of a site shares the "
                    "site's edge pool FQDN; fix the appliance or change the site with set_site"
                )
            appliance = appliance.model_copy(update={"registered_at": now, "last_heartbeat": now})
            ops.append(("appliance", appliance.name, appliance))
            self._write(ops)
            return appliance

    def heartbeat(
        self, name: str, status: str, now: float, version: str | None = None
    ) -> Appliance:
        """Record an appliance's status report (see the module docstring on throttling)."""
        if status not in _STATUSES:
            raise StoreError(f"status {status!r} must be one of {', '.join(_STATUSES)}")
        with self._lock:
            old = self._appliances.get(name)
            if old is None:
                raise StoreError(
                    f"appliance {name!r} is not registered: register it (register_appliance) first"
                )
            new = old.model_copy(
                update={
                    "status": status,
                    "last_heartbeat": max(now, old.last_heartbeat),
                    "version": old.version if version is None else version,
                }
            )
            written = self._written_heartbeat.get(name, old.last_heartbeat)
            if (
                new.status != old.status
                or new.version != old.version
                or now - written >= HEARTBEAT_PUBLISH_INTERVAL
            ):
                self._write([("appliance", name, new)])
            else:
                self._appliances[name] = new  # cache only: see the module docstring
            return new

    def appliances(self, site: str | None = None) -> list[Appliance]:
        return [a for a in self._appliances.values() if site is None or a.site == site]

    def get_appliance(self, name: str) -> Appliance | None:
        return self._appliances.get(name)

    def remove_appliance(self, name: str) -> None:
        if name in self._appliances:
            self._write([("appliance", name, None)])

    def mark_offline(self, now: float, timeout: float) -> list[str]:
        """Mark offline every appliance not heard from for more than `timeout` seconds;
        return their names (those already offline are not repeated)."""
        with self._lock:
            stale = [
                a
                for a in self._appliances.values()
                if a.status != "offline" and now - a.last_heartbeat > timeout
            ]
            if stale:
                offline: ApplianceStatus = "offline"
                self._write(
                    [("appliance", a.name, a.model_copy(update={"status": offline})) for a in stale]
                )
            return [a.name for a in stale]

    def routable_appliances(self, site: str) -> list[Appliance]:
        """The site's appliances that take new calls (status online), by name."""
        return sorted(
            (a for a in self._appliances.values() if a.site == site and a.status == "online"),
            key=lambda a: a.name,
        )
