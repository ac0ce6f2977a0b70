"""Keep a :class:`~.mirror.Mirror` up to date from a store, for as long as the task runs
(the adapter of the mirror's rules: the watch, the snapshot, the back-off while the store is
unreachable; the mirror keeps answering from what it has meanwhile).

Named in pyproject's import-linter contract (it sleeps on the loop between attempts).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import NoReturn

from .kv import CompactedError, Event, KeyValueStore, StoreUnavailableError
from .mirror import Mirror

__all__ = ["follow"]


async def follow(
    store: KeyValueStore,
    mirror: Mirror,
    *,
    changed: Callable[[Event], None] | None = None,
    retry: float = 1.0,
    cap: float = 30.0,
) -> NoReturn:
    """Follow ``mirror.prefix`` of ``store`` into ``mirror`` until cancelled; ``changed`` is
    called after each applied event. While the store is unavailable, retries after ``retry``
    seconds, doubling up to ``cap``."""
    delay = retry
    while True:
        try:
            if not mirror.loaded:
                mirror.load(await store.range(mirror.prefix))
            async for event in store.watch(mirror.prefix, start_revision=mirror.resume_at()):
                delay = retry
                if mirror.apply(event) and changed is not None:
                    changed(event)
        except CompactedError:
            mirror.compacted()
            continue
        except StoreUnavailableError:
            pass
        await asyncio.sleep(delay)
        delay = min(delay * 2, cap)
