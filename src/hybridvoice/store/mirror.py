"""A local copy of one prefix of the store, kept by a snapshot and a watch (sans-IO): the
appliance's replica and an online instance's caches follow the store this way.

The rules (docs/fleet.md, "How the site CMS moves"): load a snapshot (a range read and its
revision R); apply the watch's events from R on; after a lost watch, resume at the revision
last applied (its events again: applying is idempotent, and a revision's events may have been
cut in the middle); after :class:`~.kv.CompactedError`, load a snapshot again.
"""

from __future__ import annotations

from .kv import Event, EventKind, Range

__all__ = ["Mirror"]


class Mirror:
    __slots__ = ("loaded", "prefix", "reloads", "revision", "rows")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.rows: dict[str, bytes] = {}
        self.revision = 0  # every change up to this revision is in rows
        self.loaded = False
        self.reloads = 0  # snapshots loaded after the first (compacted history)

    def load(self, snapshot: Range) -> None:
        if self.loaded or self.revision:
            self.reloads += 1
        self.rows = {kv.key: kv.value for kv in snapshot.kvs}
        self.revision = snapshot.revision
        self.loaded = True

    def apply(self, event: Event) -> bool:
        """Take one watched change; False when it is older than what the mirror holds."""
        if event.revision < self.revision:
            return False
        if event.kind is EventKind.PUT:
            self.rows[event.key] = event.value
        else:
            self.rows.pop(event.key, None)
        self.revision = event.revision
        return True

    def resume_at(self) -> int:
        """The revision to watch from (the last one again, see the module's docstring)."""
        return max(self.revision, 1)

    def compacted(self) -> None:
        """The history to resume from is gone: the next step is a snapshot."""
        self.loaded = False
