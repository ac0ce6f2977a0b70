"""The tenant store's update windows (New/Set/Get/Remove-CsTenantUpdateTimeWindow).

Rows of kind ``update_window`` keyed by the window's name, replicated to appliances like every
tenant setting (:mod:`hybridvoice.cms.changes`). Sites name the windows they update in
(:attr:`.models.Site.update_time_windows`): a site naming a window that does not exist is
refused, and so is removing a window that a site still names.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from hybridvoice.cms.changes import Change

from .models import Site
from .store_feed import StoreError, _Op
from .update_windows import TenantUpdateWindow

__all__ = ["UpdateWindowRegistry"]


class UpdateWindowRegistry:
    """The tenant's update windows (mixed into the store)."""

    _lock: threading.RLock
    _sites: dict[str, Site]
    _update_windows: dict[str, TenantUpdateWindow]

    if TYPE_CHECKING:  # the feed's (:class:`.store_feed.ChangeFeed`), later in the MRO

        def _write(self, ops: Iterable[_Op]) -> list[Change]: ...

    def set_update_window(self, window: TenantUpdateWindow) -> TenantUpdateWindow:
        """Create or replace a window."""
        with self._lock:
            if self._update_windows.get(window.name) != window:
                self._write([("update_window", window.name, window)])
            return window

    def get_update_window(self, name: str) -> TenantUpdateWindow | None:
        return self._update_windows.get(name)

    def update_windows(self) -> list[TenantUpdateWindow]:
        """Every window, by name."""
        return sorted(self._update_windows.values(), key=lambda w: w.name)

    def remove_update_window(self, name: str) -> None:
        """Remove a window; StoreError while a site names it."""
        with self._lock:
            if name not in self._update_windows:
                return
            users = sorted(s.name for s in self._sites.values() if name in s.update_time_windows)
            if users:
                raise StoreError(
                    f"update window {name!r} is assigned to site(s) {', '.join(users)}: take it "
                    "off them first"
                )
            self._write([("update_window", name, None)])

    def site_update_windows(self, site: Site) -> list[TenantUpdateWindow]:
        """The windows ``site`` names (every one exists: :meth:`check_site_windows`)."""
        return [self._update_windows[n] for n in site.update_time_windows
                if n in self._update_windows]  # fmt: skip

    def check_site_windows(self, site: Site) -> None:
        """StoreError when ``site`` names a window the tenant does not have."""
        missing = [n for n in site.update_time_windows if n not in self._update_windows]
        if missing:
            known = ", ".join(sorted(self._update_windows)) or "none"
            raise StoreError(
                f"site {site.name!r}: update window {missing[0]!r} does not exist (the tenant "
                f"has: {known}): create it first"
            )
